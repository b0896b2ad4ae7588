"""The README's library example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_library_example_runs(capsys):
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Library in ten lines"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
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
