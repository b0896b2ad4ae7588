"""Quality at a fixed CPU budget: landiff's default diffusion recipe, its DCGAN, and the anchors' own recipes.

    python benchmarks/budget_race.py                       # 10 min of training each, 32 px (~50 min)
    python benchmarks/budget_race.py --quick               # seconds: CI's end-to-end check

Every entrant trains on the same stream of built-in landscapes (32 px, landiff's synthetic
training split) for the same wall-clock budget on this machine; the clock stops while it is
evaluated. At ``--points`` evenly spaced moments it samples ``--curve-n`` images and measures
multi-scale SWD ×10³ against held-out real images; at the end ``--n`` samples against ``--n``
held-out images, next to the real-vs-real floor. Entrants:

* ``landiff``: ``landiff train`` with the demo's diffusion recipe (tiny preset, v-prediction,
  cosine), sampled with landiff's default sampler (DPM-Solver++).
* ``dcgan``: landiff's DCGAN recipe (DCGAN paper's Adam settings) at 32 px.
* ``denoising-diffusion-pytorch``: its README recipe — Unet(dim=64, dim_mults=(1, 2, 4, 8),
  flash_attn=True), GaussianDiffusion(timesteps=1000), its Trainer's optimiser (Adam 8e-5,
  betas (0.9, 0.99), batch 32 × 2 accumulation, grad-norm clip 1, EMA 0.995 every 10 steps),
  its default objective and schedule, sampled with its DDIM at ``--anchor-steps`` steps (the
  README's 250 would not fit a CPU budget: its 36 M-parameter net costs 3.6 GFLOP per evaluation
  at 32 px, so 256 images × 250 steps take about an hour here; --anchor-steps 250 gives it).
* ``diffusers``: its unconditional-training example — UNet2DModel with (128, 128, 256, 256, 512,
  512) channels and attention at the fifth level, DDPMScheduler (1000 steps, linear β, ε),
  AdamW (1e-4, betas (0.95, 0.999), weight decay 1e-6), cosine LR with 500 warm-up steps,
  batch 16, EMA (inverse gamma 1, power ¾); sampled with DDIMScheduler (η = 0) at ``--anchor-steps``
  (114 M parameters, 7.8 GFLOP per evaluation at 32 px).

Sample counts: the anchors' nets cost 5–10× landiff's per evaluation, so the default is 256
samples against 256 held-out images at the end (floor printed with it) and 64 along the curve.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import RESULTS, append_results  # noqa: E402
from race_entrants import ENTRANTS, Entrant, make_entrant  # noqa: E402


@dataclasses.dataclass
class Point:
    minutes: float
    images_seen: int
    swd: float
    swd_std: float
    n: int


def evaluate(entrant: Entrant, reference: np.ndarray, n: int, seed: int = 0) -> tuple[float, float]:
    """SWD ×10³ (mean, std over the metric's repeats) of ``n`` samples against ``reference``."""
    from landiff.metrics.evaluate import evaluate_swd
    from landiff.metrics.io import ImageSet

    images = entrant.sample(list(range(seed, seed + n)))
    record = evaluate_swd(ImageSet(images, entrant.name), ImageSet(reference[:n], "held-out"), seed=seed)
    estimate = record.estimates["swd"]
    return float(estimate.value), float(estimate.std)


def race(entrant: Entrant, minutes: float, points: int, reference: np.ndarray, curve_n: int, n: int,
         log) -> list[Point]:
    """Trains ``entrant`` for ``minutes`` in ``points`` stages, evaluating after each (clock paused)."""
    curve = []
    for k in range(1, points + 1):
        entrant.train_until(minutes * 60 * k / points)
        size = n if k == points else curve_n
        swd, std = evaluate(entrant, reference, size)
        curve.append(Point(entrant.seconds / 60, entrant.images_seen, swd, std, size))
        log(f"{entrant.name}: {entrant.seconds / 60:.1f} min, {entrant.images_seen} images, SWD {swd:.1f} ± {std:.1f} (n={size})")
    return curve


def reference_images(resolution: int, count: int) -> np.ndarray:
    """``count`` held-out landscapes (disjoint from every entrant's training stream)."""
    from landiff.metrics.io import load_reference

    return load_reference("synthetic", (resolution, resolution), count, split="heldout").images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--points", type=int, default=3, help="evaluations along the way (the last is the final)")
    parser.add_argument("--n", type=int, default=256, help="final samples (and held-out images)")
    parser.add_argument("--curve-n", type=int, default=64, help="samples at the intermediate points")
    parser.add_argument("--anchor-steps", type=int, default=20, help="DDIM steps for the anchors' samples")
    parser.add_argument("--entrants", default=",".join(ENTRANTS))
    parser.add_argument("--out", type=Path, default=Path("bench-runs/budget-race"))
    parser.add_argument("--quick", action="store_true", help="seconds per entrant, tiny nets: an end-to-end check")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.points, args.n, args.curve_n, args.anchor_steps, args.no_append = 0.05, 2, 16, 16, 2, True
    torch.manual_seed(0)
    reference = reference_images(args.resolution, 2 * args.n)
    real, floor_set = reference[: args.n], reference[args.n :]
    from landiff.metrics.evaluate import evaluate_swd
    from landiff.metrics.io import ImageSet

    floor = evaluate_swd(ImageSet(floor_set, "held-out b"), ImageSet(real, "held-out a")).estimates["swd"]
    curves = {}
    from anchors import available

    have = available()
    for name in args.entrants.split(","):
        if not have.get(name, True):
            print(f"{name}: not installed, skipped (./dev bench installs the anchors)")
            continue
        entrant = make_entrant(name, args.resolution, args.out / name, quick=args.quick, anchor_steps=args.anchor_steps,
                               minutes=args.minutes)
        curves[name] = race(entrant, args.minutes, args.points, real, args.curve_n, args.n, log=print)
        (args.out / "curves.json").parent.mkdir(parents=True, exist_ok=True)
        (args.out / "curves.json").write_text(json.dumps({k: [dataclasses.asdict(p) for p in v] for k, v in curves.items()}, indent=1))
    text = render(args, curves, float(floor.value), float(floor.std))
    print(text)
    if not args.no_append:
        append_results(args.results, text)


def render(args: argparse.Namespace, curves: dict[str, list[Point]], floor: float, floor_std: float) -> str:
    command = "python benchmarks/budget_race.py " + " ".join(a for a in sys.argv[1:])
    lines = [
        f"## Quality at a fixed budget ({args.minutes:g} min of training, {args.resolution} px)",
        "",
        f"`{command.strip()}` — {time.strftime('%Y-%m-%d %H:%M')}, {torch.get_num_threads()} threads, torch {torch.__version__}. "
        f"Multi-scale SWD ×10³ against {args.n} held-out landscapes; real-vs-real floor {floor:.1f} ± {floor_std:.1f}. "
        f"Anchors sampled with DDIM {args.anchor_steps} steps, landiff with its default sampler.",
        "",
        "| entrant | final SWD (n=%d) | images seen | curve: minutes → SWD (n=%d until the last point) |" % (args.n, args.curve_n),
        "|---|---:|---:|---|",
    ]
    for name, curve in curves.items():
        last = curve[-1]
        path = ", ".join(f"{p.minutes:.1f} → {p.swd:.0f}" for p in curve)
        lines.append(f"| {name} | {last.swd:.1f} ± {last.swd_std:.1f} | {last.images_seen:,} | {path} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
