"""Makes the documentation grids of the built-in landscapes.

Run from the repository root::

    .venv/bin/python scripts/make_landscape_docs.py

Writes ``docs/landscapes.png`` (8×8 images at 64 px) and ``docs/landscapes_32.png`` (8×8 images
at 32 px, each pixel drawn 2×2 so it is visible). Images 0..63 of the dataset with seed 0, so
the columns cycle through the classes day, sunset, night, snow.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from landiff.data.landscapes import render_batch

GAP = 2  # pixels between tiles
BACKGROUND = 24  # dark grey between tiles


def grid(images: np.ndarray, columns: int = 8, zoom: int = 1) -> Image.Image:
    """Tiles uint8 images (N, H, W, 3) into one picture, each pixel repeated ``zoom``×``zoom``."""
    images = images.repeat(zoom, axis=1).repeat(zoom, axis=2)
    n, h, w, _ = images.shape
    rows = -(-n // columns)
    canvas = np.full((rows * (h + GAP) + GAP, columns * (w + GAP) + GAP, 3), BACKGROUND, np.uint8)
    for k, image in enumerate(images):
        top, left = GAP + (k // columns) * (h + GAP), GAP + (k % columns) * (w + GAP)
        canvas[top : top + h, left : left + w] = image
    return Image.fromarray(canvas)


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the landscape grids under docs/.")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs"), help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for size, name, zoom in ((64, "landscapes.png", 1), (32, "landscapes_32.png", 2)):
        images, _ = render_batch(args.seed, range(64), size)
        grid(images, zoom=zoom).save(out / name)
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
