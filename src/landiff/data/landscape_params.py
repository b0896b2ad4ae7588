"""Latent parameters of one procedural landscape, and how they are drawn from its seed.

Coordinates are fractions of the image: ``x`` in [0, 1] left to right, ``y`` in [0, 1] top to
bottom; lengths are fractions of the image height. Colours are sRGB in [0, 1].

Per class, a :class:`_Style` gives the palette and the ranges the scene parameters are drawn
from; every image then jitters its colours, so no two scenes share exactly the same palette.

The order of the draws defines the images: changing it (or a range) changes every dataset, so
add new draws at the end of :func:`draw_params` and say so in the changelog.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, TypeVar, cast

import numpy as np

from landiff.data.landscape_noise import RIDGE_LATTICE

RGB = tuple[float, float, float]
_T = TypeVar("_T")
ClassName = Literal["day", "sunset", "night", "snow"]
CLASSES: tuple[ClassName, ...] = ("day", "sunset", "night", "snow")

MAX_RANGES = 4  # mountain ranges per scene: 2 to 4
MAX_TREES = 48  # candidate conifers on the far shore
MAX_STARS = 256  # candidate stars; the count used scales with the sky's pixel area
HORIZON_RANGE = (0.55, 0.72)  # y of the horizon
MAX_RANGE_HEIGHT = 0.46  # keeps every peak below the top edge


@dataclass(frozen=True)
class Celestial:
    """The sun or the moon: a disc with a soft halo (``kind="none"``: hidden by overcast)."""

    kind: Literal["sun", "moon", "none"]
    x: float
    y: float
    radius: float
    colour: RGB
    halo: float  # peak brightness added by the halo, 0..1
    crescent: float  # moon only: offset of the shadow disc in radii (0 = full moon)


@dataclass(frozen=True)
class MountainRange:
    """One range of mountains; ranges are listed far to near."""

    foot: float  # y where the range meets the ground (hidden behind ground or water)
    height: float  # height of the highest peak above the foot
    roughness: float  # amplitude ratio between noise octaves (fBm gain)
    sharpness: float  # exponent applied to the ridge profile; > 1 gives pointed peaks
    haze: float  # aerial perspective: mix toward the haze colour, 0 (near) .. 1 (far)
    colour: RGB  # rock colour before haze
    snowline: float  # snow above this fraction of the height (> 1: no snow)


@dataclass(frozen=True)
class LandscapeParams:
    """Every latent parameter of one landscape (``dataclasses.asdict`` gives plain JSON)."""

    seed: int
    cls: ClassName
    horizon: float  # y of the ground or water line at the mountains' feet
    sky_top: RGB
    sky_mid: RGB
    sky_horizon: RGB
    sky_mid_pos: float  # where the mid colour peaks, as a fraction of the horizon height
    glow: RGB  # horizon glow, strongest under the sun
    glow_strength: float
    body: Celestial
    stars: float  # stars per sky pixel (night)
    cloud_cover: float  # fraction of the sky under cloud, roughly
    cloud_opacity: float
    cloud_lit: RGB
    cloud_shade: RGB
    haze: RGB  # aerial-perspective colour (the sky near the horizon)
    ranges: tuple[MountainRange, ...]
    snow: RGB
    snow_shadow: RGB
    trees: float  # height of the tallest conifers (0: no forest)
    tree_colour: RGB
    lake: bool
    shore: float  # y where the foreground shore starts (lake only)
    ripple: float  # horizontal ripple amplitude as a fraction of the width (lake only)
    reflectance: float  # brightness of the mirrored scene (lake only)
    water: RGB
    ground_far: RGB
    ground_near: RGB
    hills: float  # height of the bumps along the ground line
    ground_texture: float  # contrast of the ground texture
    bushes: float  # density of vegetation patches
    bush_colour: RGB


@dataclass(frozen=True)
class _Style:
    """Palette and parameter ranges of one class."""

    sky: tuple[RGB, RGB, RGB]  # top, mid, horizon
    mid_pos: tuple[float, float]
    glow: RGB
    glow_strength: tuple[float, float]
    body: RGB
    body_kind: Literal["sun", "moon"]
    body_height: tuple[float, float]  # above the horizon, as a fraction of the horizon height
    body_radius: tuple[float, float]
    body_prob: float
    halo: tuple[float, float]
    stars: float
    clouds: tuple[RGB, RGB]  # lit, shade
    cover: tuple[float, float]
    rocks: tuple[RGB, ...]
    haze_far: tuple[float, float]  # aerial-perspective haze of the farthest range
    snow: tuple[RGB, RGB]  # lit, shadow
    snow_prob: float
    snowline: tuple[float, float]
    tree: RGB
    tree_prob: float
    water: RGB
    reflectance: tuple[float, float]
    ground: tuple[tuple[RGB, RGB], ...]  # (far, near) choices
    bush: RGB  # vegetation patches (grass tufts and rocks poking through snow)
    bushes: tuple[float, float]


STYLES: dict[str, _Style] = {
    "day": _Style(
        sky=((0.16, 0.40, 0.80), (0.38, 0.62, 0.92), (0.74, 0.86, 0.97)), mid_pos=(0.45, 0.7),
        glow=(1.0, 0.97, 0.88), glow_strength=(0.05, 0.15), body=(1.0, 0.98, 0.86),
        body_kind="sun", body_height=(0.45, 0.8), body_radius=(0.03, 0.05), body_prob=0.8,
        halo=(0.25, 0.45), stars=0.0, clouds=((1.0, 1.0, 1.0), (0.70, 0.76, 0.86)),
        cover=(0.1, 0.5), haze_far=(0.45, 0.7), rocks=((0.38, 0.45, 0.56), (0.46, 0.43, 0.41), (0.34, 0.43, 0.38)),
        snow=((0.97, 0.98, 1.0), (0.70, 0.77, 0.90)), snow_prob=0.4, snowline=(0.55, 0.8),
        tree=(0.09, 0.25, 0.11), tree_prob=0.55, water=(0.12, 0.32, 0.52), reflectance=(0.6, 0.8),
        bush=(0.08, 0.22, 0.06), bushes=(0.1, 0.7),
        ground=(((0.52, 0.70, 0.30), (0.16, 0.40, 0.10)), ((0.62, 0.70, 0.32), (0.28, 0.45, 0.12)),
                ((0.40, 0.62, 0.34), (0.10, 0.33, 0.12))),
    ),
    "sunset": _Style(
        sky=((0.18, 0.17, 0.42), (0.86, 0.42, 0.50), (1.0, 0.66, 0.30)), mid_pos=(0.45, 0.7),
        glow=(1.0, 0.55, 0.18), glow_strength=(0.3, 0.5), body=(1.0, 0.86, 0.55),
        body_kind="sun", body_height=(0.0, 0.18), body_radius=(0.05, 0.08), body_prob=0.9,
        halo=(0.5, 0.8), stars=0.0, clouds=((1.0, 0.62, 0.45), (0.42, 0.24, 0.40)),
        cover=(0.15, 0.55), haze_far=(0.45, 0.7), rocks=((0.30, 0.18, 0.33), (0.36, 0.20, 0.26), (0.24, 0.16, 0.30)),
        snow=((1.0, 0.80, 0.72), (0.55, 0.42, 0.58)), snow_prob=0.3, snowline=(0.55, 0.8),
        tree=(0.08, 0.05, 0.08), tree_prob=0.55, water=(0.30, 0.14, 0.20), reflectance=(0.65, 0.85),
        bush=(0.07, 0.04, 0.05), bushes=(0.1, 0.6),
        ground=(((0.36, 0.22, 0.22), (0.12, 0.07, 0.08)), ((0.30, 0.24, 0.18), (0.10, 0.08, 0.06))),
    ),
    "night": _Style(
        sky=((0.01, 0.015, 0.05), (0.03, 0.05, 0.14), (0.12, 0.17, 0.33)), mid_pos=(0.5, 0.75),
        glow=(0.20, 0.28, 0.48), glow_strength=(0.05, 0.12), body=(0.96, 0.95, 0.86),
        body_kind="moon", body_height=(0.35, 0.75), body_radius=(0.03, 0.045), body_prob=0.85,
        halo=(0.15, 0.3), stars=0.03, clouds=((0.26, 0.29, 0.38), (0.06, 0.07, 0.12)),
        cover=(0.0, 0.35), haze_far=(0.4, 0.65), rocks=((0.08, 0.10, 0.19), (0.10, 0.10, 0.15)),
        snow=((0.55, 0.62, 0.78), (0.22, 0.27, 0.42)), snow_prob=0.35, snowline=(0.5, 0.8),
        tree=(0.015, 0.025, 0.035), tree_prob=0.55, water=(0.02, 0.04, 0.08), reflectance=(0.55, 0.75),
        bush=(0.01, 0.015, 0.02), bushes=(0.1, 0.6),
        ground=(((0.06, 0.09, 0.12), (0.015, 0.025, 0.035)), ((0.07, 0.08, 0.10), (0.02, 0.02, 0.03))),
    ),
    "snow": _Style(
        sky=((0.42, 0.56, 0.80), (0.68, 0.76, 0.89), (0.88, 0.91, 0.95)), mid_pos=(0.4, 0.7),
        glow=(1.0, 1.0, 1.0), glow_strength=(0.03, 0.08), body=(1.0, 1.0, 0.95),
        body_kind="sun", body_height=(0.4, 0.75), body_radius=(0.03, 0.045), body_prob=0.5,
        halo=(0.15, 0.35), stars=0.0, clouds=((0.88, 0.89, 0.92), (0.58, 0.62, 0.70)),
        cover=(0.2, 0.65), haze_far=(0.12, 0.3), rocks=((0.24, 0.27, 0.34), (0.30, 0.29, 0.32)),
        snow=((0.97, 0.98, 1.0), (0.56, 0.64, 0.82)), snow_prob=1.0, snowline=(0.15, 0.45),
        tree=(0.10, 0.20, 0.17), tree_prob=0.7, water=(0.72, 0.80, 0.90), reflectance=(0.3, 0.5),
        bush=(0.30, 0.33, 0.36), bushes=(0.0, 0.25),
        ground=(((0.86, 0.89, 0.95), (0.97, 0.98, 1.0)), ((0.82, 0.86, 0.93), (0.93, 0.95, 0.99))),
    ),
}


class _Stream:
    """Hands out pre-drawn uniforms one by one: one RNG call per image instead of ~100."""

    def __init__(self, rng: np.random.Generator, n: int = 160) -> None:
        self._next = iter(rng.random(n).tolist()).__next__

    def uniform(self, lo: float = 0.0, hi: float = 1.0) -> float:
        return lo + (hi - lo) * self._next()

    def pick(self, options: tuple[_T, ...]) -> _T:
        return options[min(int(self._next() * len(options)), len(options) - 1)]

    def colour(self, rgb: RGB, spread: float = 0.06) -> RGB:
        """Jitters brightness (shared) and each channel (hue) by up to ``spread`` (< 1)."""
        nxt = self._next
        gain = 1.0 + spread * (2.0 * nxt() - 1.0)
        r = rgb[0] * gain * (1.0 + spread * (2.0 * nxt() - 1.0))
        g = rgb[1] * gain * (1.0 + spread * (2.0 * nxt() - 1.0))
        b = rgb[2] * gain * (1.0 + spread * (2.0 * nxt() - 1.0))
        return (min(r, 1.0), min(g, 1.0), min(b, 1.0))


def _scaled(rgb: RGB, k: float) -> RGB:
    return (rgb[0] * k, rgb[1] * k, rgb[2] * k)


def mix(a: RGB, b: RGB, t: float) -> RGB:
    """Linear interpolation between two colours (t = 0 gives a)."""
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t)


def params_to_json(params: LandscapeParams, digits: int = 5) -> dict:
    """``asdict`` with floats rounded for compact JSON (the seed re-renders the exact image)."""

    def rounded(value: object) -> object:
        if isinstance(value, float):
            return round(value, digits)
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [rounded(v) for v in value]
        return value

    return {k: rounded(v) for k, v in asdict(params).items()}


def draw_params(seed: int, rng: np.random.Generator, cls: str | None) -> LandscapeParams:
    """Draws the latent parameters of one landscape (the class is drawn if ``cls`` is None)."""
    s = _Stream(rng)
    drawn = CLASSES[min(int(s.uniform() * len(CLASSES)), len(CLASSES) - 1)]
    name = cast(ClassName, cls) if cls is not None else drawn  # callers check names (landscapes._check_class)
    st = STYLES[name]
    horizon = s.uniform(*HORIZON_RANGE)
    top, mid, hor = (s.colour(c, 0.08) for c in st.sky)
    haze = mix(hor, mid, s.uniform(0.0, 0.3))
    snowy = s.uniform() < st.snow_prob
    lake = s.uniform() < (0.3 if name == "snow" else 0.45)
    far, near = s.pick(st.ground)
    return LandscapeParams(
        seed=seed, cls=name, horizon=horizon, sky_top=top, sky_mid=mid, sky_horizon=hor,
        sky_mid_pos=s.uniform(*st.mid_pos), glow=s.colour(st.glow), glow_strength=s.uniform(*st.glow_strength),
        body=_draw_body(s, st, horizon), stars=st.stars * s.uniform(0.5, 1.5),
        cloud_cover=s.uniform(*st.cover), cloud_opacity=s.uniform(0.6, 0.95),
        cloud_lit=s.colour(st.clouds[0], 0.04), cloud_shade=s.colour(st.clouds[1], 0.04), haze=haze,
        ranges=_draw_ranges(s, st, horizon, snowy, sunset=name == "sunset"),
        snow=s.colour(st.snow[0], 0.03), snow_shadow=s.colour(st.snow[1], 0.04),
        trees=s.uniform(0.03, 0.07) if s.uniform() < st.tree_prob else 0.0, tree_colour=s.colour(st.tree, 0.15),
        lake=lake, shore=min(horizon + s.uniform(0.1, 0.28), 0.94) if lake else horizon,
        ripple=s.uniform(0.004, 0.014), reflectance=s.uniform(*st.reflectance), water=s.colour(st.water),
        ground_far=s.colour(far), ground_near=s.colour(near),
        hills=s.uniform(0.005, 0.04) if lake else s.uniform(0.01, 0.07), ground_texture=s.uniform(0.1, 0.3),
        bushes=s.uniform(*st.bushes), bush_colour=s.colour(st.bush, 0.1),
    )


def _draw_body(s: _Stream, st: _Style, horizon: float) -> Celestial:
    visible = s.uniform() < st.body_prob
    height = s.uniform(*st.body_height)
    return Celestial(
        kind=st.body_kind if visible else "none", x=s.uniform(0.1, 0.9), y=horizon * (1.0 - height),
        radius=s.uniform(*st.body_radius), colour=s.colour(st.body, 0.03), halo=s.uniform(*st.halo),
        crescent=s.uniform(0.3, 1.2) if s.uniform() < 0.5 and st.body_kind == "moon" else 0.0,
    )


def _draw_ranges(s: _Stream, st: _Style, horizon: float, snowy: bool, sunset: bool) -> tuple[MountainRange, ...]:
    """2–4 ranges, far to near: nearer ones are lower, darker and less hazy (aerial perspective)."""
    count = 2 + min(int(s.uniform() * 3), 2)
    tallest = s.uniform(0.22, 0.42) * (0.8 if sunset else 1.0)
    haze_far, haze_near = s.uniform(*st.haze_far), s.uniform(0.05, 0.2)
    rock = s.pick(st.rocks)
    snow_base = s.uniform(*st.snowline)
    ranges = []
    for i in range(count):
        t = i / (count - 1)  # 0 = farthest, 1 = nearest
        height = min(tallest * (1.0 - 0.45 * t) * s.uniform(0.8, 1.1), MAX_RANGE_HEIGHT)
        # Non-snow classes only whiten the far, tall ranges; the snow class covers them all.
        snowline = snow_base + s.uniform(0.0, 0.15) + (0.0 if st.snow_prob >= 1 else 0.5 * t)
        ranges.append(MountainRange(
            foot=horizon, height=height, roughness=s.uniform(0.38, 0.56),
            sharpness=s.uniform(1.0, 1.6), haze=haze_far + (haze_near - haze_far) * t,
            colour=s.colour(_scaled(rock, 1.0 - 0.3 * t), 0.08),
            snowline=snowline if snowy else 2.0,
        ))
    return tuple(ranges)


@dataclass(frozen=True)
class SceneNoise:
    """Resolution-independent random lattices of one image (float32 in [0, 1])."""

    ridges: np.ndarray  # (MAX_RANGES, RIDGE_LATTICE) ridgeline octaves
    snow_edge: np.ndarray  # (MAX_RANGES, 40) jitter of the snowline
    clouds: np.ndarray  # (8, 4) coarse and (16, 8) fine cloud grids (rows × columns)
    clouds_fine: np.ndarray
    ground: np.ndarray  # (24, 8) texture and (40, 20) bush grid, rows in perspective
    bushes: np.ndarray
    shore: np.ndarray  # (16,) ground-line bumps
    trees: np.ndarray  # (MAX_TREES, 4): x, height, width, presence
    stars: np.ndarray  # (MAX_STARS, 3): x, y, brightness
    ripple: np.ndarray  # (4,) ripple phases and frequencies


_NOISE_SHAPES = {
    "ridges": (MAX_RANGES, RIDGE_LATTICE), "snow_edge": (MAX_RANGES, 40), "clouds": (8, 4),
    "clouds_fine": (16, 8), "ground": (24, 8), "bushes": (40, 20), "shore": (16,),
    "trees": (MAX_TREES, 4), "stars": (MAX_STARS, 3), "ripple": (4,),
}
_NOISE_SIZES = {name: int(np.prod(shape)) for name, shape in _NOISE_SHAPES.items()}
_NOISE_SIZE = sum(_NOISE_SIZES.values())


def draw_noise(rng: np.random.Generator) -> SceneNoise:
    """Draws all lattices in one call and splits them into views."""
    flat = rng.random(_NOISE_SIZE, dtype=np.float32)
    parts, start = {}, 0
    for name, shape in _NOISE_SHAPES.items():
        size = _NOISE_SIZES[name]
        parts[name] = flat[start : start + size].reshape(shape)
        start += size
    return SceneNoise(**parts)
