"""Deprecated import paths of modules that moved, kept for one release (until landiff 0.3).

``import landiff.train.config`` still works after the module moved to ``landiff.runs.config``:
the finder below maps the old name to the module at its new place (the same module object, so
``isinstance`` and monkeypatching behave as before) and warns once with a
:class:`DeprecationWarning` that names the new path. docs/architecture.md lists where things live.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

# old dotted name (a module, or a package whose submodules moved with it) -> new dotted name
MOVED = {
    "landiff.train.files": "landiff.runs.files",
    "landiff.train.checkpoint": "landiff.runs.checkpoint",
    "landiff.train.config": "landiff.runs.config",
    "landiff.train.run_dir": "landiff.runs.run_dir",
    "landiff.train.run": "landiff.runs.load",
    "landiff.samplers.noise": "landiff.noise",
    "landiff.demo": "landiff.workflows.demo",
    "landiff.compare": "landiff.workflows.compare",
    "landiff.pair": "landiff.workflows.pairing",
    "landiff.cost": "landiff.workflows.cost",
    "landiff.study": "landiff.workflows.study",
    "landiff.report.formatting": "landiff.report.numbers",
    "landiff.report.differences": "landiff.report.numbers",
    "landiff.report.document": "landiff.report.render",
    "landiff.report.html": "landiff.report.render",
    "landiff.report.markdown": "landiff.report.render",
    "landiff.report.images": "landiff.report.figures",
    "landiff.report.plots": "landiff.report.figures",
    "landiff.report.sections": "landiff.report.build",
}


def new_name(old: str) -> str | None:
    """Where the module once importable as ``old`` lives now (None: it did not move)."""
    for before, after in MOVED.items():
        if old == before or old.startswith(before + "."):
            return after + old[len(before):]
    return None


class _Alias(importlib.abc.Loader):
    def __init__(self, module: ModuleType) -> None:
        self.module = module

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return self.module

    def exec_module(self, module: ModuleType) -> None:
        pass  # the module ran when it was imported under its new name


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Resolves the old names in :data:`MOVED` to the modules at their new places."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> (
            importlib.machinery.ModuleSpec | None):
        target_name = new_name(fullname)
        if target_name is None:
            return None
        warnings.warn(f"{fullname} moved to {target_name}; the old name goes away in landiff 0.3",
                      DeprecationWarning, stacklevel=2)
        module = importlib.import_module(target_name)
        spec = importlib.machinery.ModuleSpec(fullname, _Alias(module), is_package=hasattr(module, "__path__"))
        return spec


def install() -> None:
    """Adds the finder once, before the normal ones.

    First, because a moved package's old name is bound to the package at its new place: the path
    finder would otherwise find its submodules under the old name and run them a second time.
    """
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())
