"""Measuring each run once, and the quality-vs-compute curve points.

The protocol is ``landiff compare``'s, from the same functions: ``n`` samples from seeds 0…n−1
(:func:`landiff.generate.generate`: DPM-Solver++ for diffusion, G(z(seed)) for the GAN), SWD
(:func:`landiff.metrics.evaluate.evaluate_swd`, 3 repeats) against the first ``n`` held-out images,
the real-vs-real floor against the next ``n``, FLOPs from :func:`landiff.workflows.cost.flops_per_image`.
Unlike ``compare_runs``, which measures the floor and counts FLOPs for every call, the study
measures the floor once and counts FLOPs once per architecture (``results/floor.json``,
``results/flops.json``): with 28 runs and their curve points that halves the evaluation time.

Because every run uses the same seeds, run A's image k and run B's image k come from the same
latent input; the samples are kept in ``OUT/samples/<name>.npz`` for the data-sensitivity pairs.
Each result is cached in ``OUT/results/runs/<name>.json`` under the
:meth:`~landiff.metrics.provenance.Provenance.digest` of its samples (checkpoint SHA-256, sampler,
steps, labels, precision …, the key every landiff record carries), so a re-run measures only what
changed. The curve points of seed run ``<name>`` (``curve_n`` samples after each training stage) are
kept in ``OUT/results/curves/<name>.json``, each under the SHA-256 of the checkpoint it measured.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from landiff.generate import generate, generation_provenance
from landiff.metrics.evaluate import evaluate_swd
from landiff.metrics.features import file_sha256
from landiff.metrics.io import ImageSet, read_npz
from landiff.metrics.perceptual import diversity
from landiff.metrics.records import nan_to_null
from landiff.runs.checkpoint import latest_checkpoint
from landiff.runs.files import atomic_write, atomic_write_text
from landiff.runs.load import LoadedRun, load_run
from landiff.samplers import DEFAULT_SAMPLER
from landiff.workflows.cost import flops_per_image
from landiff.workflows.study.datasets import DataLayout
from landiff.workflows.study.options import MODEL, Family, StudyOptions
from landiff.workflows.study.state import checkpoint_state

# A run has collapsed when its samples are less than 40 % as diverse as real images (mean
# perceptual distance between different samples vs between different real images). Measured on the
# built-in landscapes at 32 px: DCGAN (default recipe) 0.10 after 60 steps, still in its noise phase
# with near-identical outputs, 0.51 after 120 and 0.62 after 160 steps (0.94 min, what the 60-min plan
# gives it); the tiny diffusion model 0.68 after 133 steps.
COLLAPSE_RATIO = 0.4
METRIC_REPEATS = 3


@dataclass(frozen=True)
class RunEval:
    """One run's final measurements (NaN where a diverged run has none).

    Attributes:
        status: ``finished`` or ``diverged``.
        swd, swd_std: SWD ×10³ vs held-out images, mean ± s.d. over metric repeats.
        floor, floor_std: real-vs-real SWD at the same n.
        diversity: sample diversity / real diversity (1 = as varied as the data).
        collapsed: ``diversity < COLLAPSE_RATIO``.
        flops_per_train_image: FLOPs of one training example (forward + backward).
        flops_per_sample: FLOPs of one generated image (all NFE).
        sample_seconds: wall-clock per generated image.
    """

    name: str
    family: Family
    status: str
    step: int
    images_seen: int
    train_seconds: float
    flops_per_train_image: float
    flops_per_sample: float
    nfe: int
    sample_seconds: float
    swd: float
    swd_std: float
    floor: float
    floor_std: float
    diversity: float
    collapsed: bool
    n: int
    checkpoint_sha256: str
    detail: str = ""
    provenance: str = ""  # Provenance.digest() of the measured samples (the cache key)

    @property
    def failed(self) -> bool:
        """Diverged (non-finite training) or collapsed (diversity criterion)."""
        return self.status == "diverged" or self.collapsed

    @property
    def train_flops(self) -> float:
        return self.flops_per_train_image * self.images_seen


def _cached(path: Path) -> RunEval | None:
    if not path.is_file():
        return None
    try:
        return load_eval(path)
    except (ValueError, TypeError, KeyError):
        return None  # unreadable or from another version: measure again


def diverged_eval(name: str, family: Family, detail: str, out: Path) -> RunEval:
    """The record of a run whose training stopped on non-finite values (written with the others)."""
    nan = math.nan
    result = RunEval(name, family, "diverged", 0, 0, nan, nan, nan, 0, nan, nan, nan, nan, nan, nan, False, 0, "", detail)
    write_json(out / "results" / "runs" / f"{name}.json", asdict(result))
    return result


def evaluate_run(name: str, family: Family, run_dir: Path, out: Path, layout: DataLayout,
                 options: StudyOptions) -> tuple[RunEval, bool]:
    """Measures ``run_dir``'s latest checkpoint; returns (result, whether it was measured now rather
    than read from the cache of that same checkpoint)."""
    cache = out / "results" / "runs" / f"{name}.json"
    checkpoint = latest_checkpoint(run_dir / "checkpoints")
    if checkpoint is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint to evaluate")
    sha = file_sha256(checkpoint)
    cached = _cached(cache)
    if cached is None or cached.checkpoint_sha256 != sha or cached.n != layout.reference_n:
        cached = None  # another checkpoint: no need to load this one to know
    run = load_run(checkpoint=checkpoint, ema_length=options.ema_length if MODEL[family] == "diffusion" else None)
    seeds = list(range(layout.reference_n))
    key = generation_provenance(run, seeds, sampler=DEFAULT_SAMPLER, steps=options.sample_steps).digest()
    if cached is not None and cached.provenance == key:
        return cached, False
    reference = layout.reference_images()
    generated = generate(run, list(range(len(reference))), sampler=DEFAULT_SAMPLER, steps=options.sample_steps)
    save_samples(out, name, generated.images)
    swd = _swd(generated.images, reference, f"{name} step {run.state.step}")
    floor = floor_swd(out, layout)
    train_flops, eval_flops = cached_flops(out, run)
    ratio = diversity(generated.images) / diversity(reference)
    result = RunEval(
        name=name, family=family, status="finished", step=run.state.step, images_seen=run.state.images_seen,
        train_seconds=run.state.seconds, flops_per_train_image=train_flops, flops_per_sample=eval_flops * generated.nfe,
        nfe=generated.nfe, sample_seconds=generated.seconds_per_image, swd=swd[0], swd_std=swd[1], floor=floor[0],
        floor_std=floor[1], diversity=ratio, collapsed=bool(ratio < COLLAPSE_RATIO), n=len(reference),
        checkpoint_sha256=sha, provenance=generated.provenance.digest() if generated.provenance else "",
    )
    write_json(cache, asdict(result))
    return result, True


def _swd(samples: np.ndarray, reference: np.ndarray, what: str) -> tuple[float, float]:
    """(SWD ×10³, its s.d. over the metric repeats) of ``samples`` against ``reference``."""
    record = evaluate_swd(ImageSet(samples, what), ImageSet(reference, "held-out real images"), seed=0,
                          repeats=METRIC_REPEATS)
    estimate = record.estimates["swd"]
    return estimate.value, estimate.std


def floor_swd(out: Path, layout: DataLayout) -> tuple[float, float]:
    """Real vs real: the second ``reference_n`` held-out images against the first (measured once)."""
    path = out / "results" / "floor.json"
    if path.is_file():
        values = json.loads(path.read_text(encoding="utf-8"))
        if values["n"] == layout.reference_n:
            return values["swd"], values["swd_std"]
    held = read_npz(layout.heldout)
    n = layout.reference_n
    value, std = _swd(held[n : 2 * n], held[:n], "held-out real images, second half")
    write_json(path, {"n": n, "swd": value, "swd_std": std})
    return value, std


def cached_flops(out: Path, run: LoadedRun) -> tuple[float, float]:
    """(FLOPs per training image, per network evaluation) of the run's architecture, counted once."""
    config = run.config
    key = json.dumps([config.model, config.resolution, asdict(config.net) if config.model == "diffusion" else None,
                      asdict(config.gan) if config.model == "gan" else None], sort_keys=True)
    path = out / "results" / "flops.json"
    table = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if key not in table:
        table[key] = list(flops_per_image(run))
        write_json(path, table)
    train_flops, eval_flops = table[key]
    return float(train_flops), float(eval_flops)


def samples_path(out: Path, name: str) -> Path:
    return out / "samples" / f"{name}.npz"


def save_samples(out: Path, name: str, images: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, images=images)

    atomic_write(samples_path(out, name), write)


def write_json(path: Path, values: object) -> None:
    """Writes JSON atomically; NaN becomes null so any JSON reader accepts the file."""
    atomic_write_text(path, json.dumps(nan_to_null(values), indent=1) + "\n")


def none_to_nan(value: float | None) -> float:
    """Reads back a number written by :func:`write_json` (null → NaN)."""
    return math.nan if value is None else float(value)


def load_eval(path: Path) -> RunEval:
    """A RunEval written by :func:`evaluate_run` (nulls back to NaN)."""
    values = json.loads(path.read_text(encoding="utf-8"))
    floats = {"train_seconds", "flops_per_train_image", "flops_per_sample", "sample_seconds", "swd", "swd_std",
              "floor", "floor_std", "diversity"}
    fields: dict[str, Any] = {k: none_to_nan(v) if k in floats else v for k, v in values.items()}
    return RunEval(**fields)


@dataclass(frozen=True)
class CurvePoint:
    """SWD after one training stage of a seed run (one point of its quality-vs-compute curve), and the
    SHA-256 of the checkpoint it measured (its cache key)."""

    stage: int
    step: int
    images_seen: int
    train_seconds: float
    train_flops: float
    swd: float
    swd_std: float
    n: int
    checkpoint_sha256: str = ""


def curve_path(out: Path, name: str) -> Path:
    """Where run ``name``'s curve points are kept."""
    return out / "results" / "curves" / f"{name}.json"


def read_curve(out: Path, name: str) -> list[CurvePoint]:
    """Run ``name``'s curve points measured so far, by stage."""
    path = curve_path(out, name)
    if not path.is_file():
        return []
    points = json.loads(path.read_text(encoding="utf-8"))
    return [CurvePoint(**{**p, "swd": none_to_nan(p["swd"]), "swd_std": none_to_nan(p["swd_std"])}) for p in points]


def measure_stage(out: Path, name: str, family: Family, run_dir: Path, stage: int, layout: DataLayout,
                  options: StudyOptions) -> tuple[CurvePoint | None, str]:
    """The curve point of stage ``stage`` of run ``name``, measured from its latest checkpoint unless cached.

    Returns (the point measured now, "measured"), or (None, why not): ``"cached"`` when the stage's point
    is stored under this checkpoint's SHA-256, or was measured before the run went on past it (a resumed
    study: the stored point is behind the current step, or a later stage's point holds this checkpoint),
    ``"no progress"`` when only an earlier stage's point measured this very checkpoint (this stage ended
    within the previous stage's last step). A stored point of this stage from another
    checkpoint that is not behind the current one (the run was trained again) is measured again, and
    the points of later stages are dropped with it.
    """
    checkpoint = latest_checkpoint(run_dir / "checkpoints")
    if checkpoint is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint to measure")
    sha, points = file_sha256(checkpoint), read_curve(out, name)
    same = [p.stage for p in points if p.checkpoint_sha256 == sha]
    if same:  # this stage's point, or a later stage's (the run went on): kept; only earlier ones: no progress
        return None, "no progress" if max(same) < stage else "cached"
    state = checkpoint_state(run_dir)
    if state is not None and any(p.stage == stage and p.step < state.step for p in points):
        return None, "cached"
    run = load_run(checkpoint=checkpoint, ema_length=options.ema_length if MODEL[family] == "diffusion" else None)
    n = min(options.curve_n, layout.reference_n)
    generated = generate(run, list(range(n)), sampler=DEFAULT_SAMPLER, steps=options.sample_steps)
    swd, std = _swd(generated.images, layout.reference_images()[:n], f"{name} stage {stage}")
    per_image = cached_flops(out, run)[0]
    point = CurvePoint(stage, run.state.step, run.state.images_seen, run.state.seconds,
                       per_image * run.state.images_seen, swd, std, n, sha)
    kept = [p for p in points if p.stage < stage]
    write_json(curve_path(out, name), [asdict(p) for p in [*kept, point]])
    return point, "measured"


def samples_of(out: Path, name: str) -> np.ndarray:
    """The images measured for run ``name`` (N, H, W, 3) uint8, image k from seed k."""
    return read_npz(samples_path(out, name))
