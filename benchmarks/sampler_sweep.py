"""Fewest network evaluations for a given quality: samplers × steps × timestep spacing on a trained model.

    python benchmarks/sampler_sweep.py --run bench-runs/budget-race/landiff   # ~12 min at --n 128, 2 CPU cores
    python benchmarks/sampler_sweep.py --quick                                # seconds: CI's check
    python benchmarks/sampler_sweep.py --run bench-runs/sweep/skylines --ref bench-runs/skylines-heldout \
        --grid edm --reference-steps 250                                      # the stochastic samplers

Points are ``sampler:spacing:steps[:option…]`` with options ``2nd`` (DPM-Solver++ without its
lower-order final step), ``churn=S`` (heun's S_churn), ``tmin=`` / ``tmax=`` / ``snoise=`` (its
S_tmin, S_tmax, S_noise), ``rho=R`` (the karras spacing), ``eta=E`` (ddim / dpm++sde) and ``bf16``;
steps is the budget of network evaluations (heun: (steps+1)//2 levels, 2·levels − 1 evaluations;
the NFE column gives what was spent).

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
    churn: float = 0.0
    eta: float | None = None
    precision: str = "fp32"
    tmin: float = 0.05
    tmax: float = 50.0
    snoise: float = 1.003
    rho: float = 7.0

    @property
    def label(self) -> str:
        extra = "" if self.lower_order_final or self.sampler != "dpm++" else ", 2nd-order final step"
        if self.sampler == "heun":
            extra += f", churn {self.churn:g}"
            if self.churn and (self.tmin, self.tmax) != (0.05, 50.0):
                extra += f" on σ ∈ [{self.tmin:g}, {self.tmax:g}]"
            if self.churn and self.snoise != 1.003:
                extra += f", S_noise {self.snoise:g}"
        if self.spacing == "karras" and self.rho != 7.0:
            extra += f", ρ {self.rho:g}"
        if self.eta is not None:
            extra += f", eta {self.eta:g}"
        if self.precision != "fp32":
            extra += f", {self.precision}"
        return f"{self.sampler} {self.spacing}{extra}"

    @property
    def evaluations(self) -> int:
        return 2 * max(1, (self.steps + 1) // 2) - 1 if self.sampler == "heun" else self.steps


def grid(quick: bool, name: str = "ode") -> list[Point]:
    if quick:
        return [Point("dpm++", "logsnr", 2), Point("ddim", "uniform", 2), Point("dpm++", "quadratic", 2, False),
                Point("heun", "karras", 3, churn=1.0), Point("dpm++sde", "logsnr", 2)]
    if name == "edm":  # the stochastic samplers against DPM-Solver++ at 10, 20 and 50 evaluations
        points = []
        for k in (10, 20, 50):
            points += [Point("dpm++", "logsnr", k), Point("dpm++sde", "logsnr", k), Point("dpm++sde", "karras", k),
                       Point("ddpm", "logsnr", k)]
            # heun: k − 1 evaluations; churn 0, γ ≈ 0.1 (S_churn = 0.05 k on k/2 levels) and γ at its cap √2 − 1
            points += [Point("heun", "karras", k, churn=c) for c in (0.0, 0.05 * k, 40.0)]
        return points + [Point("heun", "karras", 199, churn=40.0)]  # the stochastic sampler near convergence
    points = [Point("dpm++", s, k) for s in ("uniform", "trailing", "quadratic", "logsnr") for k in (5, 10, 15, 20)]
    points += [Point("dpm++", s, k, False) for s in ("quadratic", "logsnr") for k in (5, 10)]
    points += [Point("ddim", s, k) for s in ("uniform", "quadratic") for k in (10, 20)]
    points += [Point("ddpm", "uniform", 50)]
    return points


def parse_points(text: str) -> list[Point]:
    """``"dpm++:logsnr:50,heun:karras:19:churn=10,ddim:uniform:100:eta=1:bf16"`` → points (see the module docstring)."""
    points = []
    for item in text.split(","):
        fields = item.strip().split(":")
        if len(fields) < 3 or fields[0] not in ("dpm++", "ddim", "ddpm", "dpm++sde", "heun") or not fields[2].isdigit():
            raise SystemExit(f"--points: expected sampler:spacing:steps[:option…], got {item!r}")
        options: dict = {}
        for option in fields[3:]:
            key, _, value = option.partition("=")
            if option == "2nd":
                options["lower_order_final"] = False
            elif option == "bf16":
                options["precision"] = "bf16"
            elif key in ("churn", "eta", "tmin", "tmax", "snoise", "rho") and value:
                options[key] = float(value)
            else:
                raise SystemExit(f"--points: unknown option {option!r} in {item!r} "
                                 "(2nd, bf16, churn=S, tmin=, tmax=, snoise=, rho=R, eta=E)")
        points.append(Point(fields[0], fields[1], int(fields[2]), **options))
    return points


@torch.no_grad()
def draw(loaded, point: Point, seeds: list[int], batch: int = 128) -> np.ndarray:
    """uint8 samples of ``point`` for ``seeds`` (image k depends on seed k only)."""
    from landiff.grid import to_uint8
    from landiff.samplers import Churn, dpm_solver_pp_sample, initial_noise, sample, sampling_timesteps

    model, diffusion, config = loaded.ema_model, loaded.diffusion, loaded.config
    shape = (config.net.in_channels, config.resolution, config.resolution)
    chunks = []
    for start in range(0, len(seeds), batch):
        chunk = seeds[start : start + batch]
        if not point.lower_order_final:  # the one knob sample() does not expose
            steps = sampling_timesteps(diffusion.num_steps, point.steps, point.spacing, diffusion.alphas_cumprod)
            x_T, _ = initial_noise(chunk, shape)
            x = dpm_solver_pp_sample(model, diffusion, x_T, steps, lower_order_final=False, precision=point.precision)
        else:
            churn = (Churn(s_churn=point.churn, s_tmin=point.tmin, s_tmax=point.tmax, s_noise=point.snoise)
                     if point.sampler == "heun" else None)
            x = sample(model, diffusion, shape, chunk, sampler=point.sampler, steps=point.steps, spacing=point.spacing,
                       eta=point.eta, churn=churn, rho=point.rho, precision=point.precision)
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


def reference_samples(loaded, run_dir: Path, seeds: list[int], steps: int, precision: str = "fp32") -> np.ndarray:
    suffix = "" if precision == "fp32" else f"-{precision}"
    cache = run_dir / "sweep" / f"ddpm-{steps}-n{len(seeds)}-{loaded.checkpoint_sha256[:12]}{suffix}.npz"
    if cache.is_file():
        return np.load(cache)["images"]
    images = draw(loaded, Point("ddpm", "uniform", steps, precision=precision), seeds)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, images=images)
    tmp.replace(cache)
    return images


def quick_run(out: Path) -> Path:
    """A few steps of the tiny recipe at 16 px: enough to exercise every code path."""
    from landiff.train import train
    from landiff.workflows.pairing import diffusion_recipe

    config = diffusion_recipe("synthetic", 16, 0.0)
    config = dataclasses.replace(config, train_steps=2, preview_count=0,
                                 optim=dataclasses.replace(config.optim, batch=4, warmup=1))
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
    parser.add_argument("--grid", choices=("ode", "edm"), default="ode",
                        help="ode: the deterministic samplers' spacings (the first sweep); edm: the stochastic samplers")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="precision of the reference and of every point (bf16: 2.5x faster on an AVX512-BF16 CPU)")
    parser.add_argument("--ref", default=None, help="held-out images for the SWD (default: the run's data)")
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
    reference = ImageSet(load_reference(args.ref or loaded.config.data, size, args.n, data_seed=loaded.config.seed).images,
                         "held-out")
    extractor, why = _extractor(args.inception)
    seeds = list(range(args.n))
    start = time.perf_counter()
    base = measure(reference_samples(loaded, args.run, seeds, args.reference_steps, args.precision), reference, extractor)
    rows = [["ddpm uniform (reference)", str(args.reference_steps), f"{base['swd']:.1f} ± {base['swd_std']:.1f}", "1.00",
             f"{base['fid']:.1f}" if "fid" in base else "–"]]
    results = {"reference": base, "points": []}
    points = parse_points(args.points) if args.points else grid(args.quick, args.grid)
    if args.precision != "fp32":
        points = [dataclasses.replace(point, precision=args.precision) for point in points]
    for point in points:
        began = time.perf_counter()
        m = measure(draw(loaded, point, seeds), reference, extractor)
        results["points"].append({**dataclasses.asdict(point), **m, "seconds": time.perf_counter() - began})
        rows.append([point.label, str(point.evaluations), f"{m['swd']:.1f} ± {m['swd_std']:.1f}",
                     f"{m['swd'] / base['swd']:.2f}", f"{m['fid']:.1f}" if "fid" in m else "–"])
        print(f"{point.label} {point.evaluations}: SWD {m['swd']:.1f}", file=sys.stderr, flush=True)
    (args.run / "sweep").mkdir(parents=True, exist_ok=True)
    name = "results-points.json" if args.points else f"results-{args.grid}.json"
    (args.run / "sweep" / name).write_text(json.dumps(results, indent=1))
    command = "python benchmarks/sampler_sweep.py " + " ".join(sys.argv[1:])
    text = "\n".join([
        f"## Samplers × steps on a trained tiny model (SWD against the {args.reference_steps}-step ancestral sampler)",
        "",
        f"`{command.strip()}` — {time.strftime('%Y-%m-%d %H:%M')}; model {args.run} (step {loaded.state.step}, "
        f"{loaded.state.images_seen:,} images seen, checkpoint sha256 {loaded.checkpoint_sha256[:16]}…); {args.n} samples "
        f"vs {args.n} held-out images ({args.ref or loaded.config.data}); "
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
