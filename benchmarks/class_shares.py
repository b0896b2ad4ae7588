"""Which scene types a trained unconditional run draws: the share of each built-in class (day, sunset,
night, snow) among its samples, judged by a clean classifier, against the data's.

    python benchmarks/class_shares.py --runs bench-runs/recipes/synthetic/tiny-cosine-1456-seed0,… --draws 4
    python benchmarks/class_shares.py --quick           # seconds: the pipeline end to end (CI)

The built-in landscapes are balanced (image k has class k mod 4). A clean classifier (``landiff train
--model classifier --noise none`` on them, ``--classifier-steps``) labels ``--draws`` disjoint draws of
``--n`` samples of each run (sample seeds k·n …, landiff's default sampler, the draws of
``draw_spread.py``) and as many held-out real images; the real row shows the classifier's own error
(a perfect judge reads 25 % each). A model that over-produces a scene type shows it in every draw;
how many of that type a draw holds is what moves its coarse-scale SWD (RESULTS.md, "SWD over
disjoint sample draws").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import RESULTS, append_results  # noqa: E402

CLASSES = ("day", "sunset", "night", "snow")


def judge(out: Path, steps: int, seed: int, quick: bool):
    """The clean classifier on the built-in landscapes (trained once; re-running resumes / skips)."""
    from landiff.cli.main import main
    from landiff.metrics.class_metrics import clean_classifier
    from landiff.runs.load import load_run

    run = out / "clean-classifier"
    argv = ["train", "--run", str(run), "--model", "classifier", "--noise", "none", "--steps", str(steps),
            "--seed", str(seed), "--eval-every", str(max(1, steps // 2))]
    if quick:
        argv += ["--synthetic-n", "256", "--holdout", "32", "--warmup", "0"]
    if main(argv) != 0:
        raise SystemExit("training the clean classifier failed")
    loaded = load_run(run, device="cpu")
    return clean_classifier(loaded, CLASSES, flag="the judge")


def shares(names: list[str]) -> list[float]:
    return [100.0 * names.count(c) / max(1, len(names)) for c in CLASSES]


def run_rows(run: str, judge_, n: int, draws: int) -> list[list[float]]:
    from landiff.generate import generate
    from landiff.metrics.class_metrics import predict
    from landiff.runs.load import load_run

    loaded = load_run(run, device="cpu")
    rows = []
    for k in range(draws):
        images = generate(loaded, list(range(k * n, (k + 1) * n)), labels=None).images
        rows.append(shares(predict(judge_, images)))
    return rows


def real_rows(judge_, n: int, draws: int, resolution: int) -> list[list[float]]:
    from landiff.data.synthetic import SyntheticLandscapes
    from landiff.metrics.class_metrics import predict

    data = SyntheticLandscapes(n=n * draws, resolution=resolution, seed=0, split="heldout")
    images, _ = data.render(range(n * draws))
    return [shares(predict(judge_, np.asarray(images[k * n:(k + 1) * n]))) for k in range(draws)]


def table(rows: dict[str, list[list[float]]]) -> str:
    lines = ["| images | " + " | ".join(f"{c} % (mean; per draw)" for c in CLASSES) + " |", "|---|" + "---:|" * len(CLASSES)]
    for label, draws in rows.items():
        cells = []
        for j in range(len(CLASSES)):
            values = [d[j] for d in draws]
            cells.append(f"{np.mean(values):.1f} ({', '.join(f'{v:.0f}' for v in values)})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="", help="comma-separated unconditional runs on the built-in landscapes")
    parser.add_argument("--out", type=Path, default=Path("bench-runs/class-shares"))
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--draws", type=int, default=4)
    parser.add_argument("--classifier-steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    runs = [r for r in args.runs.split(",") if r]
    if args.quick:
        args.n, args.draws, args.classifier_steps = 8, 2, 2
        if not runs:
            from landiff.cli.main import main as landiff

            quick_run = args.out / "quick-run"
            landiff(["train", "--run", str(quick_run), "--steps", "2", "--warmup", "0", "--synthetic-n", "64",
                     "--preview-count", "0"])
            runs = [str(quick_run)]
    start = time.perf_counter()
    judge_ = judge(args.out, args.classifier_steps, args.seed, args.quick)
    rows = {"real held-out images": real_rows(judge_, args.n, args.draws, 32)}
    for run in runs:
        rows[Path(run).name] = run_rows(run, judge_, args.n, args.draws)
    text = (f"`python benchmarks/class_shares.py --runs {args.runs} --draws {args.draws}` — {time.strftime('%Y-%m-%d %H:%M')}; "
            f"judge: {judge_.description}; n = {args.n} per draw; {(time.perf_counter() - start) / 60:.1f} min.\n\n"
            + table(rows) + "\n")
    print(text)
    if not args.no_append and not args.quick:
        append_results(RESULTS, "## Scene types in the samples (a clean classifier's shares)\n\n" + text)


if __name__ == "__main__":
    main()
