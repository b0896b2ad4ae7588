"""Fewest network evaluations for a given quality: samplers × steps × timestep spacing on a trained model.

    python benchmarks/sampler_sweep.py --run bench-runs/budget-race/landiff   # ~12 min at --n 128, 2 CPU cores
    python benchmarks/sampler_sweep.py --quick                                # seconds: CI's check

The reference is the 1000-step ancestral sampler (DDPM) on the same seeds; each point is the
multi-scale SWD ×10³ of ``--n`` samples against ``--n`` held-out real images (the run's data),
and its ratio to the 1000-step SWD. FID is added when Inception weights are installed
(``landiff weights import-inception``). Spacings: uniform, trailing, quadratic, logsnr (see
landiff.samplers.timesteps). DPM-Solver++ is also run without its lower-order final step, the
knob on how the last step into t = 0 is taken. The 1000-step samples are cached in the run
directory (``sweep/ddpm-1000-n<N>.npz``) so a re-run only redoes the sweep.
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


@dataclasses.dataclass(frozen=True)
class Point:
    sampler: str
    spacing: str
    steps: int
    lower_order_final: bool = True

    @property
    def label(self) -> str:
        extra = "" if self.lower_order_final or self.sampler != "dpm++" else ", 2nd-order final step"
        return f"{self.sampler} {self.spacing}{extra}"


def grid(quick: bool) -> list[Point]:
    if quick:
        return [Point("dpm++", "logsnr", 2), Point("ddim", "uniform", 2), Point("dpm++", "quadratic", 2, False)]
    points = [Point("dpm++", s, k) for s in ("uniform", "trailing", "quadratic", "logsnr") for k in (5, 10, 15, 20)]
    points += [Point("dpm++", s, k, False) for s in ("quadratic", "logsnr") for k in (5, 10)]
    points += [Point("ddim", s, k) for s in ("uniform", "quadratic") for k in (10, 20)]
    points += [Point("ddpm", "uniform", 50)]
    return points


def parse_points(text: str) -> list[Point]:
    """``"dpm++:logsnr:50,ddim:uniform:100"`` → points; a fourth field ``2nd`` turns off DPM-Solver++'s
    lower-order final step."""
    points = []
    for item in text.split(","):
        fields = item.strip().split(":")
        if len(fields) not in (3, 4) or fields[0] not in ("dpm++", "ddim", "ddpm") or not fields[2].isdigit():
            raise SystemExit(f"--points: expected sampler:spacing:steps[:2nd] (sampler dpm++, ddim or ddpm), got {item!r}")
        points.append(Point(fields[0], fields[1], int(fields[2]), lower_order_final=fields[3:] != ["2nd"]))
    return points


@torch.no_grad()
def draw(loaded, point: Point, seeds: list[int], batch: int = 128) -> np.ndarray:
    """uint8 samples of ``point`` for ``seeds`` (image k depends on seed k only)."""
    from landiff.grid import to_uint8
    from landiff.samplers import ddim_sample, ddpm_sample, dpm_solver_pp_sample, initial_noise, sampling_timesteps

    model, diffusion, config = loaded.ema_model, loaded.diffusion, loaded.config
    shape = (config.net.in_channels, config.resolution, config.resolution)
    steps = sampling_timesteps(diffusion.num_steps, point.steps, point.spacing, diffusion.alphas_cumprod)
    chunks = []
    for start in range(0, len(seeds), batch):
        x_T, noise = initial_noise(seeds[start : start + batch], shape)
        if point.sampler == "dpm++":
            x = dpm_solver_pp_sample(model, diffusion, x_T, steps, lower_order_final=point.lower_order_final)
        elif point.sampler == "ddim":
            x = ddim_sample(model, diffusion, x_T, steps, noise=noise)
        else:
            x = ddpm_sample(model, diffusion, x_T, steps, noise=noise)
        chunks.append(to_uint8(x))
    return np.concatenate(chunks)


def measure(images: np.ndarray, reference, extractor) -> dict[str, float]:
    from landiff.metrics import evaluate
    from landiff.metrics.io import ImageSet

    samples = ImageSet(images, "samples")
    swd = evaluate.evaluate_swd(samples, reference).estimates["swd"]
    out = {"swd": float(swd.value), "swd_std": float(swd.std)}
    if extractor is not None:
        out["fid"] = float(evaluate.evaluate_fid(samples, reference, extractor).estimates["fid"].value)
    return out


def reference_samples(loaded, run_dir: Path, seeds: list[int], steps: int) -> np.ndarray:
    cache = run_dir / "sweep" / f"ddpm-{steps}-n{len(seeds)}-{loaded.checkpoint_sha256[:12]}.npz"
    if cache.is_file():
        return np.load(cache)["images"]
    images = draw(loaded, Point("ddpm", "uniform", steps), seeds)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, images=images)
    tmp.replace(cache)
    return images


def quick_run(out: Path) -> Path:
    """A few steps of the tiny recipe at 16 px: enough to exercise every code path."""
    from landiff.workflows.pairing import diffusion_recipe
    from landiff.train import train

    config = diffusion_recipe("synthetic", 16, 0.0)
    config = dataclasses.replace(config, train_steps=2, preview_count=0,
                                 optim=dataclasses.replace(config.optim, batch=4))
    train(config, out, log=lambda _: None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("bench-runs/budget-race/landiff"))
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--reference-steps", type=int, default=1000)
    parser.add_argument("--inception", default=None, help="Inception weights (default: landiff's weight cache)")
    parser.add_argument("--points", default=None,
                        help="only these points, e.g. dpm++:logsnr:50,ddim:uniform:100 (default: the full grid)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.n, args.reference_steps, args.no_append = 8, 4, True
        args.run = quick_run(args.run if args.run.name != "landiff" else Path("bench-runs/sweep-quick"))
    print(sweep(args))


def _extractor(path: str | None):
    from landiff.metrics.features import InceptionFeatures, InceptionUnavailable, find_inception_weights

    try:
        return InceptionFeatures(find_inception_weights(path)), ""
    except InceptionUnavailable as err:
        return None, str(err)


def sweep(args: argparse.Namespace) -> str:
    from landiff.metrics.io import ImageSet, load_reference
    from landiff.train import load_run

    loaded = load_run(args.run, device="cpu")
    size = (loaded.config.resolution, loaded.config.resolution)
    reference = ImageSet(load_reference(loaded.config.data, size, args.n, data_seed=loaded.config.seed).images, "held-out")
    extractor, why = _extractor(args.inception)
    seeds = list(range(args.n))
    start = time.perf_counter()
    base = measure(reference_samples(loaded, args.run, seeds, args.reference_steps), reference, extractor)
    rows = [["ddpm uniform (reference)", str(args.reference_steps), f"{base['swd']:.1f} ± {base['swd_std']:.1f}", "1.00",
             f"{base['fid']:.1f}" if "fid" in base else "–"]]
    results = {"reference": base, "points": []}
    points = parse_points(args.points) if args.points else grid(args.quick)
    for point in points:
        m = measure(draw(loaded, point, seeds), reference, extractor)
        results["points"].append({**dataclasses.asdict(point), **m})
        rows.append([point.label, str(point.steps), f"{m['swd']:.1f} ± {m['swd_std']:.1f}", f"{m['swd'] / base['swd']:.2f}",
                     f"{m['fid']:.1f}" if "fid" in m else "–"])
        print(f"{point.label} {point.steps}: SWD {m['swd']:.1f}", file=sys.stderr, flush=True)
    (args.run / "sweep").mkdir(parents=True, exist_ok=True)
    name = "results-points.json" if args.points else "results.json"
    (args.run / "sweep" / name).write_text(json.dumps(results, indent=1))
    command = "python benchmarks/sampler_sweep.py " + " ".join(sys.argv[1:])
    text = "\n".join([
        f"## Samplers × steps on a trained tiny model (SWD against the {args.reference_steps}-step ancestral sampler)",
        "",
        f"`{command.strip()}` — {time.strftime('%Y-%m-%d %H:%M')}; model {args.run} (step {loaded.state.step}, "
        f"{loaded.state.images_seen:,} images seen); {args.n} samples vs {args.n} held-out images; "
        f"{time.perf_counter() - start:.0f} s. FID: {'computed' if extractor else 'not computed (' + why.split(';')[0] + ')'}.",
        "",
        "| sampler, spacing | NFE | SWD ×10³ | ratio to reference | FID |",
        "|---|---:|---:|---:|---:|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ])
    if not args.no_append:
        append_results(args.results, text)
    return text


if __name__ == "__main__":
    main()
