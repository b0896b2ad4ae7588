"""Shared test set-up: the automatic data cache goes to a temporary folder, never ~/.cache; one torch thread where asked."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _data_cache(tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("data-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("LANDIFF_DATA_CACHE", str(cache))
    yield cache
    patch.undo()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors on a busy 2-core machine: intra-op threads only add contention. Restored after.

    A module asks for it with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
