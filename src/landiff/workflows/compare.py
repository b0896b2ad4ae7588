"""``landiff compare``: evaluate runs with one protocol and write ``RUN/compare/`` for the report.

Every run is measured the same way: the same number of images from the same seeds, the same
reference set (held-out real images), the same metric seeds. Diffusion runs are also swept over
samplers × steps. Class-conditional runs are sampled with balanced labels (image k of seed S+k
gets class k mod C, :func:`landiff.generate.balanced_labels`), the same labels for every run with
that class list; ``guidance`` is the classifier-free guidance scale of conditional diffusion runs
(1 = plain conditional, what the model was trained for). Results go to ``RUN/compare/summary.json``
(+ ``samples.npz``, ``real.npz``, ``memorization.npz``) and to the run's ``metrics-<name>.jsonl``;
each carries the :class:`~landiff.metrics.provenance.Provenance` of the images it was computed from.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from landiff.errors import UserError
from landiff.generate import generate
from landiff.metrics import evaluate
from landiff.metrics.features import InceptionFeatures, InceptionUnavailable, find_inception_weights
from landiff.metrics.io import ImageSet, load_reference
from landiff.metrics.provenance import Provenance
from landiff.metrics.records import Estimate, MetricRecord, append_record
from landiff.metrics.swd import uniform_noise
from landiff.runs.config import TUNING
from landiff.runs.files import atomic_write, atomic_write_text
from landiff.runs.load import LoadedRun, existing_run_config, load_run, refuse_classifier
from landiff.samplers import DEFAULT_SAMPLER, DEFAULT_STEPS, SAMPLERS
from landiff.workflows.cost import flops_per_image

DEFAULT_SWEEP: tuple[tuple[str, int], ...] = (
    ("ddpm", 50), ("ddpm", 250), ("ddim", 20), ("dpm++", 10), ("dpm++", 20), ("dpm++sde", 10), ("dpm++sde", 20),
    ("dpm++sde", 50),
)


@dataclass
class CompareOptions:
    """The shared protocol: sample count, seeds, reference, sweep, optional Inception weights."""

    n: int = 256
    seed: int = 0
    reference: str | None = None  # None: the first run's data (synthetic: its held-out split)
    heldout: str | None = None  # held-out images for the memorisation ratio (folders need it)
    sampler: str = DEFAULT_SAMPLER
    steps: int = DEFAULT_STEPS
    sweep: Sequence[tuple[str, int]] = field(default_factory=lambda: DEFAULT_SWEEP)
    sweep_n: int | None = None  # images per sweep point (default n)
    repeats: int = 3
    inception: str | None = None
    memorization_train: int = 5000
    guidance: float = 1.0  # classifier-free guidance scale for class-conditional diffusion runs
    precision: str = "auto"  # sampling precision of diffusion runs (auto: bf16 where the device has it natively)
    ema_length: float | None = None  # post-hoc EMA σ_rel for diffusion runs trained with --posthoc-ema


def parse_sweep(text: str) -> list[tuple[str, int]]:
    """``"ddim:10,20;dpm++:5,10"`` → [("ddim", 10), ("ddim", 20), ("dpm++", 5), ("dpm++", 10)]; "" → []."""
    points = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, counts = part.partition(":")
        if name not in SAMPLERS or not counts:
            raise UserError(f"--sweep entry {part!r} must look like 'ddim:10,20' (samplers {', '.join(SAMPLERS)})")
        try:
            points += [(name, int(c)) for c in counts.split(",")]
        except ValueError:
            raise UserError(f"--sweep entry {part!r}: step counts must be integers") from None
    return points


def compare_runs(
    run_dirs: Sequence[str | Path], options: CompareOptions, log: Callable[[str], None] = print
) -> list[dict[str, Any]]:
    """Evaluates every run with ``options``; returns and writes one summary per run."""
    if not run_dirs:
        raise UserError("give at least one run directory to compare")
    loaded = [_load(r, options.ema_length, log) for r in run_dirs]
    sizes = {(x.config.resolution, x.config.resolution) for x in loaded}
    if len(sizes) != 1:
        raise UserError(f"runs have different resolutions {sorted(sizes)}; compare runs of one resolution")
    (size,) = sizes
    first = loaded[0].config
    ref_spec = options.reference or first.data
    log(f"reference: {ref_spec} ({options.n} images, plus {options.n} more for the real-vs-real floor)")
    both = load_reference(ref_spec, size, 2 * options.n, seed=options.seed, data_seed=first.seed, split="heldout")
    half = len(both) // 2 if len(both) < 2 * options.n else options.n
    reference = ImageSet(both.images[:half], f"{both.description}: first {half}")
    floor_set = ImageSet(both.images[half : 2 * half], f"{both.description}: second {half}")
    floor = evaluate.evaluate_swd(floor_set, reference, seed=options.seed, repeats=options.repeats)
    noise = ImageSet(uniform_noise(reference.images, options.seed), "uniform noise")
    ceiling = evaluate.evaluate_swd(noise, reference, seed=options.seed, repeats=options.repeats)
    extractor = _inception(options.inception, log)
    for run_dir, run in zip(run_dirs, loaded, strict=True):
        _check_guidance(run_dir, run, options.guidance, log)
    summaries = []
    for run_dir, run in zip(run_dirs, loaded, strict=True):
        summaries.append(_compare_one(Path(run_dir), run, reference, (floor, ceiling), extractor, options, log))
    return summaries


def _load(run_dir: str | Path, ema_length: float | None, log: Callable[[str], None]) -> LoadedRun:
    """The run, with the post-hoc EMA of ``ema_length`` for a diffusion run (a GAN keeps its own EMA, said so)."""
    config = existing_run_config(Path(run_dir)) if ema_length is not None else None
    if ema_length and config is not None and config.model == "gan":
        log(f"{run_dir}: --ema-length {ema_length:g} does not apply (a GAN run; its own EMA is used)")
        ema_length = None
    run = load_run(run_dir, device="cpu", ema_length=ema_length)
    refuse_classifier(run, "compare")
    return run


def _guidance(run: LoadedRun, scale: float) -> float:
    """The guidance scale applied to ``run``: ``scale`` for class-conditional diffusion runs, else 1."""
    return scale if run.diffusion is not None and run.num_classes else 1.0


def _check_guidance(run_dir: str | Path, run: LoadedRun, scale: float, log: Callable[[str], None]) -> None:
    if scale == 1.0:
        return
    if _guidance(run, scale) == 1.0:
        log(f"{run_dir}: --guidance {scale:g} does not apply (not a class-conditional diffusion run)")
    elif run.config.label_dropout <= 0:
        raise UserError(f"--guidance {scale:g}: {run_dir} was trained without label dropout, so it has no "
                        "unconditional mode to guide with; use --guidance 1")


def _classes(run: LoadedRun, n: int) -> dict[str, Any]:
    """The class protocol of the compare samples, as written to summary.json."""
    if not run.num_classes:
        return {"protocol": "none", "names": [], "counts": []}
    names = run.classes if len(run.classes) == run.num_classes else [str(k) for k in range(run.num_classes)]
    counts = [len(range(k, n, run.num_classes)) for k in range(run.num_classes)]
    return {"protocol": "balanced", "names": list(names), "counts": counts,
            "rule": "image k (seed S+k) gets class k mod C"}


def _inception(path: str | None, log: Callable[[str], None]) -> InceptionFeatures | str:
    try:
        return InceptionFeatures(find_inception_weights(path))
    except InceptionUnavailable as err:
        log(f"FID/KID/precision/recall: {err}")
        return str(err)


def _compare_one(run_dir: Path, run: LoadedRun, reference: ImageSet, bounds: tuple[MetricRecord, MetricRecord],
                 extractor: InceptionFeatures | str, options: CompareOptions, log: Callable[[str], None]) -> dict[str, Any]:
    """Samples one run and measures it; ``bounds`` are the real-vs-real floor and the uniform-noise ceiling."""
    floor, ceiling = bounds
    family = "gan" if run.diffusion is None else "diffusion"
    out = run_dir / "compare"
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(options.seed, options.seed + options.n))
    classes = _classes(run, options.n)
    guidance = _guidance(run, options.guidance)
    log(f"{run_dir}: sampling {options.n} images ({family}" +
        (f", classes balanced over {', '.join(classes['names'])}" if classes["names"] else "") +
        (f", guidance {guidance:g}" if guidance != 1.0 else "") + ")")
    generated = generate(run, seeds, sampler=options.sampler, steps=options.steps, guidance=guidance,
                         precision=options.precision)
    provenance = generated.provenance
    samples = ImageSet(generated.images, f"{run_dir} step {run.state.step}, seeds {seeds[0]}..{seeds[-1]}")
    meta = {"seeds": [seeds[0], seeds[-1]], "classes": classes, "provenance": provenance.to_dict()}
    _save_npz(out / "samples.npz", images=generated.images, meta=np.array(json.dumps(meta)))
    _save_npz(out / "real.npz", images=reference.images)

    metrics: dict[str, Any] = {}
    swd = evaluate.evaluate_swd(samples, reference, seed=options.seed, repeats=options.repeats, provenance=provenance)
    append_record(run_dir, swd)
    metrics.update({k: _estimate(v) for k, v in swd.estimates.items()})
    metrics.update(_inception_metrics(run_dir, samples, reference, extractor, options, provenance))
    memo = _memorization(run_dir, run, samples, options, out, log, provenance)
    sweep = _sweep(run, reference, options, log, guidance) if family == "diffusion" else []
    train_flops, eval_flops = flops_per_image(run)
    summary: dict[str, Any] = {
        "run": str(run_dir), "family": family, "preset": run.config.preset, "step": run.state.step,
        "images_seen": run.state.images_seen, "checkpoint": str(run.checkpoint),
        "checkpoint_sha256": run.checkpoint_sha256, "n": options.n, "seed": options.seed,
        "sampler": options.sampler if family == "diffusion" else "gan",
        "steps": options.steps if family == "diffusion" else 1, "reference": reference.description,
        "classes": classes, "guidance": guidance, "provenance": provenance.to_dict(),
        "metrics": metrics, "noise_floor": {k: _estimate(v) for k, v in floor.estimates.items()},
        "noise_ceiling": {"swd": _estimate(ceiling.estimates["swd"])},
        "memorization": memo, "sweep": sweep,
        "cost": {
            "params": sum(p.numel() for p in run.model.parameters()), "images_seen": run.state.images_seen,
            "train_seconds": run.state.seconds, "flops_per_train_image": train_flops,
            "flops_per_sample": eval_flops * generated.nfe, "nfe": generated.nfe,
            "sample_seconds_per_image": generated.seconds_per_image,
            "configurations_tried": TUNING.get(run.config.preset),
        },
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    run_swd, floor_swd = metrics["swd"], summary["noise_floor"]["swd"]
    log(f"{run_dir}: SWD {run_swd['value']:.2f} ± {run_swd['std']:.2f} (floor {floor_swd['value']:.2f})")
    return summary


def _estimate(estimate: Estimate) -> dict[str, Any]:
    return {"value": estimate.value, "std": estimate.std, "repeats": estimate.repeats, "spread": estimate.spread}


def _inception_metrics(run_dir: Path, samples: ImageSet, reference: ImageSet, extractor: InceptionFeatures | str,
                       options: CompareOptions, provenance: Provenance) -> dict[str, Any]:
    if isinstance(extractor, str):
        return {name: {"unavailable": extractor} for name in ("fid", "kid", "precision", "recall")}
    results: dict[str, Any] = {}
    for record in (
        evaluate.evaluate_fid(samples, reference, extractor, seed=options.seed, repeats=options.repeats,
                              provenance=provenance),
        evaluate.evaluate_kid(samples, reference, extractor, seed=options.seed, provenance=provenance),
        evaluate.evaluate_pr(samples, reference, extractor, seed=options.seed, repeats=options.repeats,
                             provenance=provenance),
    ):
        append_record(run_dir, record)
        results.update({k: _estimate(v) for k, v in record.estimates.items()})
    return results


def _memorization(run_dir: Path, run: LoadedRun, samples: ImageSet, options: CompareOptions, out: Path,
                  log: Callable[[str], None], provenance: Provenance) -> dict[str, Any]:
    config = run.config
    size = (config.resolution, config.resolution)
    if config.data != "synthetic" and options.heldout is None:
        return {"unavailable": "needs held-out real images for the distance ratio: pass --heldout DIR"}
    count = min(options.memorization_train, config.synthetic_n) if config.data == "synthetic" else None
    train = load_reference(config.data, size, count, seed=options.seed, data_seed=config.seed, split="train")
    heldout = load_reference(options.heldout or "synthetic", size, len(train), seed=options.seed,
                             data_seed=config.seed, split="heldout")
    record, result = evaluate.evaluate_memorization(samples, train, heldout, seed=options.seed, provenance=provenance)
    append_record(run_dir, record)
    closest = result.closest(min(16, len(samples)))
    _save_npz(out / "memorization.npz", samples=samples.images[closest],
              nearest_train=train.images[result.nearest_train[closest]], ratio=result.ratio[closest],
              d_train=result.d_train[closest], meta=np.array(json.dumps({"provenance": provenance.to_dict()})))
    log(f"{run_dir}: memorisation: {len(result.flagged)} of {len(samples)} flagged "
        f"(train set {len(train)}, smallest ratio {result.ratio.min():.2f})")
    return {"n": len(samples), "flagged": int(len(result.flagged)), "ratio_threshold": result.ratio_threshold,
            "distance_threshold": result.distance_threshold, "min_ratio": float(result.ratio.min()),
            "n_train": len(train)}


def _sweep(run: LoadedRun, reference: ImageSet, options: CompareOptions, log: Callable[[str], None],
           guidance: float) -> list[dict[str, Any]]:
    n = min(options.sweep_n or options.n, len(reference))
    ref = ImageSet(reference.images[:n], f"{reference.description}, first {n}")
    points = []
    for sampler, steps in options.sweep:
        generated = generate(run, list(range(options.seed, options.seed + n)), sampler=sampler, steps=steps,
                             guidance=guidance, precision=options.precision)
        record = evaluate.evaluate_swd(ImageSet(generated.images, f"{sampler}-{steps}"), ref, seed=options.seed,
                                       repeats=options.repeats, provenance=generated.provenance)
        swd = record.estimates["swd"]
        points.append({"sampler": sampler, "steps": steps, "nfe": generated.nfe, "swd": swd.value, "swd_std": swd.std,
                       "n": n, "seconds_per_image": generated.seconds_per_image,
                       "provenance": generated.provenance.to_dict()})
        log(f"  sweep {sampler:>5} {steps:>4} steps: SWD {swd.value:.2f}")
    return points


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, allow_pickle=True, **arrays)  # allow_pickle: numpy's default, named for mypy

    atomic_write(path, write)
