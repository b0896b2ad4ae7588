"""Which EMA length measures best: SWD of one --posthoc-ema run's samples at several post-hoc EMA lengths.

    python benchmarks/ema_length_sweep.py --run bench-runs/recipes/edm --lengths 0.02,0.05,0.1,0.15,0.2
    python benchmarks/ema_length_sweep.py --quick          # seconds: CI's check (a 4-step run)

Each length σ_rel is reconstructed from the run's power-EMA snapshots (EDM2, arXiv 2312.02696 §3;
landiff.runs.posthoc_ema) at the latest checkpoint, sampled with landiff's default sampler on the
same seeds, and measured with multi-scale SWD ×10³ against ``--n`` held-out images; the run's own
fixed-decay EMA is measured beside it ("run's EMA"). The profile error column is the relative L2
distance between the reconstructed averaging profile and the asked one.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import RESULTS, append_results  # noqa: E402


def measure_lengths(run: Path, lengths: list[float], n: int, ref: str | None) -> list[tuple[str, float, float, str]]:
    from landiff.generate import generate
    from landiff.metrics.evaluate import evaluate_swd
    from landiff.metrics.io import ImageSet, load_reference
    from landiff.train import load_run

    plain = load_run(run, device="cpu", ema_length=0.0)  # the fixed-decay EMA
    size = (plain.config.resolution, plain.config.resolution)
    reference = ImageSet(load_reference(ref or plain.config.data, size, n, data_seed=plain.config.seed).images, "held-out")
    rows = []
    for length in [None, *lengths]:
        loaded = plain if length is None else load_run(run, device="cpu", ema_length=length)
        images = generate(loaded, list(range(n))).images
        swd = evaluate_swd(ImageSet(images, "samples"), reference).estimates["swd"]
        label = f"run's EMA (decay {plain.config.ema_decay:g})" if length is None else f"post-hoc σ_rel {length:g}"
        error = "–" if loaded.ema_error is None else f"{100 * loaded.ema_error:.1f} %"
        rows.append((label, float(swd.value), float(swd.std), error))
        print(f"{label}: SWD {swd.value:.1f}", file=sys.stderr, flush=True)
    return rows


def quick_run(out: Path) -> Path:
    from landiff.train import train
    from landiff.workflows.pairing import diffusion_recipe

    config = diffusion_recipe("synthetic", 16, 0.0)
    config = dataclasses.replace(config, train_steps=4, preview_count=0, posthoc_ema=True, ema_snapshot_every=1,
                                 optim=dataclasses.replace(config.optim, batch=4, warmup=1))
    train(config, out, log=lambda _: None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--lengths", default="0.02,0.05,0.1,0.15,0.2")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--ref", default=None, help="held-out images (default: the run's data)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.run, args.n, args.no_append = quick_run(Path("bench-runs/ema-quick")), 8, True
    if args.run is None:
        raise SystemExit("--run: a run trained with --posthoc-ema")
    start = time.perf_counter()
    rows = measure_lengths(args.run, [float(v) for v in args.lengths.split(",")], args.n, args.ref)
    best = min(rows, key=lambda r: r[1])
    text = "\n".join([
        "## Post-hoc EMA length (SWD at each reconstructed length)",
        "",
        f"`python benchmarks/ema_length_sweep.py {' '.join(sys.argv[1:])}` — {time.strftime('%Y-%m-%d %H:%M')}; "
        f"{args.n} samples (default sampler) vs {args.n} held-out images; {time.perf_counter() - start:.0f} s.",
        "",
        "| EMA | SWD ×10³ | profile error |",
        "|---|---:|---:|",
        *(f"| {label}{' (best)' if (label, swd, std, err) == best else ''} | {swd:.1f} ± {std:.1f} | {err} |"
          for label, swd, std, err in rows),
    ])
    print(text)
    if not args.no_append:
        append_results(RESULTS, text)


if __name__ == "__main__":
    main()
