"""Mountain ranges of the procedural landscapes: fractal ridgelines, facet shading, snow, haze.

All ranges of a chunk are set up at once (arrays (N, MAX_RANGES, ...)); scenes with fewer
ranges get invisible ones whose foot lies below the image. Ranges are then painted far to near.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from landiff.data.landscape_batch import F32, SceneBatch
from landiff.data.landscape_noise import fractal_ridge, resample_1d
from landiff.data.landscape_params import MAX_RANGES

_ABSENT = (3.0, 0.0, 0.5, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0)  # foot below the image: never visible
FACET_CONTRAST = 0.45  # lit faces this much brighter, faces turned away this much darker


@dataclass(frozen=True)
class _Ranges:
    """Geometry (N, MAX_RANGES, W) and colour constants (N, MAX_RANGES, 3, 1, 1) of a chunk."""

    ridge_y: np.ndarray  # y of the ridgeline per column
    shade: np.ndarray  # facet shading in [−1, 1]: + faces the sun
    snow_y: np.ndarray  # snow above this y
    foot: np.ndarray  # (N, MAX_RANGES, 1, 1)
    height: np.ndarray  # (N, MAX_RANGES, 1, 1)
    colours: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # A, B, C, D of paint_ranges


def _setup(b: SceneBatch) -> _Ranges:
    rows = []
    for p in b.p:
        for i in range(MAX_RANGES):
            r = p.ranges[i] if i < len(p.ranges) else None
            rows.append((r.foot, r.height, r.roughness, r.sharpness, r.haze, r.snowline, *r.colour) if r else _ABSENT)
    attrs = np.array(rows, F32).reshape(b.n, MAX_RANGES, -1)
    foot = np.where(attrs[..., 1:2] > 0, b.horizon[:, :, 0:1], attrs[..., 0:1])  # the snapped horizon
    height, gain, sharp = attrs[..., 1:2], attrs[..., 2:3], attrs[..., 3:4]
    ridge, coarse = fractal_ridge(b.stack(lambda z: z.ridges), gain, b.w)  # (N, R, W)
    ridge_y = foot - height * (0.12 + 0.88 * ridge**sharp)
    # Faces rising toward the sun are lit: the sign of the coarse slope times the sun side.
    slope = np.empty_like(coarse)
    slope[..., 1:-1] = coarse[..., 2:] - coarse[..., :-2]
    slope[..., 0], slope[..., -1] = slope[..., 1], slope[..., -2]
    sun_left = b.scalar(lambda p: 1.0 if p.body.x < 0.5 else -1.0)
    shade = np.clip(slope * sun_left * F32(0.3 * b.w), -1.0, 1.0)
    # A jagged snowline: streaks from fine noise, plus more snow on the ridge's high points.
    edge = resample_1d(b.stack(lambda z: z.snow_edge), b.w) - 0.5
    snow_y = foot - height * attrs[..., 5:6] + height * (F32(0.35) * edge + F32(0.15) * (ridge - 0.5))
    return _Ranges(
        ridge_y=ridge_y, shade=shade, snow_y=snow_y, foot=foot[..., None], height=height[..., None],
        colours=_colours(b, attrs[..., 4], attrs[..., 6:9]),
    )


def _colours(
    b: SceneBatch, haze_amount: np.ndarray, rock: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Constants A..D, each (N, MAX_RANGES, 3, 1, 1), with aerial perspective folded in."""
    keep = (1.0 - haze_amount)[:, :, None]  # (N, R, 1)
    haze = b.rgb(lambda p: p.haze)[:, None, :, 0, 0]  # (N, 1, 3)
    lit, dark = b.rgb(lambda p: p.snow)[:, None, :, 0, 0], b.rgb(lambda p: p.snow_shadow)[:, None, :, 0, 0]
    rock_facet = F32(FACET_CONTRAST) * rock
    snow_mid, snow_facet = dark + F32(0.55) * (lit - dark), F32(FACET_CONTRAST) * (lit - dark)
    parts = (rock - haze, rock_facet, snow_mid - rock, snow_facet - rock_facet)
    a, b_, c, d = ((keep * part)[..., None, None].astype(F32) for part in parts)
    return a, b_, c, d


def paint_ranges(b: SceneBatch, img: np.ndarray, sky_rows: int) -> None:
    """Paints every range, far to near, into the rows above ``sky_rows`` of ``img`` (N, 3, H, W).

    A range's colour is affine in three per-pixel fields — facet shading ``f``, snow cover ``s``
    and the valley mist's complement ``c`` — so it is assembled from constant colours as
    ``haze + c·(A + f·B + s·C + s·f·D)``, aerial perspective (haze) folded into A..D.
    """
    ranges = _setup(b)
    haze = b.rgb(lambda p: p.haze)
    for i in range(MAX_RANGES):
        r0 = max(int(np.floor(ranges.ridge_y[:, i].min() * b.h)) - 1, 0)
        if r0 < sky_rows:  # else no image of the chunk has this range
            _paint_range(b, img[:, :, r0:sky_rows], ranges, i, slice(r0, sky_rows), haze)


def _paint_range(b: SceneBatch, target: np.ndarray, ranges: _Ranges, i: int, rows: slice, haze: np.ndarray) -> None:
    """Range ``i`` over the pixel rows ``rows`` (``target`` is that slice of the canvas)."""
    ridge_y = ranges.ridge_y[:, i]
    y = b.ys[None, rows, None]
    y_px = y * F32(b.h)
    # Coverage, antialiased over one pixel: 0 above the ridgeline, 1 half a pixel below it.
    alpha = np.clip(y_px - (ridge_y * F32(b.h) - 0.5)[:, None, :], 0.0, 1.0)  # (N, R, W)
    foot, height = ranges.foot[:, i], ranges.height[:, i] + F32(1e-6)  # (N, 1, 1)
    # Mist at the foot of every range separates it from the range behind.
    clear = 1.0 - np.clip((y - foot) / (0.3 * height) + 1.0, 0.0, 1.0) * F32(0.55)
    # Facet shading fades out 0.4 heights below the ridge: (ridge + 0.4 h − y) / (0.4 h).
    fade_end = ((ridge_y[:, None, :] + 0.4 * height) / (0.4 * height))
    facet = np.clip(fade_end - y / (0.4 * height), 0.0, 1.0)
    facet *= ranges.shade[:, i, None, :]
    snow_px = (ranges.snow_y[:, i] * F32(0.7 * b.h) + 0.5)[:, None, :]
    snow = np.clip(snow_px - y_px * F32(0.7), 0.0, 1.0)
    snow *= clear
    a, bb, c, d = (part[:, i] for part in ranges.colours)
    colour = bb * (clear * facet)[:, None]  # (N, 3, R, W)
    colour += a * clear[:, None]
    colour += c * snow[:, None]
    snow *= facet
    colour += d * snow[:, None]
    colour += haze
    # t·(1−α) + c·α: full coverage replaces the pixel exactly (see landscape_render).
    colour *= alpha[:, None]
    target *= (1.0 - alpha)[:, None]
    target += colour
