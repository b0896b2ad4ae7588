"""Batched painter's-algorithm renderer for the procedural landscapes.

Layers are painted back to front on a float32 canvas laid out (N, 3, H, W) — planar, so that
NumPy's inner loops run over whole rows instead of 3-element pixels (≈30× faster than
channels-last broadcasting). Order: sky gradient and horizon glow → sun/moon halo and disc →
stars → clouds → mountain ranges (far to near) → far-shore forest → lake reflection → ground.

Determinism: pixel values come from element-wise operations on each image's own parameters
(the only reductions, min/max, are exact), so an image is bit-identical alone or in any batch.
The chunk only decides which rows a layer visits: rows skipped above a layer have coverage
exactly 0 there, and rows under an image's horizon — which hold different leftovers in
different chunks — are replaced exactly by water (a select) or ground (``t·(1−α) + c·α`` with
α = 1), so the crop never changes a pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from landiff.data.landscape_batch import F32, SceneBatch
from landiff.data.landscape_mountains import paint_ranges
from landiff.data.landscape_noise import resample_1d, resample_2d
from landiff.data.landscape_params import LandscapeParams, SceneNoise


def render_chunk(
    params: Sequence[LandscapeParams],
    noise: Sequence[SceneNoise],
    height: int,
    width: int,
    channels_first: bool = False,
) -> np.ndarray:
    """Renders a few images into uint8 (N, H, W, 3), or (N, 3, H, W) if ``channels_first``."""
    b = SceneBatch(params, noise, height, width)
    img = np.zeros((b.n, 3, height, width), F32)
    sky_rows = int(b.horizon_row.max())
    _paint_sky(b, img[:, :, :sky_rows])
    _paint_clouds(b, img[:, :, :sky_rows])
    paint_ranges(b, img, sky_rows)
    _paint_forest(b, img, sky_rows)
    _paint_lake(b, img)
    _paint_ground(b, img)
    img *= F32(255.0)
    img += F32(0.5)  # round to nearest in the truncating cast below
    np.clip(img, 0.0, 255.0, out=img)
    if channels_first:
        return img.astype(np.uint8)
    out = np.empty((b.n, height, width, 3), np.uint8)
    np.copyto(out, img.transpose(0, 2, 3, 1), casting="unsafe")
    return out


def _sun_offsets(b: SceneBatch, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offsets from the sun/moon centre in height units: dx (N,1,W), dy (N,R,1), visible (N,1,1)."""
    dx = (b.xs[None, None, :] - b.scalar(lambda p: p.body.x)) * F32(b.w / b.h)
    dy = b.ys[None, :rows, None] - b.scalar(lambda p: p.body.y)
    return dx, dy, b.scalar(lambda p: float(p.body.kind != "none"))


def _paint_sky(b: SceneBatch, sky: np.ndarray) -> None:
    """Three-stop gradient (top → mid → horizon), horizon glow, halo, stars and the disc."""
    rows = sky.shape[2]
    t = np.clip(b.ys[None, :rows, None] / b.horizon, 0.0, 1.0)  # (N, R, 1): 0 top, 1 horizon
    mid = b.scalar(lambda p: p.sky_mid_pos)
    lo = np.clip(t / mid, 0.0, 1.0)[:, None]
    hi = np.clip((t - mid) / (1.0 - mid), 0.0, 1.0)[:, None]
    top, mid_c, hor = b.rgb(lambda p: p.sky_top), b.rgb(lambda p: p.sky_mid), b.rgb(lambda p: p.sky_horizon)
    # Horizon glow: a Lorentzian band above the horizon, wider and stronger below the sun.
    dx, dy, visible = _sun_offsets(b, rows)
    band = 1.0 / (1.0 + ((1.0 - t) * b.horizon / F32(0.12)) ** 2)
    under_sun = 0.45 + 0.55 / (1.0 + dx * dx / F32(0.08))
    glow = (band * under_sun * b.scalar(lambda p: p.glow_strength))[:, None]
    np.multiply(b.rgb(lambda p: p.glow), glow, out=sky)
    sky += top + (mid_c - top) * lo + (hor - mid_c) * hi  # (N, 3, R, 1): per-row gradient
    # Halo: Lorentzian falloff, half brightness at 4 disc radii.
    radius = b.scalar(lambda p: p.body.radius)
    halo = (visible * b.scalar(lambda p: p.body.halo)) / (1.0 + (dx * dx + dy * dy) / (4.0 * radius) ** 2)
    sky += b.rgb(lambda p: p.body.colour) * halo[:, None]
    _paint_stars(b, sky)
    _paint_disc(b, sky, dx, dy, radius, visible)


def _paint_disc(b: SceneBatch, sky: np.ndarray, dx: np.ndarray, dy: np.ndarray, radius: np.ndarray,
                visible: np.ndarray) -> None:
    """The sun or moon disc (antialiased over one pixel), on the rows it can cover only."""
    centre = np.array([p.body.y for p in b.p]) * b.h
    reach = np.array([p.body.radius for p in b.p]) * b.h + 2.0
    r0, r1 = max(int((centre - reach).min()), 0), min(int(np.ceil((centre + reach).max())), sky.shape[2])
    if r0 >= r1 or not visible.any():
        return
    dy = dy[:, r0:r1]
    disc = np.clip((radius - np.sqrt(dx * dx + dy * dy)) * F32(b.h) + 0.5, 0.0, 1.0) * visible
    # Crescent moon: take away a disc offset up and to the right by `crescent` radii.
    shift = b.scalar(lambda p: p.body.crescent) * radius * F32(0.7)
    if shift.any():
        shadow_d = np.sqrt((dx - shift) ** 2 + (dy + shift) ** 2)
        disc *= 1.0 - np.clip((radius - shadow_d) * F32(b.h) + 0.5, 0.0, 1.0) * (shift > 0)
    target = sky[:, :, r0:r1]
    target += (b.rgb(lambda p: p.body.colour) - target) * disc[:, None]


def _paint_stars(b: SceneBatch, sky: np.ndarray) -> None:
    """Scatters single-pixel stars; the count scales with the sky's pixel area."""
    if not any(p.stars > 0 for p in b.p):
        return
    stars = b.stack(lambda z: z.stars)  # (N, S, 3): x, y, brightness
    counts = np.array([int(p.stars * b.h * b.w * p.horizon) for p in b.p])
    used = np.arange(stars.shape[1])[None, :] < counts[:, None]
    rows = np.minimum((stars[..., 1] * b.horizon_row[:, None]).astype(np.intp), b.horizon_row[:, None] - 1)
    cols = np.minimum((stars[..., 0] * b.w).astype(np.intp), b.w - 1)
    light = np.where(used, 0.25 + 0.75 * stars[..., 2] ** 3, 0.0).astype(F32)
    field = np.zeros((b.n, sky.shape[2], b.w), F32)
    np.maximum.at(field, (np.arange(b.n)[:, None], rows, cols), light)
    fade = np.clip(1.0 - b.ys[None, : sky.shape[2], None] / b.horizon, 0.0, 1.0)  # dimmer low down
    sky += (field * fade)[:, None] * F32(0.9)


def _paint_clouds(b: SceneBatch, sky: np.ndarray) -> None:
    """Soft clouds from two octaves of 2-D value noise, thinning toward the horizon.

    Shading compares the density with the density a little above: where it grows downward
    we are on a cloud's upper surface, lit by a high sun; a low (setting) sun lights the
    undersides instead.
    """
    rows = slice(0, sky.shape[2])
    coarse_grid = b.stack(lambda z: z.clouds)
    coarse = resample_2d(coarse_grid, rows, b.w, b.h)
    density = F32(0.6) * coarse + F32(0.4) * resample_2d(b.stack(lambda z: z.clouds_fine), rows, b.w, b.h)
    # The coarse octave a third of a lattice cell higher (whole rows, clamped at the top).
    lag = max(1, round(0.3 * b.h / (coarse_grid.shape[1] - 1)))
    above = np.concatenate([coarse[:, :1].repeat(min(lag, coarse.shape[1]), axis=1), coarse[:, :-lag]], axis=1)
    threshold = 0.72 - 0.45 * b.scalar(lambda p: p.cloud_cover)
    core = np.clip((density - threshold) / F32(0.14), 0.0, 1.0)
    y = b.ys[None, rows, None]
    fade = np.clip((b.horizon - y) / (0.35 * b.horizon), 0.0, 1.0)
    alpha = (core * (2.0 - core) * fade * b.scalar(lambda p: p.cloud_opacity))[:, None]
    low_sun = b.scalar(lambda p: -1.0 if p.body.y > 0.7 * p.horizon else 1.0)
    light = np.clip(0.55 + (coarse - above) * low_sun * F32(5.4) - 0.25 * core, 0.0, 1.0)[:, None]
    lit, shade = b.rgb(lambda p: p.cloud_lit), b.rgb(lambda p: p.cloud_shade)
    sky += (shade + (lit - shade) * light - sky) * alpha


def _paint_forest(b: SceneBatch, img: np.ndarray, sky_rows: int) -> None:
    """A band of conifers (triangles) standing on the far shore."""
    tall = b.scalar(lambda p: p.trees)[:, :, 0]  # (N, 1)
    if not np.any(tall > 0):
        return
    trees = b.stack(lambda z: z.trees)  # (N, M, 4): x, height, width, presence
    th = tall * (0.4 + 0.6 * trees[..., 1]) * (trees[..., 3] < 0.75)  # (N, M)
    half_w = th * (0.22 + 0.12 * trees[..., 2]) * F32(b.h / b.w)
    dist = np.abs(b.xs[None, None, :] - trees[..., 0:1])  # (N, M, W)
    profile = (th[..., None] * np.clip(1.0 - dist / (half_w[..., None] + 1e-6), 0.0, 1.0)).max(axis=1)
    # Trees stand on a thin band of undergrowth; treeless columns move below the image.
    top = b.horizon[:, 0] - profile - np.where(profile > 0, F32(0.012), F32(-1.0))
    r0 = max(int(np.floor(top.min() * b.h)) - 1, 0)
    if r0 >= sky_rows:
        return
    alpha = np.clip((b.ys[None, r0:sky_rows, None] - top[:, None, :]) * F32(b.h) + 0.5, 0.0, 1.0)
    colour = b.rgb(lambda p: p.tree_colour)
    colour = colour + (b.rgb(lambda p: p.haze) - colour) * F32(0.15)
    target = img[:, :, r0:sky_rows]
    target += (colour - target) * alpha[:, None]


def _paint_lake(b: SceneBatch, img: np.ndarray) -> None:
    """Mirrors the scene about the horizon with a per-row sine ripple, darkened and tinted."""
    lake = np.array([p.lake for p in b.p])
    if not lake.any():
        return
    r0 = int(b.horizon_row[lake].min())
    rows = np.arange(r0, b.h)[None, :]  # (1, R)
    below = rows - b.horizon_row[:, None]  # rows under the waterline, (N, R)
    inside = (below >= 0) & lake[:, None]
    src_row = np.where(inside, np.maximum(b.horizon_row[:, None] - 1 - below, 0), rows)
    # Ripple: horizontal shift growing toward the viewer; wave spacing in units of height.
    phase = b.stack(lambda z: z.ripple)  # (N, 4)
    depth = (below.clip(0) / b.h).astype(F32)
    # About 2–4 radians per row at 64 px: neighbouring rows shift in opposite directions.
    wave = np.sin(depth * F32(64 * 2.2) * (1.0 + phase[:, 1:2]) + phase[:, 0:1] * F32(2 * np.pi))
    amp = b.scalar(lambda p: p.ripple)[:, 0] * F32(b.w) * (0.5 + 8.0 * depth)
    shift = np.where(inside, np.rint(amp * wave), 0).astype(np.intp)
    cols = np.clip(np.arange(b.w)[None, None, :] + shift[:, :, None], 0, b.w - 1)  # (N, R, W)
    plane = (np.arange(b.n)[:, None] * 3 + np.arange(3)[None, :]) * b.h  # (N, 3)
    index = ((plane[:, :, None] + src_row[:, None, :]) * b.w)[..., None] + cols[:, None]
    mirrored = np.take(img, index)  # (N, 3, R, W)
    # Darker and lighter bands of water, a few per lake.
    streak = 1.0 - 0.18 * (0.5 + 0.5 * np.sin(depth * F32(40.0) + phase[:, 2:3] * F32(2 * np.pi)))
    refl = (b.scalar(lambda p: p.reflectance)[:, 0] * streak)[:, None, :, None]
    water = mirrored * refl + b.rgb(lambda p: p.water) * (1.0 - refl)
    target = img[:, :, r0:]
    target[:] = np.where(inside[:, None, :, None], water, target)


def _paint_ground(b: SceneBatch, img: np.ndarray) -> None:
    """Foreground ground: rolling edge, far-to-near colour gradient, texture and vegetation.

    Texture rows are laid out in perspective (:func:`ground_table`), so patches shrink toward
    the horizon like fields seen from a hill.
    """
    base_row = np.array([round(p.shore * b.h) if p.lake else r for p, r in zip(b.p, b.horizon_row, strict=True)])
    base = (base_row / b.h).astype(F32)[:, None]
    edge = base - b.scalar(lambda p: p.hills)[:, 0] * resample_1d(b.stack(lambda z: z.shore), b.w)
    r0 = max(int(np.floor(edge.min() * b.h)) - 1, 0)
    rows = slice(r0, b.h)
    y = b.ys[None, rows, None]
    alpha = np.clip((y - edge[:, None, :]) * F32(b.h) + 0.5, 0.0, 1.0)
    t = np.clip((y - base[:, :, None]) / (1.0 - base[:, :, None] + 1e-6), 0.0, 1.0)[:, None]
    far, near = b.rgb(lambda p: p.ground_far), b.rgb(lambda p: p.ground_near)
    snowy = np.array([p.cls == "snow" for p in b.p])[:, None, None, None]
    shadow = np.where(snowy, b.rgb(lambda p: p.snow_shadow), near * F32(0.55)).astype(F32)
    tex = resample_2d(b.stack(lambda z: z.ground), rows, b.w, b.h, perspective=True)
    bush = resample_2d(b.stack(lambda z: z.bushes), rows, b.w, b.h, perspective=True)
    # Mixing both octaves keeps the patches from following the lattice's axis-aligned cells.
    threshold = 0.95 - 0.4 * b.scalar(lambda p: p.bushes)
    patches = np.clip((bush * F32(0.7) + tex * F32(0.3) - threshold) / F32(0.12), 0.0, 1.0)
    # Texture contrast fades with distance (aerial perspective), hiding aliasing near the horizon.
    dim = np.clip(b.scalar(lambda p: p.ground_texture) * (tex * 2.0 - 0.5), 0.0, 1.0) * (0.3 + 0.7 * t[:, 0])
    colour = far + (near - far) * t  # (N, 3, R, 1)
    colour = colour + (shadow - colour) * dim[:, None]
    colour += (b.rgb(lambda p: p.bush_colour) - colour) * (patches * 0.7)[:, None]
    # Written as t·(1−α) + c·α so that full coverage replaces the pixel exactly: the rows under
    # the horizon hold different leftovers depending on the chunk, and must not leak through.
    target = img[:, :, rows]
    target *= (1.0 - alpha)[:, None]
    target += colour * alpha[:, None]
