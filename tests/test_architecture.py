"""Structural limits on the source: no function in src/landiff grows past MAX_FUNCTION_LINES lines,
imports sit at module level (the layer contracts of pyproject.toml then see all of them), and the
layer map of docs/architecture.md is the one `lint-imports` enforces.

A function's length is its span in the file, from its first decorator (or ``def``) to its last
line, docstring and comments included; nested functions and methods are checked on their own
and also count towards the function that contains them. The training loops
(src/landiff/train/diffusion_trainer.py, gan_trainer.py) are the ones this keeps readable.
"""

from __future__ import annotations

import ast
import importlib
import sys
import warnings
from pathlib import Path

import pytest

from landiff._moved import MOVED

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
    from landiff.workflows.study.verdict import Claim

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from landiff.study.verdict import Claim as old_claim
        from landiff.train.config import TrainConfig as old
    from landiff.runs.config import TrainConfig

    assert old is TrainConfig and old_claim is Claim


# ------------------------------------------------------------------ imports at module level
# The only imports allowed inside a function: optional dependencies (an extra of pyproject.toml),
# each with a comment that says so. Everything else is imported at the top of its module.
OPTIONAL_DEPENDENCIES = ("matplotlib", "torch.utils.tensorboard")


def function_local_imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) of every import statement inside a function of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[tuple[int, str]] = set()
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom):
                    found.add((node.lineno, "." * node.level + (node.module or "")))
                elif isinstance(node, ast.Import):
                    found.update((node.lineno, alias.name) for alias in node.names)
    return sorted(found)


def test_imports_inside_functions_are_only_optional_dependencies_with_a_comment():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for line, module in function_local_imports(path):
            where = f"{path.relative_to(SRC.parent)}:{line} imports {module}"
            if not any(module == dep or module.startswith(dep + ".") for dep in OPTIONAL_DEPENDENCIES):
                offenders.append(f"{where} inside a function; import it at the top of the module")
            elif not any("optional" in text.partition("#")[2] for text in lines[max(0, line - 3):line]):
                offenders.append(f"{where} without a comment (on it or the two lines above) saying it is optional")
    assert not offenders, "\n".join(offenders)


def test_the_import_scan_sees_an_import_inside_a_function(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from landiff import grid\n    import json, re\n")
    assert function_local_imports(module) == [(4, "landiff"), (5, "json"), (5, "re")]


# ------------------------------------------------------------ the documented layer map is enforced
def _contract_layers() -> list[str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    config = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    (layers,) = [c for c in contracts if c["type"] == "layers"]
    assert layers["containers"] == ["landiff"] and layers["exhaustive"] is True
    return layers["layers"]


def test_docs_architecture_shows_the_layer_map_that_lint_imports_enforces():
    text = (SRC.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text.split("<!-- layers:", 1)[1].split("```", 2)[1]
    assert [line.strip() for line in block.strip().splitlines()] == _contract_layers()


def test_every_top_level_module_and_package_has_a_layer():
    named = {name.strip() for row in _contract_layers() for name in row.split("|")}
    present = {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"}
    present |= {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert named == present
