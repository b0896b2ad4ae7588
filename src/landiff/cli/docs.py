"""``python -m landiff.cli.docs``: docs/cli.md and the README's command table, rendered from the option specs.

    python -m landiff.cli.docs            # rewrite docs/cli.md and the table between the README's markers
    python -m landiff.cli.docs --check    # exit 1, naming the stale file, when either is out of date

Both are rendered from the parser :func:`landiff.cli.main.build_parser` builds, so from the same
:class:`landiff.options.Spec` records ``--help`` shows and the commands parse with: one section per
command in docs/cli.md (its usage and a table of its options: what each does, what it accepts, its
unit and its default; for ``train`` the defaults of one recipe per model family), and one row per
command in the README (an example invocation and the command's description). tests/test_cli_help.py
renders both in memory and compares them with the files.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from landiff.cli.main import build_parser
from landiff.cli.train_options import all_specs
from landiff.options import Spec, show_value, spec_of
from landiff.runs.config import recipe

ROOT = Path(__file__).resolve().parents[3]
CLI_DOC = Path("docs") / "cli.md"
README = Path("README.md")
START, END = "<!-- commands:start -->", "<!-- commands:end -->"
FIX = "python -m landiff.cli.docs"
TRAIN_RECIPES = ("tiny", "dcgan", "classifier-32")  # one recipe per model family in train's table
USAGE_WIDTH = 100

# The README's example invocation of a command (after `landiff NAME`); each --flag in it must be one of
# the command's options. A command not listed gets its positionals and required options.
SYNOPSES = {
    "demo": "[--minutes 10] [--out runs/demo]",
    "train": "--run DIR [--preset P] [--data D] …",
    "sample": "--run DIR --n 64 [--sampler dpm++sde --steps 20] [--classifier CLF --classifier-scale S]",
    "eval": "nll|swd|fid|kid|pr|memorization …",
    "compare": "RUN_A RUN_B … [--train --data D --minutes M [--gans dcgan,gan-strong]]",
    "report": "RUN… --out DIR",
    "study": "[EXPERIMENT] --out DIR [--data D] [--budget 60]",
    "weights": "import-inception FILE.pth",
}


# ---------------------------------------------------------------------- walking the parser
def subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """The sub-commands of ``parser`` by name, each with its one-line help (empty for a leaf command)."""
    found: dict[str, tuple[argparse.ArgumentParser, str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            found.update({name: (child, helps.get(name, "")) for name, child in action.choices.items()})
    return found


Command = tuple[tuple[str, ...], argparse.ArgumentParser, str]  # (path, parser, one-line help)


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[Command]:
    """(command path, parser, help) of every command and sub-command below ``parser``, depth first, in --help order."""
    for name, (child, text) in subcommands(parser).items():
        yield (*path, name), child, text
        yield from walk(child, (*path, name))


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options and positionals of one command (not --help, --version or its sub-commands)."""
    skip = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)
    return [action for action in parser._actions if not isinstance(action, skip)]


def description(parser: argparse.ArgumentParser, first_paragraph: bool = False) -> str:
    """The command's description (its first paragraph only, for the README), one line per paragraph."""
    paragraphs = [" ".join(part.split()) for part in (parser.description or "").split("\n\n") if part.strip()]
    return paragraphs[0] if first_paragraph and paragraphs else "\n\n".join(paragraphs)


def sentence(text: str) -> str:
    """``text`` with a capital first letter and a full stop, as a paragraph of docs/cli.md."""
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".") if text else ""


# ---------------------------------------------------------------------- markdown
def md(text: str) -> str:
    """``text`` for a table cell: Markdown's special characters escaped outside `code` spans, \\| inside."""
    parts = text.split("`")
    for i, part in enumerate(parts):
        if i % 2:
            parts[i] = part.replace("|", "\\|")
        else:
            for char, escaped in (("|", "\\|"), ("*", "\\*"), ("~", "\\~"), ("<", "&lt;"), (">", "&gt;")):
                part = part.replace(char, escaped)
            parts[i] = part
    return "`".join(parts)


def anchor(path: Sequence[str]) -> str:
    """GitHub's anchor of the heading ``landiff PATH``."""
    return re.sub(r"[^a-z0-9 -]", "", "landiff " + " ".join(path)).replace(" ", "-")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


# ---------------------------------------------------------------------- one command's section
def usage(parser: argparse.ArgumentParser) -> str:
    """The usage line as ``--help`` prints it, wrapped at a fixed width (independent of the terminal)."""
    formatter = argparse.HelpFormatter(prog=parser.prog, width=USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def option_cell(action: argparse.Action) -> str:
    """``--minutes X``, ``--flip`` or ``RUN …``, as the usage line writes it (a choice's words are in its own column)."""
    spec = spec_of(action)
    listed = spec is not None and spec.kind == "choice" and not spec.metavar
    metavar = action.metavar if isinstance(action.metavar, str) and not listed else action.dest.upper().replace("_", "-")
    if not action.option_strings:
        return f"`{metavar}{' …' if action.nargs in ('*', '+') else ''}`".replace("|", "\\|")
    name = "/".join(action.option_strings)
    return f"`{name}`" if action.nargs == 0 else f"`{name} {metavar}`".replace("|", "\\|")


def _accepts(spec: Spec | None, action: argparse.Action) -> str:
    if spec is None:
        return ", ".join(map(str, action.choices)) if action.choices else ""
    return "—" if spec.kind == "switch" else spec.accepts()


def _default(spec: Spec | None, action: argparse.Action) -> str:
    if spec is None:
        return "required" if action.required else ("off" if action.nargs == 0 else show_value(action.default))
    return "required" if spec.required_always else spec.shown_default() or "none"


def option_row(action: argparse.Action) -> list[str]:
    """option | what it does | accepts | unit | default."""
    spec = spec_of(action)
    what = spec.help if spec is not None else (action.help or "").replace("%%", "%")
    return [option_cell(action), md(what), md(_accepts(spec, action)), md(spec.unit if spec else ""),
            md(_default(spec, action))]


def train_rows(parser: argparse.ArgumentParser) -> tuple[list[str], list[list[str]]]:
    """train's table: the defaults of :data:`TRAIN_RECIPES` in a column each (from the same specs)."""
    per_recipe = [all_specs(recipe(name)) for name in TRAIN_RECIPES]
    rows = []
    for action in options(parser):
        row = option_row(action)
        if action.dest == "preset":
            rows.append(row[:4] + list(TRAIN_RECIPES))
        elif action.dest in per_recipe[0]:
            specs = [specs[action.dest] for specs in per_recipe]
            values = ["unused" if text.startswith("unused") else text for text in (s.shown_default() for s in specs)]
            rows.append(row[:4] + [md(text) for text in values])
        else:
            rows.append(row[:4] + [row[4]] * len(TRAIN_RECIPES))
    return ["option", "what it does", "accepts", "unit", *(f"{name}" for name in TRAIN_RECIPES)], rows


def details(parser: argparse.ArgumentParser) -> list[str]:
    """The longer explanations some specs carry, as a list under the table."""
    lines = []
    for action in options(parser):
        spec = spec_of(action)
        if spec is not None and spec.details:
            lines.append(f"- {option_cell(action)}: {md(spec.details)}")
    return ["", *lines] if lines else []


def command_section(path: tuple[str, ...], parser: argparse.ArgumentParser, text: str) -> list[str]:
    """The docs/cli.md section of one command: heading, description, usage, options table, notes."""
    lines = [f"## `landiff {' '.join(path)}`", ""]
    about = "\n\n".join(md(sentence(part)) for part in (description(parser) or text).split("\n\n"))
    if about:
        lines += [about, ""]
    children = subcommands(parser)
    if children:
        links = [f"- [`landiff {' '.join((*path, name))}`](#{anchor((*path, name))})" for name in children]
        return [*lines, "Sub-commands:", "", *links, ""]
    lines += ["```text", usage(parser), "```", ""]
    if path == ("train",):
        header, rows = train_rows(parser)
        lines += [f"Defaults are those of the recipes {', '.join(TRAIN_RECIPES)} (one per model family); "
                  "`landiff train --preset P --help` shows recipe P's.", ""]
    else:
        header, rows = ["option", "what it does", "accepts", "unit", "default"], [option_row(a) for a in options(parser)]
    lines += table(header, rows) if rows else ["No options."]
    lines += details(parser)
    if parser.epilog:
        lines += ["", "```text", parser.epilog.strip(), "```"]
    return [*lines, ""]


def render_cli() -> str:
    """The whole of docs/cli.md."""
    parser = build_parser()
    commands = list(walk(parser))
    lines = [
        "# Command-line reference",
        "",
        f"<!-- generated by `{FIX}` from the option specs; edit the specs in src/landiff, not this file -->",
        "",
        "Every option of every `landiff` command: what it does, what it accepts, its unit and its default. This "
        "page is rendered from the same `Spec` records (src/landiff/options.py) the commands parse with and "
        "`landiff COMMAND --help` prints, so the three agree; a bad value is refused with one line naming the "
        "option, exit status 2.",
        "",
        " · ".join(f"[`{' '.join(path)}`](#{anchor(path)})" for path, _, _ in commands),
        "",
    ]
    for path, child, text in commands:
        lines += command_section(path, child, text)
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------- the README's table
def synopsis(name: str, parser: argparse.ArgumentParser) -> str:
    """The example invocation after ``landiff NAME`` (:data:`SYNOPSES`, else positionals and required options)."""
    children = subcommands(parser)
    if name in SYNOPSES:
        text = SYNOPSES[name]
    elif children:
        text = "|".join(children)
    else:
        words = []
        for action in options(parser):
            metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
            if not action.option_strings:
                words.append(metavar if action.nargs not in ("?", "*") else f"[{metavar}]")
            elif action.required:
                words.append(f"{action.option_strings[0]} {metavar}")
        text = " ".join(words + (["…"] if len(words) < len(options(parser)) else []))
    parsers = [parser, *(child for _, child, _ in walk(parser))]
    known = {flag for each in parsers for action in options(each) for flag in action.option_strings}
    unknown = sorted(set(re.findall(r"--[a-z][a-z0-9-]*", text)) - known)
    if unknown:
        raise ValueError(f"SYNOPSES[{name!r}] names {', '.join(unknown)}, which landiff {name} does not have")
    return text


def render_commands_table() -> str:
    """The README's command table (without the markers)."""
    rows = []
    for name, (parser, text) in subcommands(build_parser()).items():
        command = f"landiff {name} {synopsis(name, parser)}".strip()
        what = (description(parser, first_paragraph=True) or text).rstrip(".")
        rows.append([f"`{command}`".replace("|", "\\|"), md(what)])
    return "\n".join(table(["command", "what it does"], rows))


def render_readme(text: str) -> str:
    """``text`` (the README) with the command table between its markers regenerated."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"README.md needs one {START} … {END} pair around the command table")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{render_commands_table()}\n{END}{tail}"


# ---------------------------------------------------------------------- command line
def stale_files(root: Path) -> dict[Path, str]:
    """The files under ``root`` whose contents differ from the rendering, with their new contents."""
    readme = (root / README).read_text(encoding="utf-8")
    wanted = {CLI_DOC: render_cli(), README: render_readme(readme)}
    current = {CLI_DOC: (root / CLI_DOC).read_text(encoding="utf-8") if (root / CLI_DOC).exists() else None,
               README: readme}
    return {path: text for path, text in wanted.items() if current[path] != text}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=FIX, description="Render docs/cli.md and the README's command table from the option "
                                                 "specs.")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if either file is out of date")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this checkout's)")
    args = parser.parse_args(argv)
    if not (args.root / README).is_file():
        print(f"landiff docs: error: no {README} in {args.root}; pass --root REPOSITORY", file=sys.stderr)
        return 2
    stale = stale_files(args.root)
    names = " and ".join(str(path) for path in stale)
    if args.check:
        if stale:
            print(f"landiff docs: {names} {'is' if len(stale) == 1 else 'are'} out of date with the option specs; "
                  f"run {FIX}", file=sys.stderr)
            return 1
        return 0
    for path, text in stale.items():
        (args.root / path).parent.mkdir(parents=True, exist_ok=True)
        (args.root / path).write_text(text, encoding="utf-8")
    print(f"wrote {names}" if stale else f"{CLI_DOC} and {README} are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
