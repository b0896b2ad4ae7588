"""Shared test set-up: the automatic data cache goes to a temporary folder, never ~/.cache."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _data_cache(tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("data-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("LANDIFF_DATA_CACHE", str(cache))
    yield cache
    patch.undo()
