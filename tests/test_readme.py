"""The README's library examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from landiff.train import train
from tiny_runs import tiny_diffusion

README = Path(__file__).resolve().parents[1] / "README.md"


def _library_blocks() -> list[str]:
    """The python blocks of the "Library in ten lines" section: the pipeline, then the low-level API."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Library in ten lines"):]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_library_section_shows_the_pipeline_first_then_the_low_level_api():
    blocks = _library_blocks()
    assert len(blocks) == 2 and "from landiff import Pipeline" in blocks[0] and "Pipeline" not in blocks[1]


@pytest.mark.usefixtures("one_thread")
def test_pipeline_example_runs_on_a_trained_run(tmp_path, monkeypatch, capsys):
    """The first block, on a 32 px run trained for 2 steps where it expects runs/tiny."""
    train(tiny_diffusion(train_steps=2), tmp_path / "runs" / "tiny", log=lambda _: None)
    monkeypatch.chdir(tmp_path)
    exec(compile(_library_blocks()[0], "README.md", "exec"), {})
    assert "diffusion 32 (4, 32, 32, 3)" in capsys.readouterr().out
    assert (tmp_path / "tiny-0.png").is_file()


def test_library_example_runs(capsys):
    exec(compile(_library_blocks()[1], "README.md", "exec"), {})
    assert "torch.Size([4, 3, 32, 32])" in capsys.readouterr().out


def test_readme_opens_with_the_two_commands():
    lines = [line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith("./dev ")]
    assert lines[0].startswith("./dev demo") and lines[1].startswith("./dev test")
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "./dev test" in ci


def test_every_command_is_in_the_readme_table():
    from landiff.cli.main import COMMAND_MODULES

    rows = [line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith("| `landiff ")]
    listed = {row.split("`")[1].split()[1] for row in rows}
    assert {name.rsplit(".", 1)[1] for name in COMMAND_MODULES} <= listed
