"""``landiff demo``: the one-command tour — train both families on the built-in landscapes under one
time budget, sample, measure, and write the comparison report.

Budget: about a fifth of ``minutes`` (at most 2 min) is kept for sampling, metrics and the report;
the rest trains the diffusion model (70 %) and the DCGAN (30 %). Re-running continues where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from landiff.report import build_report
from landiff.train import train
from landiff.workflows.compare import CompareOptions, compare_runs
from landiff.workflows.pairing import diffusion_recipe, gan_recipe

DIFFUSION_SHARE = 0.7


@dataclass(frozen=True)
class DemoPlan:
    """How the demo spends its budget."""

    train_minutes: float
    diffusion_minutes: float
    gan_minutes: float
    n: int
    sweep: tuple[tuple[str, int], ...]


def plan(minutes: float) -> DemoPlan:
    """Splits ``minutes`` between training and evaluation (evaluation shrinks for short demos)."""
    eval_minutes = min(2.0, 0.2 * minutes)
    train_minutes = minutes - eval_minutes
    full = minutes >= 5
    return DemoPlan(
        train_minutes=train_minutes,
        diffusion_minutes=train_minutes * DIFFUSION_SHARE,
        gan_minutes=train_minutes * (1 - DIFFUSION_SHARE),
        n=256 if full else 64,
        sweep=(("ddim", 10), ("dpm++", 10), ("dpm++sde", 10), ("dpm++sde", 20)) if full else (("dpm++sde", 5),),
    )


def run_demo(
    out: Path, minutes: float = 10.0, resolution: int = 32, log: Callable[[str], None] = print
) -> tuple[Path, list[dict]]:
    """Runs the four stages; returns the report path and the per-run summaries."""
    p = plan(minutes)
    start = time.monotonic()
    stages = 4

    def stage(k: int, text: str) -> None:
        log(f"[{k}/{stages}] {text}  (elapsed {time.monotonic() - start:.0f} s of {minutes * 60:.0f} s)")

    stage(1, f"training the diffusion model (tiny preset, {p.diffusion_minutes:.1f} min)")
    train(diffusion_recipe("synthetic", resolution, p.diffusion_minutes), out / "diffusion", log=log)
    stage(2, f"training the DCGAN ({p.gan_minutes:.1f} min)")
    train(gan_recipe("synthetic", resolution, p.gan_minutes), out / "gan", log=log)
    stage(3, f"sampling {p.n} images from each and measuring them against held-out landscapes")
    runs: list[str | Path] = [out / "diffusion", out / "gan"]
    summaries = compare_runs(runs, CompareOptions(n=p.n, sweep=p.sweep, sweep_n=min(p.n, 128)), log=log)
    stage(4, "writing the report")
    files = build_report(runs, out / "report")
    return files.html, summaries


def summary_table(summaries: list[dict]) -> str:
    """The short table the demo prints at the end."""
    rows = [("", "SWD x1e3 (lower is better)", "train time", "images seen", "ms / sample", "NFE")]
    for s in summaries:
        m, c = s["metrics"]["swd"], s["cost"]
        rows.append((s["family"], f"{m['value']:.1f} ± {m['std']:.1f}", f"{c['train_seconds'] / 60:.1f} min",
                     f"{c['images_seen']:,}", f"{c['sample_seconds_per_image'] * 1000:.1f}", str(c["nfe"])))
    floor = summaries[0]["noise_floor"]["swd"]
    rows.append(("real vs real", f"{floor['value']:.1f} ± {floor['std']:.1f}", "", "", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)
