"""bf16 against fp32 sampling: network throughput and quality on a trained model.

    python benchmarks/bench_sampling_precision.py --run bench-runs/sweep/landscapes   # ~3 min, run alone

Speed: img·NFE/s of the tiny preset's UNet at 32 px, batch 64, in inference (what every sampler
step costs), fp32 and bf16 autocast measured in alternation (``--repeats`` rounds of
``--calls`` network calls each), reported as the ratio of medians. Quality: SWD ×10³ of
``--n`` samples (DPM-Solver++(2M), 20 log-SNR steps, the same seeds) in each precision against
``--n`` held-out images, with the metric's spread; bf16 is "unchanged" when the two SWDs differ
by less than their combined spread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import RESULTS, append_results  # noqa: E402

from landiff.grid import to_uint8  # noqa: E402
from landiff.metrics import evaluate  # noqa: E402
from landiff.metrics.io import ImageSet, load_reference  # noqa: E402
from landiff.runs.load import load_run  # noqa: E402
from landiff.samplers import sample  # noqa: E402


def throughput(model: torch.nn.Module, batch: int, resolution: int, calls: int, precision: str) -> float:
    """img·NFE/s of ``calls`` inference calls at ``batch``."""
    x = torch.randn(batch, 3, resolution, resolution)
    t = torch.full((batch,), 500, dtype=torch.long)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        model(x, t)  # warm-up
        start = time.perf_counter()
        for _ in range(calls):
            model(x, t)
        return batch * calls / (time.perf_counter() - start)


def quality(loaded, reference: ImageSet, n: int, precision: str) -> tuple[float, float]:
    shape = (3, loaded.config.resolution, loaded.config.resolution)
    images = []
    for start in range(0, n, 128):
        seeds = list(range(start, min(start + 128, n)))
        with torch.no_grad():
            images.append(to_uint8(sample(loaded.ema_model, loaded.diffusion, shape, seeds, precision=precision)))
    swd = evaluate.evaluate_swd(ImageSet(np.concatenate(images), "samples"), reference).estimates["swd"]
    return float(swd.value), float(swd.std)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("bench-runs/sweep/landscapes"))
    parser.add_argument("--ref", default=None, help="held-out images (default: the run's data)")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    loaded = load_run(args.run, device="cpu")
    model, res = loaded.ema_model, loaded.config.resolution
    speeds: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(args.repeats):
        for precision in speeds:
            speeds[precision].append(throughput(model, args.batch, res, args.calls, precision))
    fp32, bf16 = (statistics.median(speeds[p]) for p in ("fp32", "bf16"))
    size = (res, res)
    reference = ImageSet(load_reference(args.ref or loaded.config.data, size, args.n, data_seed=loaded.config.seed).images,
                         "held-out")
    q32, q16 = quality(loaded, reference, args.n, "fp32"), quality(loaded, reference, args.n, "bf16")
    unchanged = abs(q32[0] - q16[0]) < (q32[1] ** 2 + q16[1] ** 2) ** 0.5
    command = "python benchmarks/bench_sampling_precision.py " + " ".join(sys.argv[1:])
    text = "\n".join([
        "## Sampling in bf16 vs fp32 (network under autocast, sampler maths in float32)",
        "",
        f"`{command.strip()}` — {time.strftime('%Y-%m-%d %H:%M')}, {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}; model {args.run} (step {loaded.state.step}, sha256 {loaded.checkpoint_sha256[:16]}…).",
        "",
        f"| precision | img·NFE/s (batch {args.batch}, {res} px, median of {args.repeats}) | SWD ×10³ (n = {args.n}, dpm++ 20) |",
        "|---|---:|---:|",
        f"| fp32 | {fp32:.0f} | {q32[0]:.1f} ± {q32[1]:.1f} |",
        f"| bf16 | {bf16:.0f} ({bf16 / fp32:.2f}×) | {q16[0]:.1f} ± {q16[1]:.1f} |",
        "",
        f"bf16 SWD {'within' if unchanged else 'outside'} the combined spread of the two "
        f"(difference {q16[0] - q32[0]:+.1f}).",
    ])
    print(text)
    if not args.no_append:
        append_results(RESULTS, text)


if __name__ == "__main__":
    main()
