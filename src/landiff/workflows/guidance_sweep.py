"""The guidance sweep of ``landiff compare RUN --classifier NOISY_RUN --clean-classifier CLEAN_RUN``.

One diffusion run is sampled at several guidance strengths of two kinds, every point from the same
seeds S..S+n−1 with the same balanced labels (image k for class k mod C), and each set is measured
with :mod:`landiff.metrics.class_metrics` (class consistency, per-class SWD, within-class
diversity, precision/recall with Inception weights) plus SWD, seconds per image and NFE:

* **classifier guidance** (Dhariwal & Nichol 2021, arXiv 2105.05233, §4, Alg. 1–2), scale **s** ≥ 0
  on ∇ log p_φ(y | x_t) of the noisy classifier ``--classifier``; s = 0 is no guidance.
* **classifier-free guidance** (Ho & Salimans 2022, arXiv 2207.12598, eq. 6) in landiff's (and
  GLIDE's) convention ε̃ = ε_u + w·(ε_c − ε_u), scale **w** ≥ 0: w = 1 is the plain conditional model
  (no guidance), w = 0 the unconditional one, w > 1 guided. Ho & Salimans write the same as
  (1 + w')·ε_c − w'·ε_u, so their w' is landiff's w − 1. Only for a class-conditional run trained
  with label dropout (it needs an unconditional mode).

How the two axes are aligned: every point is a pair (s, w). The classifier-guidance line is
{(s, 1) : s ∈ scales} and the classifier-free line is {(0, w) : w ∈ scales}; they meet at (s = 0,
w = 1), the **unguided** model, which is sampled once and belongs to both lines. Points are always
labelled with their letter ("s = 2", "w = 2"), never with a bare number, and every record holds both
``classifier_scale`` (s) and ``cfg_scale`` (w). With the default scales 0, 1, 2, 4, 8 that is nine
points: unguided, s = 1, 2, 4, 8 and w = 0, 2, 4, 8. For an unconditional run only the classifier
line exists; its labels are the classifier's classes, and the unguided point is the unconditional
model judged against those same labels (so its class consistency is near chance, 1/C).

Output: ``RUN/compare/guidance.json`` (atomic; see :func:`sweep_record`) and
``RUN/compare/guidance-grids.npz``: ``images`` (P, C, G, H, W, 3) uint8, the first G samples of each
class at P of the points (unguided and the weakest and strongest of each line), with a JSON ``meta``
naming the points, the classes and the provenance.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from landiff.errors import UserError
from landiff.generate import Generated, generate
from landiff.metrics.class_metrics import (
    PR_UNAVAILABLE,
    ClassReference,
    CleanClassifier,
    check_class_names,
    clean_classifier,
    evaluate_classes,
    prepare_reference,
)
from landiff.metrics.features import FeatureExtractor, InceptionFeatures, InceptionUnavailable, find_inception_weights
from landiff.metrics.io import LabelledImages, load_labelled_reference
from landiff.runs.files import atomic_write, atomic_write_text
from landiff.runs.load import LoadedRun, load_run, refuse_classifier
from landiff.samplers import DEFAULT_SAMPLER, DEFAULT_STEPS

DEFAULT_SCALES: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0)
MAX_POINTS = 12  # each point samples n images: more than this is an afternoon on a CPU
GRID_PER_CLASS = 6  # samples of each class in a grid
GUIDANCE_FILE = "guidance.json"
GRIDS_FILE = "guidance-grids.npz"
FORMAT = "landiff guidance sweep v1"
Kind = Literal["unguided", "classifier", "cfg"]


@dataclass(frozen=True)
class GuidanceOptions:
    """The protocol of the sweep (defaults: the issue's table, compare's sampler)."""

    scales: tuple[float, ...] = DEFAULT_SCALES  # the values of s and of w
    n: int = 256  # images per point, balanced over the classes
    seed: int = 0  # image k from seed + k, at every point; also the metrics' seed
    sampler: str = DEFAULT_SAMPLER
    steps: int = DEFAULT_STEPS
    precision: str = "auto"
    reference: str | None = None  # labelled held-out real images (None: the run's data, held-out split)
    inception: str | None = None  # Inception weights for precision/recall
    repeats: int = 1  # SWD repeats (± spread)
    batch: int = 64
    device: str | None = "cpu"  # compare's device
    ema_length: float | None = None  # post-hoc EMA σ_rel of the diffusion run (None: its own default)


@dataclass(frozen=True)
class SweepPoint:
    """One sampling setting: s (classifier guidance) and w (classifier-free), see the module docstring."""

    kind: Kind
    classifier_scale: float  # s; 0 = no classifier guidance
    cfg_scale: float  # w; 1 = plain conditional

    @property
    def label(self) -> str:
        if self.kind == "unguided":
            return "unguided (s = 0, w = 1)"
        if self.kind == "classifier":
            return f"classifier guidance s = {self.classifier_scale:g}"
        return f"classifier-free w = {self.cfg_scale:g}" + (" (unconditional)" if self.cfg_scale == 0 else "")


def parse_scales(text: str, flag: str = "--guidance-scales") -> tuple[float, ...]:
    """``"0,1,2,4,8"`` → (0.0, 1.0, 2.0, 4.0, 8.0): finite numbers ≥ 0, each once, sorted."""
    parts = [part.strip() for part in text.split(",")]
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise UserError(f"{flag} {text!r:.60}: give comma-separated numbers >= 0, e.g. 0,1,2,4,8") from None
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise UserError(f"{flag} {text!r:.60}: every scale must be a finite number >= 0 (s = 0 and w = 1 are unguided)")
    if len(set(values)) != len(values):
        raise UserError(f"{flag} {text!r:.60} lists a scale twice; list each once")
    return tuple(sorted(values))


def sweep_points(scales: Sequence[float], classifier: bool, cfg: bool) -> list[SweepPoint]:
    """The unguided point, then s ∈ scales \\ {0} (with a classifier), then w ∈ scales \\ {1} (with CFG)."""
    points = [SweepPoint("unguided", 0.0, 1.0)]
    points += [SweepPoint("classifier", float(s), 1.0) for s in scales if classifier and s != 0]
    points += [SweepPoint("cfg", 0.0, float(w)) for w in scales if cfg and w != 1]
    return points


# ------------------------------------------------------------------------------------ the plan
@dataclass
class GuidancePlan:
    """Everything the sweep needs, loaded and checked before anything is sampled."""

    run_dir: Path
    run: LoadedRun
    guide: LoadedRun | None  # the noisy classifier (None: no classifier-guidance line)
    judge: CleanClassifier
    classes: tuple[str, ...]  # the intended labels' names, label order
    points: list[SweepPoint]
    real: LabelledImages
    extractor: FeatureExtractor | None
    inception: str  # the extractor's description, or why precision/recall are unavailable
    options: GuidanceOptions
    skipped: dict[str, str] = field(default_factory=dict)  # line → why it was not swept


def _run_label(run: LoadedRun) -> str:
    return str(run.checkpoint.parent.parent)


def check_guided_run(run: LoadedRun, flag: str = "RUN") -> None:
    """Refuses a run that guidance cannot apply to: a classifier run or a GAN run."""
    refuse_classifier(run, "compare: give the diffusion run to guide as RUN and the classifier as --classifier")
    if run.diffusion is None:
        raise UserError(f"--classifier / --clean-classifier: {flag} {_run_label(run)} is a GAN run; the guidance sweep "
                        "steers a diffusion sampler, so give a diffusion run (or drop the guidance options)")


def check_guide(run: LoadedRun, guide: LoadedRun) -> None:
    """Refuses a ``--classifier`` that cannot guide ``run``: not a classifier, a clean one, another size or classes."""
    where = f"--classifier {_run_label(guide)}"
    if not guide.is_classifier:
        raise UserError(f"{where} is not a classifier run; give a noisy classifier trained with "
                        "landiff train --model classifier --data D")
    if guide.config.classifier.noise != "schedule":
        raise UserError(f"{where} is a clean classifier (noise {guide.config.classifier.noise!r}): it never saw noisy "
                        "images, so its gradient cannot guide; give one trained with noise schedule (give the clean one "
                        "as --clean-classifier)")
    if guide.config.resolution != run.config.resolution:
        raise UserError(f"{where} takes {guide.config.resolution} px images but RUN draws {run.config.resolution} px; "
                        "train the classifier at the run's resolution")
    if run.num_classes:
        check_class_names(guide.classes, run.classes, where)


def plan_sweep(run_dir: str | Path, options: GuidanceOptions, *, classifier: str | Path | None,
               clean_classifier_dir: str | Path, log: Callable[[str], None] = print) -> GuidancePlan:
    """Loads the run, the classifiers, the real images and the Inception weights; refuses every bad
    combination (one line naming the option and the fix) before any image is drawn."""
    run = load_run(run_dir, device=options.device, ema_length=options.ema_length)
    check_guided_run(run)
    guide = load_run(classifier, device=options.device) if classifier is not None else None
    if guide is not None:
        check_guide(run, guide)
    if run.num_classes and len(run.classes) != run.num_classes:
        raise UserError(f"RUN {run_dir} has no classes.json, so its labels have no names to match the classifiers'; "
                        "restore classes.json from the run's data")
    if not run.num_classes and guide is None:
        raise UserError(f"RUN {run_dir} is unconditional: without --classifier there is nothing to guide; add "
                        "--classifier NOISY_RUN (or give a class-conditional run trained with label dropout)")
    classes = tuple(run.classes if run.num_classes else guide.classes)  # type: ignore[union-attr]
    judge_run = load_run(clean_classifier_dir, device=options.device)
    judge = clean_classifier(judge_run, classes)
    if judge_run.config.resolution != run.config.resolution:
        raise UserError(f"--clean-classifier {clean_classifier_dir} takes {judge_run.config.resolution} px images but "
                        f"RUN draws {run.config.resolution} px; train it at the run's resolution")
    skipped = _skipped_lines(run, guide)
    cfg = "classifier-free" not in skipped
    points = sweep_points(options.scales, guide is not None, cfg)
    if len(points) == 1:
        raise UserError(f"--guidance-scales {','.join(f'{s:g}' for s in options.scales)} gives no guided point "
                        f"({'; '.join(skipped.values()) or 'only s = 0 and w = 1'}); add scales such as 1,2,4,8")
    if len(points) > MAX_POINTS:
        raise UserError(f"--guidance-scales gives {len(points)} points (unguided + {len(points) - 1} guided) but at most "
                        f"{MAX_POINTS} are drawn ({options.n} images each); give fewer scales")
    if options.n < 2 * len(classes):
        raise UserError(f"--guidance-n {options.n}: per-class SWD and diversity need at least 2 images of each of the "
                        f"{len(classes)} classes; use --guidance-n {2 * len(classes)} or more (default 256)")
    real = _real_images(run, options, len(classes))
    extractor, inception = _inception(options.inception, log)
    return GuidancePlan(Path(run_dir), run, guide, judge, classes, points, real, extractor, inception, options, skipped)


def _skipped_lines(run: LoadedRun, guide: LoadedRun | None) -> dict[str, str]:
    """Which line of the sweep is left out, and why (said in guidance.json and the log)."""
    skipped = {}
    if guide is None:
        skipped["classifier"] = "no --classifier given"
    if not run.num_classes:
        skipped["classifier-free"] = "the run is unconditional"
    elif run.config.label_dropout <= 0:
        skipped["classifier-free"] = "the run was trained without label dropout, so it has no unconditional mode"
    return skipped


def _real_images(run: LoadedRun, options: GuidanceOptions, classes: int) -> LabelledImages:
    """2·⌈n/C⌉ held-out real images per class: the reference and, beside it, the real-vs-real floor set."""
    size = (run.config.resolution, run.config.resolution)
    per_class = 2 * math.ceil(options.n / classes)
    return load_labelled_reference(options.reference or run.config.data, size, per_class, seed=options.seed,
                                   data_seed=run.config.seed)


def _inception(path: str | None, log: Callable[[str], None]) -> tuple[FeatureExtractor | None, str]:
    try:
        features = InceptionFeatures(find_inception_weights(path))
    except InceptionUnavailable:
        log(f"guidance sweep: precision/recall {PR_UNAVAILABLE}")
        return None, PR_UNAVAILABLE
    return features, features.description


# ------------------------------------------------------------------------------------ the sweep
def guidance_sweep(run_dir: str | Path, options: GuidanceOptions, *, classifier: str | Path | None,
                   clean_classifier_dir: str | Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Plans (:func:`plan_sweep`), then runs (:func:`run_sweep`) the sweep; returns guidance.json's content."""
    return run_sweep(plan_sweep(run_dir, options, classifier=classifier, clean_classifier_dir=clean_classifier_dir,
                                log=log), log)


def run_sweep(plan: GuidancePlan, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Samples and measures every point; writes ``RUN/compare/guidance.json`` and the grids npz."""
    o = plan.options
    out = plan.run_dir / "compare"
    out.mkdir(parents=True, exist_ok=True)
    labels = np.arange(o.n) % len(plan.classes)
    counts = {name: int((labels == k).sum()) for k, name in enumerate(plan.classes)}
    for line, why in plan.skipped.items():
        log(f"guidance sweep: no {line} line ({why})")
    reference = prepare_reference(plan.real, counts, classifier=plan.judge, extractor=plan.extractor, seed=o.seed,
                                  repeats=o.repeats)
    records, sets = [], []
    for point in plan.points:
        generated = _draw(plan, point)
        metrics = evaluate_classes(generated.images, labels, reference, classifier=plan.judge, extractor=plan.extractor,
                                   seed=o.seed, repeats=o.repeats)
        records.append(point_record(point, generated, metrics.to_dict()))
        sets.append(generated.images)
        log(_point_line(point, records[-1]))
    record = sweep_record(plan, reference, counts, records)
    grids = grid_points(plan.points)
    _save_grids(out / GRIDS_FILE, plan, [sets[k] for k in grids], [plan.points[k] for k in grids], labels,
                record["provenance"])
    atomic_write_text(out / GUIDANCE_FILE, json.dumps(record, indent=2, allow_nan=False) + "\n")
    log(f"guidance sweep: {len(records)} points written to {out / GUIDANCE_FILE}")
    return record


def _draw(plan: GuidancePlan, point: SweepPoint) -> Generated:
    o = plan.options
    guide = plan.guide if point.kind == "classifier" else None
    return generate(plan.run, list(range(o.seed, o.seed + o.n)), sampler=o.sampler, steps=o.steps, batch=o.batch,
                    labels="balanced", guidance=point.cfg_scale, precision=o.precision, classifier=guide,
                    classifier_scale=point.classifier_scale)


def point_record(point: SweepPoint, generated: Generated, metrics: dict[str, Any]) -> dict[str, Any]:
    """One point of guidance.json: its (s, w), label, metrics, cost and provenance."""
    return {"kind": point.kind, "label": point.label, "classifier_scale": point.classifier_scale,
            "cfg_scale": point.cfg_scale, "metrics": _finite(metrics), "nfe": generated.nfe,
            "classifier_evaluations": getattr(generated, "classifier_evaluations", 0),
            "seconds_per_image": generated.seconds_per_image, "provenance": generated.provenance.to_dict()}


def _finite(value: Any) -> Any:
    """NaN / inf → None, recursively (guidance.json is strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _point_line(point: SweepPoint, record: dict[str, Any]) -> str:
    m = record["metrics"]
    consistency = m["class_consistency"]
    text = (f"  {point.label}: class consistency {consistency['value']:.3f} [{consistency['low']:.3f}, "
            f"{consistency['high']:.3f}]" if consistency.get("value") is not None else f"  {point.label}:")
    ratio = m["diversity"]["ratio"]
    return (text + f", class SWD {m['class_swd']['mean']:.2f}, diversity x{ratio if ratio is not None else math.nan:.2f}"
            f", {record['seconds_per_image']:.3f} s/image")


def sweep_record(plan: GuidancePlan, reference: ClassReference, counts: dict[str, int],
                 points: list[dict[str, Any]]) -> dict[str, Any]:
    """guidance.json: the protocol, the two axes, the judge and the real side, and every point."""
    o, run = plan.options, plan.run
    guide = plan.guide
    return _finite({
        "format": FORMAT, "run": str(plan.run_dir), "step": run.state.step, "checkpoint_sha256": run.checkpoint_sha256,
        "provenance": points[0]["provenance"], "n": o.n, "seed": o.seed, "sampler": o.sampler, "steps": o.steps,
        "scales": list(o.scales),
        "labels": {"protocol": "balanced", "rule": "image k (seed S+k) is drawn for class k mod C",
                   "classes": list(plan.classes), "counts": counts},
        "axes": {
            "classifier": {"symbol": "s", "unguided_at": 0.0, "fixed": {"cfg_scale": 1.0},
                           "meaning": "ADM classifier guidance, s * grad log p(y | x_t) of the noisy classifier",
                           "classifier": None if guide is None else {"run": _run_label(guide),
                                                                     "checkpoint_sha256": guide.checkpoint_sha256},
                           "swept": guide is not None, "why_not": plan.skipped.get("classifier")},
            "cfg": {"symbol": "w", "unguided_at": 1.0, "fixed": {"classifier_scale": 0.0},
                    "meaning": "classifier-free guidance eps_u + w (eps_c - eps_u): w = 1 conditional, w = 0 "
                               "unconditional; Ho & Salimans' w is this w - 1",
                    "swept": "classifier-free" not in plan.skipped, "why_not": plan.skipped.get("classifier-free")},
        },
        "evaluator": {"clean_classifier": plan.judge.description, "inception": plan.inception},
        "reference": reference.to_dict(),
        "points": points,
        "grids": GRIDS_FILE,
    })


def grid_points(points: Sequence[SweepPoint]) -> list[int]:
    """Indices of the points shown as grids: the unguided one, then the weakest and the strongest of each line."""
    chosen = [0]
    for kind, scale in (("classifier", "classifier_scale"), ("cfg", "cfg_scale")):
        line = sorted((getattr(p, scale), k) for k, p in enumerate(points) if p.kind == kind)
        for _, k in (line[:1] + line[-1:]) if line else []:
            if k not in chosen:
                chosen.append(k)
    return chosen


def _save_grids(path: Path, plan: GuidancePlan, sets: list[np.ndarray], points: list[SweepPoint], labels: np.ndarray,
                provenance: dict[str, Any]) -> None:
    """(P, C, G, H, W, 3): the first G samples of each class (the same seeds at every point)."""
    count = min(GRID_PER_CLASS, int(min((labels == k).sum() for k in range(len(plan.classes)))))
    images = np.stack([np.stack([images[labels == k][:count] for k in range(len(plan.classes))]) for images in sets])
    meta = {"points": [{"kind": p.kind, "label": p.label, "classifier_scale": p.classifier_scale,
                        "cfg_scale": p.cfg_scale} for p in points],
            "classes": list(plan.classes), "per_class": count, "provenance": provenance}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, images=images, meta=np.array(json.dumps(meta)))

    atomic_write(path, write)
