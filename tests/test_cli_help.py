"""Every option of every command explains itself (issue 19): what it does, its choices, its unit, its default.

The checks walk the parser :func:`landiff.cli.main.build_parser` builds, so an option or command added
later is covered without touching this file. ``train``'s defaults come from the recipe the command line
chooses (``--preset``, ``--model``, ``--resolution``); docs/cli.md and the README's command table are
rendered from the same specs and must match the files in the repository.
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

import pytest

from landiff.cli import docs
from landiff.cli.main import build_parser, main
from landiff.cli.train_options import OVERRIDES, families, recipe_value
from landiff.options import Spec, spec_of
from landiff.runs.config import recipe

ROOT = Path(__file__).resolve().parents[1]


def every_option(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    """(command, action) of every option and positional of every command and sub-command."""
    return [(" ".join(path), action) for path, child, _ in docs.walk(parser) for action in docs.options(child)]


def name_of(action: argparse.Action) -> str:
    return "/".join(action.option_strings) or action.dest


def train_helps(*argv: str) -> dict[str, str]:
    """dest → help of every train option, for the command line ``landiff train ARGV``."""
    parser = docs.subcommands(build_parser(["train", *argv]))["train"][0]
    return {action.dest: action.help or "" for action in docs.options(parser)}


def test_every_option_comes_from_a_spec_with_a_real_help():
    problems = []
    for command, action in every_option(build_parser()):
        spec, text = spec_of(action), (action.help or "").strip()
        if spec is None:
            problems.append(f"{command} {name_of(action)}: declared without a landiff.options.Spec")
        elif text != spec.help_text():
            problems.append(f"{command} {name_of(action)}: its --help is not its spec's help_text()")
        if not text or text.lower().startswith("override"):
            problems.append(f"{command} {name_of(action)}: help {text!r} says nothing")
    assert not problems, "\n".join(problems)


def test_every_choice_lists_its_choices():
    problems = []
    for command, action in every_option(build_parser()):
        spec = spec_of(action)
        choices = list(spec.choices if spec is not None and spec.kind == "choice" else action.choices or ())
        if not choices:
            continue
        listed = action.metavar == "{" + ",".join(choices) + "}" or "one of " + ", ".join(choices) in (action.help or "")
        if not listed:
            problems.append(f"{command} {name_of(action)}: choices {choices} are not in its usage or help")
    assert not problems, "\n".join(problems)


def test_every_option_that_may_be_left_out_states_its_default():
    problems = []
    for command, action in every_option(build_parser()):
        spec = spec_of(action)
        if spec is None or spec.required_always:
            continue
        shown = spec.shown_default()
        if not shown or not (action.help or "").endswith(f"{spec.default_label}: {shown})".replace("%", "%%")):
            problems.append(f"{command} {name_of(action)}: no default in {action.help!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("command,flag,unit", [
    ("demo", "--minutes", "minutes"), ("train", "--resolution", "px"), ("train", "--batch", "images per process"),
    ("train", "--steps", "optimiser steps"), ("train", "--minutes", "minutes"), ("sample", "--n", "images"),
    ("sample", "--steps", "steps"), ("study", "--resolution", "px"), ("data check", "--max-pixels", "pixels"),
])
def test_quantities_state_their_unit(command, flag, unit):
    helps = {(c, a.option_strings[0]): a.help for c, a in every_option(build_parser()) if a.option_strings}
    assert f"unit: {unit};" in helps[(command, flag)] or f"unit: {unit})" in helps[(command, flag)]


def _shown(value: object) -> str:
    """A recipe value as the help should write it (written out here, independently of options.show_value)."""
    if isinstance(value, bool):
        return {True: "on", False: "off"}[value]
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


@pytest.mark.parametrize("argv,preset", [((), "tiny"), (("--preset", "dcgan"), "dcgan"), (("--model", "gan"), "dcgan"),
                                         (("--preset=gan-strong",), "gan-strong"),
                                         (("--model", "classifier"), "classifier-32"),
                                         (("--model=classifier", "--resolution", "64"), "classifier-64")])
def test_every_train_override_shows_the_chosen_recipes_default(argv, preset):
    helps, config = train_helps(*argv), recipe(preset)
    for flag, (section, _, _) in OVERRIDES.items():
        text = helps[flag]
        if config.model not in families(flag, section):
            assert text.endswith(f"{preset}: unused, --model {' or '.join(families(flag, section))} only)"), text
            continue
        value = recipe_value(config, flag)
        shown = "none" if value in (None, "") else _shown(value)
        assert text.endswith(f"{preset}: {shown})".replace("%", "%%")), (flag, text)


def test_the_tiny_and_dcgan_defaults_differ_where_the_recipes_do():
    tiny, dcgan = train_helps(), train_helps("--preset", "dcgan")
    expected = {"lr": ("0.001", "0.0002"), "batch": ("32", "128"), "resolution": ("32", "64"), "beta1": ("0.9", "0.5"),
                "warmup": ("200", "0"), "decay": ("cosine", "none"), "grad_clip": ("1", "0"), "model": ("diffusion", "gan"),
                "schedule": ("cosine", "unused, --model diffusion only"), "z_dim": ("unused, --model gan only", "100"),
                "posthoc_ema": ("on", "unused, --model diffusion only"), "gan_ema": ("unused, --model gan only", "off")}
    for dest, (in_tiny, in_dcgan) in expected.items():
        assert tiny[dest].endswith(f"(tiny: {in_tiny})") or tiny[dest].endswith(f"; tiny: {in_tiny})"), tiny[dest]
        assert dcgan[dest].endswith(f"dcgan: {in_dcgan})"), dcgan[dest]
    assert train_helps("--preset", "ddpm-cifar")["flip"].endswith("(ddpm-cifar: on)")
    assert train_helps("--preset", "nonsense")["lr"] == tiny["lr"]  # a bad preset is refused by the parse, not here


def test_train_help_prints_the_recipe_of_the_command_line(capsys):
    assert main(["train", "--preset", "dcgan", "--help"]) == 0
    out = re.sub(r"\s+", " ", capsys.readouterr().out)
    assert "; dcgan: 0.0002)" in out and "; tiny: 0.001)" not in out
    assert main(["--", "train", "--help"]) == 0
    assert "; tiny: 0.001)" in re.sub(r"\s+", " ", capsys.readouterr().out)


def test_a_switch_spec_is_a_store_true_flag_that_says_it_is_off():
    parser = argparse.ArgumentParser()
    Spec("--shiny", "switch", "make it shiny").add_to(parser)
    assert not parser.parse_args([]).shiny and parser.parse_args(["--shiny"]).shiny is True
    assert parser._actions[-1].help == "make it shiny (default: off)"
    with pytest.raises(ValueError):
        Spec("--lit", "switch", "on by default", default=True)


def test_docs_cli_md_and_the_readme_table_are_current():
    fix = f"stale: run {docs.FIX}"
    assert docs.render_cli() == (ROOT / "docs" / "cli.md").read_text(encoding="utf-8"), fix
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert docs.render_readme(readme) == readme, fix
    table = readme.split(docs.START)[1].split(docs.END)[0]
    for command in docs.subcommands(build_parser()):
        assert f"| `landiff {command}" in table, command


def test_docs_check_names_the_stale_file_and_the_fix(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    (tmp_path / "docs" / "cli.md").write_text("old\n", encoding="utf-8")
    assert docs.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "docs/cli.md" in err[0] and "README" not in err[0] and docs.FIX in err[0], err
    assert (tmp_path / "docs" / "cli.md").read_text(encoding="utf-8") == "old\n"  # --check changes nothing
    assert docs.main(["--root", str(tmp_path)]) == 0
    assert docs.main(["--check", "--root", str(tmp_path)]) == 0


def test_a_synopsis_naming_a_missing_flag_is_refused(monkeypatch):
    monkeypatch.setitem(docs.SYNOPSES, "demo", "[--minutes 10] [--no-such-flag]")
    with pytest.raises(ValueError, match="--no-such-flag"):
        docs.render_commands_table()
