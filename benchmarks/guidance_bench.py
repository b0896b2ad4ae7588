"""What guidance buys on a class split that the unguided model gets wrong: classifier guidance (ADM,
arXiv 2105.05233) against classifier-free guidance (arXiv 2207.12598) on the layout-labelled landscapes.

    python benchmarks/guidance_bench.py                     # about 35 min on 2 CPU cores
    python benchmarks/guidance_bench.py --quick             # seconds: the pipeline end to end (CI)

Steps, each an ordinary landiff command on the same folders:

1. ``landiff data synth --label-by layout``: 20,000 training and 2,000 held-out 32 px landscapes filed
   by layout (lake or not × horizon above or below the middle of its range; every palette in every
   class), a split the palettes do not give away;
2. a class-conditional ``tiny`` diffusion run (label dropout 0.1, so it also has an unconditional
   mode) for ``--diffusion-steps`` (1456: the budget race's 10 minutes);
3. a noisy classifier (``--model classifier``, ADM's t ~ U{0..T−1}) and a clean one (``--noise
   none``) for ``--classifier-steps`` each; the noisy one's held-out accuracy per noise quartile;
4. ``landiff compare RUN --classifier … --clean-classifier … --guidance-only`` at scales 0, 1, 2, 4, 8
   for both kinds, ``--n`` images per point against the held-out folder.

Prints (and appends to RESULTS.md unless ``--no-append``) the classifier table and the sweep table
from ``RUN/classifier-summary.json`` and ``RUN/compare/guidance.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import RESULTS, append_results  # noqa: E402


def _landiff(*args: str) -> None:
    from landiff.cli.main import main

    argv = [str(a) for a in args]
    code = main(argv)
    if code != 0:
        raise SystemExit(f"landiff {' '.join(argv)} exited with {code}")


def prepare(out: Path, n: int, heldout: int) -> tuple[Path, Path]:
    """The layout-labelled training and held-out folders (kept when already there)."""
    train, held = out / "layouts", out / "layouts-heldout"
    if not (train / "synth.json").exists():
        _landiff("data", "synth", "--out", train, "--n", n, "--size", 32, "--label-by", "layout")
    if not (held / "synth.json").exists():
        _landiff("data", "synth", "--out", held, "--n", heldout, "--size", 32, "--label-by", "layout", "--split", "heldout")
    return train, held


def train_all(args: argparse.Namespace, data: Path) -> tuple[Path, Path, Path]:
    """The conditional diffusion run and the two classifiers (each resumes / skips when done)."""
    runs = args.out / "runs"
    diffusion, noisy, clean = runs / "diffusion", runs / "classifier", runs / "clean"
    _landiff("train", "--run", diffusion, "--data", data, "--class-cond", "--steps", args.diffusion_steps,
             "--seed", args.seed, "--preview-count", 0, *(("--warmup", 0) if args.quick else ()))
    for run, noise in ((noisy, "schedule"), (clean, "none")):
        _landiff("train", "--run", run, "--model", "classifier", "--data", data, "--noise", noise,
                 "--steps", args.classifier_steps, "--seed", args.seed, "--eval-every", max(1, args.classifier_steps // 4),
                 *(("--warmup", 0) if args.quick else ()))
    return diffusion, noisy, clean


def classifier_table(noisy: Path, clean: Path) -> str:
    rows = ["| classifier | step | held-out accuracy | quartile 1 (least noise) | 2 | 3 | 4 (most noise) |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for label, run in (("noisy (t ~ U{0..999}, cosine)", noisy), ("clean (sigma = 0)", clean)):
        s = json.loads((run / "classifier-summary.json").read_text())
        quartiles = s.get("heldout_acc_q") or []
        cells = [f"{q:.3f}" if q is not None else "–" for q in quartiles] or ["–"] * 4
        rows.append(f"| {label} | {s['step']} | {s['heldout_acc']:.3f} (n = {s.get('heldout_n', '?')}) | {' | '.join(cells)} |")
    return "\n".join(rows)


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _interval(c: dict) -> str:
    low, high = c.get("low"), c.get("high")
    if c.get("value") is None:
        return "–"
    return f"{c['value']:.3f} [{low:.2f}, {high:.2f}]" if low is not None and high is not None else f"{c['value']:.3f}"


def sweep_table(run: Path) -> str:
    record = json.loads((run / "compare" / "guidance.json").read_text())
    rows = ["| point | class consistency [95 %] | per-class SWD (mean) | SWD | within-class diversity / real | s/image |",
            "|---|---:|---:|---:|---:|---:|"]
    ref = record["reference"]
    for point in record["points"]:
        m = point["metrics"]
        rows.append(f"| {point['label']} | {_interval(m['class_consistency'])} | {_num(m['class_swd']['mean'])} | "
                    f"{_num(m['swd']['value'])} | {_num(m['diversity']['ratio'], 2)} | {point['seconds_per_image']:.3f} |")
    ceiling = ref.get("ceiling", {})
    floor = (ref.get("swd_floor") or {}).get("value")
    judge = _interval(ceiling) if "value" in ceiling else "–"
    rows.append(f"| real held-out images | {judge} (the clean classifier's ceiling) | "
                f"{_num(ref['class_swd_floor']['mean'])} (floor) | {_num(floor)} (floor) | 1.00 | – |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-runs/guidance"))
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--heldout", type=int, default=2_000)
    parser.add_argument("--diffusion-steps", type=int, default=1456)
    parser.add_argument("--classifier-steps", type=int, default=1500)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--scales", default="0,1,2,4,8")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the pipeline, measures nothing")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.images, args.heldout, args.diffusion_steps, args.classifier_steps, args.n = 64, 32, 2, 2, 8
        args.scales = "0,2"
    start = time.perf_counter()
    data, held = prepare(args.out, args.images, args.heldout)
    diffusion, noisy, clean = train_all(args, data)
    _landiff("compare", diffusion, "--classifier", noisy, "--clean-classifier", clean, "--guidance-only",
             "--guidance-scales", args.scales, "--guidance-n", args.n, "--ref", held, "--seed", args.seed)
    minutes = (time.perf_counter() - start) / 60
    text = (f"`python benchmarks/guidance_bench.py{' --quick' if args.quick else ''}` — {time.strftime('%Y-%m-%d %H:%M')}; "
            f"32 px layout split, diffusion {args.diffusion_steps} steps, classifiers {args.classifier_steps} steps, "
            f"n = {args.n} per point, default sampler; {minutes:.1f} min in all.\n\n"
            f"{classifier_table(noisy, clean)}\n\n{sweep_table(diffusion)}\n")
    print(text)
    if not args.no_append and not args.quick:
        append_results(RESULTS, "## Guidance on the layout split (classifier vs classifier-free)\n\n" + text)


if __name__ == "__main__":
    main()
