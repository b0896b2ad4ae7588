"""Structural limits on the source: no function in src/landiff grows past MAX_FUNCTION_LINES lines.

A function's length is its span in the file, from its first decorator (or ``def``) to its last
line, docstring and comments included; nested functions and methods are checked on their own
and also count towards the function that contains them. The training loops
(src/landiff/train/diffusion_trainer.py, gan_trainer.py) are the ones this keeps readable.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "landiff"
MAX_FUNCTION_LINES = 60


def function_lengths(path: Path) -> list[tuple[int, str, int]]:
    """(first line, qualified name, length in lines) of every function in ``path``, nested ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                end = child.end_lineno if child.end_lineno is not None else child.lineno
                found.append((first, prefix + child.name, end - first + 1))
                visit(child, f"{prefix}{child.name}.<locals>.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def test_the_source_tree_is_found():
    files = list(SRC.rglob("*.py"))
    assert len(files) > 20 and (SRC / "train" / "diffusion_trainer.py") in files


def test_function_lengths_are_measured_as_spans(tmp_path):
    source = tmp_path / "example.py"
    source.write_text(
        "@decorator\n"        # 1
        "def outer():\n"      # 2
        "    def inner():\n"  # 3
        "        return 1\n"  # 4
        "\n"                  # 5
        "    return inner\n"  # 6
        "class K:\n"          # 7
        "    def method(self):\n"
        "        pass\n",
        encoding="utf-8",
    )
    assert sorted(function_lengths(source)) == [(1, "outer", 6), (3, "outer.<locals>.inner", 2), (8, "K.method", 2)]


def test_no_function_is_longer_than_the_limit():
    offenders = [
        f"{path.relative_to(SRC.parents[1])}:{line}: {name} is {length} lines"
        for path in sorted(SRC.rglob("*.py"))
        for line, name, length in function_lengths(path)
        if length > MAX_FUNCTION_LINES
    ]
    assert not offenders, (
        f"functions longer than {MAX_FUNCTION_LINES} lines (split them into named steps):\n" + "\n".join(offenders)
    )


# ------------------------------------------------------------- moved modules keep their old names
def test_every_moved_module_still_imports_under_its_old_name_with_a_deprecation_warning():
    import importlib
    import sys
    import warnings

    from landiff._moved import MOVED

    assert MOVED, "the alias table is empty"
    for old, new in MOVED.items():
        sys.modules.pop(old, None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = importlib.import_module(old)
        assert module is importlib.import_module(new), old
        assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught), old
        place = SRC.parent / Path(*old.split("."))
        assert not place.with_suffix(".py").exists() and not place.is_dir(), f"{old} exists at its old place too"


def test_an_old_name_gives_the_same_objects_as_the_new_one():
    import warnings

    from landiff.workflows.study.verdict import Claim

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from landiff.study.verdict import Claim as old_claim
        from landiff.train.config import TrainConfig as old
    from landiff.runs.config import TrainConfig

    assert old is TrainConfig and old_claim is Claim
