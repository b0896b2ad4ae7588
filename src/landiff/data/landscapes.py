"""The built-in dataset: procedural mountain landscapes in four classes, rendered with NumPy.

A scene is a sky gradient for the time of day with a horizon glow, a sun or moon with a halo
(stars at night), soft value-noise clouds, 2–4 mountain ranges with fractal ridgelines whose
colour and contrast fade toward the horizon colour with distance (aerial perspective), snow on
high peaks in some scenes, an optional lake mirroring sky and mountains with ripples, a
far-shore forest and textured foreground ground. See :mod:`landiff.data.landscape_params` for
the parameters and :mod:`landiff.data.landscape_render` for the painter.

Seeding: image ``k`` of a dataset with seed ``s`` uses the per-image seed
``image_seed(s, k)`` (from ``numpy.random.SeedSequence([s, k])``), so it is the same in every
process, worker and rank and at any batch size (bit-identical with the same NumPy build and CPU
family; NumPy's SIMD ``sin``/``pow`` may differ in the last bit between CPU families, which can
move a rare pixel by one level). Its class is ``classes[k % len(classes)]``, which balances the
classes. Example::

    img, params = render_landscape(seed=7, resolution=64, cls="sunset")   # (64, 64, 3) uint8
    batch, params = render_batch(0, range(256), 32)                      # (256, 32, 32, 3)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import overload

import numpy as np

from landiff.data.landscape_params import (
    CLASSES,
    Celestial,
    ClassName,
    LandscapeParams,
    MountainRange,
    SceneNoise,
    draw_noise,
    draw_params,
)
from landiff.data.landscape_render import render_chunk
from landiff.errors import UserError

__all__ = [
    "CLASSES",
    "Celestial",
    "ClassName",
    "LandscapeParams",
    "MountainRange",
    "check_resolution",
    "class_for_index",
    "image_seed",
    "landscape_params",
    "render_batch",
    "render_landscape",
]

# Float32 working set per chunk (N·3·H·W) kept near the L2 cache: large arrays spill to memory
# and every layer slows down; tiny chunks pay NumPy's per-call overhead instead.
_CHUNK_PIXELS = 48 * 48 * 16


def image_seed(dataset_seed: int, index: int) -> int:
    """Per-image seed of image ``index`` of the dataset with seed ``dataset_seed`` (a uint64)."""
    state = np.random.SeedSequence([dataset_seed, index]).generate_state(1, np.uint64)
    return int(state[0])


def class_for_index(index: int, classes: Sequence[str] | None = None) -> str:
    """Balanced class assignment: image ``index`` gets ``classes[index % len(classes)]``."""
    names = CLASSES if classes is None else classes
    return names[index % len(names)]


def render_landscape(
    seed: int, resolution: int | tuple[int, int], cls: str | None = None
) -> tuple[np.ndarray, LandscapeParams]:
    """Renders one landscape; a pure function of its arguments.

    Args:
        seed: per-image seed (any non-negative int; datasets use :func:`image_seed`).
        resolution: ``size`` for a square image or ``(height, width)``, in pixels (≥ 8).
        cls: force a class (one of ``CLASSES``); None draws it from the seed.

    Returns:
        ``(image, params)``: uint8 array (H, W, 3) and the latent parameters.
    """
    height, width = check_resolution(resolution)
    params, noise = _draw(seed, _check_class(cls))
    return render_chunk([params], [noise], height, width)[0], params


def landscape_params(seed: int, cls: str | None = None) -> LandscapeParams:
    """The latent parameters ``render_landscape(seed, ..., cls)`` would use, without rendering."""
    return _draw(seed, _check_class(cls))[0]


def render_batch(
    dataset_seed: int,
    indices: Iterable[int],
    resolution: int | tuple[int, int],
    classes: Sequence[str] | None = None,
    *,
    channels_first: bool = False,
) -> tuple[np.ndarray, list[LandscapeParams]]:
    """Renders images ``indices`` of the dataset with seed ``dataset_seed``.

    Image ``k`` equals ``render_landscape(image_seed(dataset_seed, k), resolution,
    class_for_index(k, classes))`` byte for byte, whatever the batch it is rendered in.

    Args:
        dataset_seed: seed of the dataset (non-negative).
        indices: generator indices of the images.
        resolution: ``size`` or ``(height, width)`` in pixels.
        classes: the dataset's classes, assigned round-robin by index; None means ``CLASSES``.
        channels_first: return (N, 3, H, W) instead, as torch wants it (saves two transposes).

    Returns:
        ``(images, params)``: uint8 array (N, H, W, 3) and one :class:`LandscapeParams` per image.
    """
    height, width = check_resolution(resolution)
    names = tuple(_check_class(c) for c in classes) if classes is not None else CLASSES
    if not names:
        raise UserError("classes: give at least one class name, e.g. day,snow")
    drawn = [_draw(image_seed(dataset_seed, k), class_for_index(k, names)) for k in indices]
    shape = (len(drawn), 3, height, width) if channels_first else (len(drawn), height, width, 3)
    images = np.empty(shape, np.uint8)
    chunk = max(1, _CHUNK_PIXELS // (height * width))
    for start in range(0, len(drawn), chunk):
        part = drawn[start : start + chunk]
        images[start : start + len(part)] = render_chunk(
            [d[0] for d in part], [d[1] for d in part], height, width, channels_first
        )
    return images, [d[0] for d in drawn]


def _draw(seed: int, cls: str | None) -> tuple[LandscapeParams, SceneNoise]:
    """Parameters first, then the noise lattices, from one PCG64 stream."""
    if seed < 0:
        raise UserError(f"seed: must be a non-negative integer, got {seed}")
    rng = np.random.Generator(np.random.PCG64(seed))
    params = draw_params(seed, rng, cls)
    return params, draw_noise(rng)


def check_resolution(resolution: int | tuple[int, int]) -> tuple[int, int]:
    """``size`` or ``(height, width)`` → ``(height, width)``; raises UserError outside 8..4096 px."""
    sizes = (resolution, resolution) if isinstance(resolution, (int, np.integer)) else tuple(resolution)
    if len(sizes) != 2 or not all(isinstance(v, (int, np.integer)) and 8 <= v <= 4096 for v in sizes):
        raise UserError(f"resolution: give a size or (height, width) between 8 and 4096 pixels, got {resolution!r}")
    return int(sizes[0]), int(sizes[1])


@overload
def _check_class(cls: str) -> str: ...
@overload
def _check_class(cls: None) -> None: ...
def _check_class(cls: str | None) -> str | None:
    if cls is not None and cls not in CLASSES:
        raise UserError(f"class: unknown landscape class {cls!r}; choose from {', '.join(CLASSES)}")
    return cls
