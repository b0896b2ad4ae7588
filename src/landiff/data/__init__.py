"""Datasets: the built-in procedural landscapes, image folders and prepared (decoded) caches.

Every dataset yields ``(uint8 tensor (3, H, W), int label)`` and has ``classes: list[str]``;
:func:`open_dataset` turns a ``--data`` string into one.
"""

from __future__ import annotations

from landiff.data.cache import open_cached_folder
from landiff.data.folder import DataSummary, ImageFolderDataset, write_skipped_report
from landiff.data.health import HealthReport, check_folder, format_report
from landiff.data.images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, as_size
from landiff.data.landscapes import CLASSES, render_landscape
from landiff.data.open import open_dataset
from landiff.data.prepared import Manifest, PreparedDataset, is_prepared, prepare_folder, read_manifest
from landiff.data.scan import FolderScan, SkippedFile, scan_folder
from landiff.data.synthetic import SyntheticLandscapes

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

