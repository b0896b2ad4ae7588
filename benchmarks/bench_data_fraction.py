"""Share of a training step spent waiting for data (main-process loading, no workers).

    python benchmarks/bench_data_fraction.py        # prints a table, appends it to benchmarks/RESULTS.md

For each data source it times fetching batches from the trainer's own batch stream, and one
training step of the `tiny` preset (forward, backward, AdamW) on a batch of the same size, and
reports data / (data + step). With DataLoader workers (`--workers`) loading overlaps the step.
"""

from __future__ import annotations

import dataclasses
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from landiff.data import open_dataset
from landiff.data.prepared import prepare_folder
from landiff.diffusion import GaussianDiffusion, beta_schedule
from landiff.nets import UNet, get_preset
from landiff.runs.config import OptimConfig
from landiff.train.components import make_adamw
from landiff.train.data_stream import batch_stream
from landiff.train.precision import Precision

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import RESULTS, append_results  # noqa: E402

BATCH, BATCHES = 32, 20


def time_batches(dataset) -> float:
    stream = batch_stream(dataset, BATCH, seed=0, start=0)
    next(stream)
    start = time.perf_counter()
    for _ in range(BATCHES):
        next(stream)
    return (time.perf_counter() - start) / BATCHES


def time_step(resolution: int) -> float:
    """One training step as ``landiff train`` runs it by default: --precision auto, NCHW, fused AdamW."""
    net = UNet(dataclasses.replace(get_preset("tiny"), resolution=resolution))
    diffusion = GaussianDiffusion(beta_schedule("cosine", 1000), prediction="v")
    opt = make_adamw(net.parameters(), OptimConfig(lr=1e-4), torch.device("cpu"))
    precision = Precision.create("auto", torch.device("cpu"))

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with precision.autocast():
            return net(x_t, t).float()

    x0 = torch.rand(BATCH, 3, resolution, resolution) * 2 - 1
    times = []
    for _ in range(5):
        start = time.perf_counter()
        diffusion.training_losses(model, x0, torch.randint(0, 1000, (BATCH,))).loss.mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def jpeg_folder(root: Path, count: int = 300, size: int = 256) -> Path:
    rng = np.random.default_rng(0)
    for k in range(count):
        image = (rng.random((size, size, 3)) * 255).astype(np.uint8)
        Image.fromarray(image).save(root / f"{k:04d}.jpg", quality=90)
    return root


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        jpeg_folder(folder)
        prepare_folder(folder, 32, Path(tmp) / "prepared")
        sources = [("synthetic", open_dataset("synthetic", 32)),
                   ("folder (256 px JPEG)", open_dataset(str(folder), 32)),
                   ("prepared", open_dataset(str(Path(tmp) / "prepared"), 32))]
        step = time_step(32)
        for name, dataset in sources:
            data = time_batches(dataset)
            rows.append((name, data * 1000, step * 1000, 100 * data / (data + step)))
    lines = [f"`python benchmarks/bench_data_fraction.py` — {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
             f"{torch.get_num_threads()} threads, torch {torch.__version__}; tiny preset, 32 px, batch {BATCH}, no workers.",
             "", "| data | batch fetch (ms) | training step (ms) | share of step waiting for data |", "|---|---:|---:|---:|"]
    lines += [f"| {n} | {d:.1f} | {s:.0f} | {f:.1f} % |" for n, d, s, f in rows]
    text = "\n".join(lines)
    print(text)
    append_results(RESULTS, "## Data loading share of a training step\n\n" + text)


if __name__ == "__main__":
    main()
