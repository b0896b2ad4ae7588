"""Datasets: the built-in procedural landscapes, image folders and prepared (decoded) caches.

Every dataset yields ``(uint8 tensor (3, H, W), int label)`` and has ``classes: list[str]``;
:func:`open_dataset` turns a ``--data`` string into one.
"""

from __future__ import annotations

from typing import Any

from landiff.data.cache import open_cached_folder
from landiff.data.folder import DataSummary, ImageFolderDataset, write_skipped_report
from landiff.data.health import HealthReport, check_folder, format_report
from landiff.data.images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, as_size
from landiff.data.open import open_dataset
from landiff.data.prepared import Manifest, PreparedDataset, is_prepared, prepare_folder, read_manifest
from landiff.data.scan import FolderScan, SkippedFile, scan_folder

# Names of the landscape generator, imported on first use so that importing the folder tools
# does not pay for (or depend on) the generator modules.
_LAZY = {
    "SyntheticLandscapes": "landiff.data.synthetic",
    "render_landscape": "landiff.data.landscapes",
    "CLASSES": "landiff.data.landscapes",
}

__all__ = [
    "CLASSES",
    "DEFAULT_MAX_PIXELS",
    "DataSummary",
    "FolderScan",
    "HealthReport",
    "IMAGE_EXTENSIONS",
    "ImageFolderDataset",
    "Manifest",
    "PreparedDataset",
    "SkippedFile",
    "SyntheticLandscapes",
    "as_size",
    "check_folder",
    "format_report",
    "is_prepared",
    "open_cached_folder",
    "open_dataset",
    "prepare_folder",
    "read_manifest",
    "render_landscape",
    "scan_folder",
    "write_skipped_report",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'landiff.data' has no attribute {name!r}")
