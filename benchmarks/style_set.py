"""A second image set in a style unlike the built-in landscapes, for checking tuned defaults.

    python benchmarks/style_set.py --out bench-runs/skylines --n 20000 --size 32

Night city skylines drawn with numpy: a dark sky gradient (blue to violet) with stars and
sometimes a moon, two rows of flat-coloured buildings with hard edges, lit windows on a grid and
a few antennas. The landscapes are smooth, layered and mostly daylight; these are dark,
rectilinear and high-contrast at the pixel scale, so a recipe or sampler tuned on one is checked
on a different image statistic. Image k depends only on (--seed, k); PNGs go in one folder
(``landiff train --data FOLDER`` reads it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def skyline(rng: np.random.Generator, size: int) -> np.ndarray:
    """One (size, size, 3) uint8 night skyline."""
    h = w = size
    top = np.array([rng.uniform(5, 25), rng.uniform(5, 30), rng.uniform(30, 70)])
    bottom = np.array([rng.uniform(40, 90), rng.uniform(20, 50), rng.uniform(60, 110)])
    ramp = np.linspace(0, 1, h)[:, None, None]
    img = np.broadcast_to(top + ramp * (bottom - top), (h, w, 3)).copy()
    stars = rng.random((h, w)) < 0.02
    img[stars] = rng.uniform(150, 255, size=(int(stars.sum()), 1))
    if rng.random() < 0.6:  # a moon
        cy, cx, r = rng.uniform(0.1, 0.35) * h, rng.uniform(0.1, 0.9) * w, rng.uniform(0.05, 0.1) * size
        yy, xx = np.mgrid[0:h, 0:w]
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = [235, 230, 200]
    for row, (low, high, shade) in enumerate(((0.25, 0.6, 35), (0.45, 0.85, 15))):
        x = int(rng.integers(-3, 1))
        while x < w:
            width = int(rng.integers(max(2, w // 12), max(3, w // 4)))
            height = int(rng.uniform(low, high) * h)
            colour = np.array([shade, shade, shade + 10]) * rng.uniform(0.6, 1.4)
            y0, x0, x1 = h - height, max(x, 0), min(x + width, w)
            img[y0:, x0:x1] = colour
            lit = np.array([255, rng.uniform(190, 240), rng.uniform(90, 150)])
            for wy in range(y0 + 1, h - 1, 2):
                for wx in range(x0 + 1, x1 - 1, 2):
                    if rng.random() < 0.35 + 0.2 * row:
                        img[wy, wx] = lit * rng.uniform(0.7, 1.0)
            if rng.random() < 0.2 and x1 > x0:  # an antenna
                ax = int(rng.integers(x0, x1))
                img[max(y0 - h // 8, 0):y0, ax] = colour
            x += width + int(rng.integers(0, 2))
    return np.clip(img, 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for k in range(args.n):
        rng = np.random.default_rng([args.seed, k])
        Image.fromarray(skyline(rng, args.size)).save(args.out / f"{k:06d}.png")
    print(f"wrote {args.n} images of {args.size} px to {args.out}")


if __name__ == "__main__":
    main()
