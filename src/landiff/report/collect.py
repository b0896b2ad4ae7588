"""Reads run directories into typed records, tolerating any missing or damaged piece.

A run directory (the contract written by ``landiff.runs.run_dir``) may hold::

    config.json             TrainConfig as JSON (model, preset, data, resolution, optim.batch …)
    stats.jsonl             one record per log interval (diffusion: loss …; GAN: loss_d, loss_g …)
    samples/step-N.png      preview grids written during training
    metrics-*.jsonl         e.g. metrics-nll.jsonl ({"metric": "nll_bpd", "bpd": {"mean", "se"}})
    compare/summary.json    written by ``landiff compare``: metrics, noise floor, cost, sweep …
    compare/samples.npz     images (N, H, W, 3) uint8 from seeds seed..seed+N−1
    compare/real.npz        images (M, H, W, 3) uint8, the reference set
    compare/memorization.npz samples, nearest_train (k, H, W, 3) uint8; ratio, d_train (k,)
    compare/curve.json      [{"step", "images_seen", "seconds", "swd", "swd_std"}, …]
    compare/guidance.json   written by ``landiff compare --clean-classifier``: the guidance sweep's points
    compare/guidance-grids.npz images (P, C, G, H, W, 3) uint8: G samples per class at P of the points

Every piece is optional: what cannot be read becomes ``None`` (shown as "not measured") and a line
in :attr:`Run.problems`; only a directory with neither ``config.json`` nor ``compare/summary.json``
is refused, because then it is not a run at all.

Derived records (summary.json, samples.npz, memorization.npz, every metrics-*.jsonl line) carry the
:class:`~landiff.metrics.provenance.Provenance` of their images. The SHA-256 of the run's latest
checkpoint is computed once per run; a record of any other checkpoint (an earlier step, the model
before a ``--restart``), of external sample files, or without provenance (older landiff) is left
out, and :attr:`Run.ignored` says so in one line.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from landiff.errors import UserError
from landiff.metrics.features import file_sha256
from landiff.metrics.provenance import Provenance
from landiff.report.records import (
    Cost,
    CurvePoint,
    Estimate,
    Family,
    GuidanceGrid,
    GuidancePoint,
    GuidanceSweep,
    MemorizationPairs,
    MemorizationSummary,
    MetricValue,
    NllResult,
    Run,
    RunConfig,
    Summary,
    SweepPoint,
    TrainingLog,
    Unavailable,
)
from landiff.runs.checkpoint import latest_checkpoint

# Loss series read from stats.jsonl, per family (the record fields of train/stats.py, gan_stats.py).
LOSS_FIELDS = ("loss", "mse", "vb", "loss_d", "loss_g")


def load_runs(paths: list[str | Path]) -> list[Run]:
    """Reads each run directory; labels are the shortest path suffixes that tell them apart."""
    roots = [Path(p) for p in paths]
    for root in roots:
        _check_is_run(root)
    labels = _labels(roots)
    return [load_run(root, label) for root, label in zip(roots, labels, strict=True)]


def load_run(root: Path, label: str) -> Run:
    """Reads one run directory (see the module docstring); never raises for a missing piece."""
    problems: list[str] = []
    gate = ProvenanceGate(root)
    raw_config = _read_object(root / "config.json", problems)
    config = _config(raw_config) if raw_config is not None else None
    raw_summary = _read_object(root / "compare" / "summary.json", problems)
    family = _family(config, raw_summary)
    if raw_summary is not None and not gate.accept(raw_summary.get("provenance"), "compare/summary.json"):
        raw_summary = None
    summary = _summary(raw_summary) if raw_summary is not None else None
    samples = memorization = None
    if raw_summary is not None or not (root / "compare" / "summary.json").is_file():
        samples = _images(root / "compare" / "samples.npz", "images", problems, gate)
        memorization = _pairs(root / "compare" / "memorization.npz", problems, gate)
    nll = _nll(root, problems, gate)
    guidance = _guidance(root / "compare", problems, gate)
    if gate.unchecked:
        problems.append("no checkpoint in checkpoints/, so the evaluations could not be checked against the model")
    return Run(
        path=root, label=label, family=family, config=config,
        stats=_training_log(root / "stats.jsonl", problems),
        summary=summary,
        samples=samples,
        real=_images(root / "compare" / "real.npz", "images", problems),
        memorization=memorization,
        curve=_curve(_read_json(root / "compare" / "curve.json", problems)),
        nll=nll,
        preview=_latest_preview(root / "samples"),
        problems=tuple(problems),
        ignored=gate.line(measured=summary is not None),
        guidance=guidance,
    )


class ProvenanceGate:
    """Keeps the records of the run's current (latest) checkpoint and counts the others, by reason.

    ``current`` is the SHA-256 of ``checkpoints/``'s latest file, computed once; with no checkpoint
    (a copied results folder) records with provenance are kept and ``unchecked`` is set.
    """

    def __init__(self, root: Path) -> None:
        checkpoint = latest_checkpoint(root / "checkpoints")
        self.checkpoint = checkpoint
        try:
            self.current = file_sha256(checkpoint) if checkpoint is not None else None
        except OSError:
            self.current = None
        self.unchecked = False
        self.other: dict[str, int] = {}  # what → count, records of another checkpoint
        self.other_shas: list[str] = []
        self.external: dict[str, int] = {}
        self.missing: dict[str, int] = {}

    def accept(self, raw: Any, what: str) -> bool:
        """Whether a record whose JSON provenance is ``raw`` belongs to the current checkpoint."""
        provenance = Provenance.from_dict(raw)
        if provenance is None:
            self.missing[what] = self.missing.get(what, 0) + 1
            return False
        if provenance.source == "external":
            self.external[what] = self.external.get(what, 0) + 1
            return False
        if self.current is None:
            self.unchecked = True
            return True
        if provenance.checkpoint_sha256 != self.current:
            self.other[what] = self.other.get(what, 0) + 1
            if provenance.short() not in self.other_shas:
                self.other_shas.append(provenance.short())
            return False
        return True

    def line(self, measured: bool = False) -> str | None:
        """One line saying what was left out and why, or None when nothing was; ``measured``: the
        current checkpoint has its own compare/summary.json (so the advice to re-run is dropped)."""
        parts = []
        if self.other and self.checkpoint is not None:  # other records exist only when a checkpoint does
            parts.append(f"ignored {_things(self.other)} from another checkpoint (sha256 "
                         f"{', '.join(self.other_shas)}…, not the latest {self.checkpoint.name} "
                         f"{(self.current or '')[:12]}…)")
        if self.external:
            parts.append(f"ignored {_things(self.external)} computed on sample files landiff did not draw")
        if self.missing:
            parts.append(f"ignored {_things(self.missing)} without provenance (written by an older landiff)")
        if not parts:
            return None
        if measured:
            return "; ".join(parts) + " (older evaluations; the numbers shown are of the latest checkpoint)"
        return "; ".join(parts) + "; re-run landiff compare / landiff eval on this run to measure its current model"


def _things(counts: dict[str, int]) -> str:
    names = [what if what.endswith((".json", ".npz")) else f"{n} {what}{'s' if n != 1 else ''}"
             for what, n in counts.items()]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _check_is_run(root: Path) -> None:
    if not root.is_dir():
        raise UserError(f"{root} is not a directory; pass run directories made by landiff train / landiff compare")
    if not (root / "config.json").is_file() and not (root / "compare" / "summary.json").is_file():
        raise UserError(f"{root} is not a run directory (no config.json or compare/summary.json); "
                        "pass directories made by landiff train / landiff compare")
    config = _read_object(root / "config.json", []) if (root / "config.json").is_file() else None
    if config is not None and config.get("model") == "classifier":
        # A classifier draws no images: its numbers are its held-out accuracy, and what it buys shows in the
        # guidance sweep of the diffusion run it guides (that run's report has the "Guidance" section).
        raise UserError(f"{root} is a noisy-classifier run (--model classifier), which the report does not compare with "
                        f"generative runs; its held-out accuracy per noise quartile is in {root / 'classifier-summary.json'}; "
                        "report the diffusion run it guides after landiff compare RUN --classifier …")


def _labels(roots: list[Path]) -> list[str]:
    """Shortest trailing path parts that are unique, e.g. ``a/diffusion`` vs ``b/diffusion``."""
    parts = [root.resolve().parts for root in roots]
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{label} ({k + 1})" for k, label in enumerate("/".join(p) for p in parts)]


def _read_json(path: Path, problems: list[str]) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:  # ValueError covers text that is not UTF-8
        problems.append(f"{path.name}: unreadable ({str(err)[:120]})")
        return None


def _read_object(path: Path, problems: list[str]) -> dict | None:
    """A JSON file that must hold an object (config.json, summary.json)."""
    raw = _read_json(path, problems)
    if raw is not None and not isinstance(raw, dict):
        problems.append(f"{path.name}: expected a JSON object, found {type(raw).__name__}")
        return None
    return raw


def _num(value: Any) -> float | None:
    """A finite float, or None for null, NaN, text or anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    number = _num(value)
    return int(number) if number is not None else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _config(raw: dict) -> RunConfig:
    raw_optim = raw.get("optim")
    optim = raw_optim if isinstance(raw_optim, dict) else {}
    return RunConfig(model=_str(raw.get("model")), preset=_str(raw.get("preset")), data=_str(raw.get("data")),
                     resolution=_int(raw.get("resolution")), batch=_int(optim.get("batch")),
                     train_steps=_int(raw.get("train_steps")))


def _family(config: RunConfig | None, summary: dict | None) -> Family | None:
    for name in (config.model if config else None, _str(summary.get("family")) if summary else None):
        if name == "diffusion":
            return "diffusion"
        if name == "gan":
            return "gan"
    return None


def _metric(raw: Any) -> MetricValue | None:
    if not isinstance(raw, dict):
        return None
    if "unavailable" in raw:
        return Unavailable(str(raw["unavailable"]))
    value = _num(raw.get("value"))
    if value is None:
        return None
    repeats = _int(raw.get("repeats")) or 1
    std = _num(raw.get("std")) if repeats > 1 else None
    return Estimate(value=value, std=std, repeats=repeats, spread=_str(raw.get("spread")) or "")


def _metrics(raw: Any) -> dict[str, MetricValue]:
    if not isinstance(raw, dict):
        return {}
    parsed = {str(name): _metric(value) for name, value in raw.items()}
    return {name: value for name, value in parsed.items() if value is not None}


def _summary(raw: dict) -> Summary:
    memo, cost, classes = raw.get("memorization"), raw.get("cost"), raw.get("classes")
    return Summary(
        step=_int(raw.get("step")), images_seen=_num(raw.get("images_seen")),
        checkpoint=_str(raw.get("checkpoint")), checkpoint_sha256=_str(raw.get("checkpoint_sha256")),
        n=_int(raw.get("n")), seed=_int(raw.get("seed")), sampler=_str(raw.get("sampler")),
        steps=_int(raw.get("steps")), reference=_str(raw.get("reference")),
        class_protocol=_str(classes.get("protocol")) if isinstance(classes, dict) else None,
        classes=tuple(str(c) for c in classes.get("names", []) if isinstance(c, (str, int)))
        if isinstance(classes, dict) and isinstance(classes.get("names"), list) else (),
        guidance=_num(raw.get("guidance")),
        metrics=_metrics(raw.get("metrics")), noise_floor=_metrics(raw.get("noise_floor")),
        noise_ceiling=_metrics(raw.get("noise_ceiling")),
        memorization=MemorizationSummary(
            unavailable=_str(memo.get("unavailable")), n=_int(memo.get("n")), flagged=_int(memo.get("flagged")),
            ratio_threshold=_num(memo.get("ratio_threshold")), distance_threshold=_num(memo.get("distance_threshold")),
            min_ratio=_num(memo.get("min_ratio"))) if isinstance(memo, dict) else None,
        cost=Cost(**{name: _num(cost.get(name)) for name in Cost.__dataclass_fields__}) if isinstance(cost, dict) else None,
        sweep=_sweep(raw.get("sweep")),
    )


def _sweep(raw: Any) -> tuple[SweepPoint, ...]:
    points = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        nfe, swd = _num(item.get("nfe")) or _num(item.get("steps")), _num(item.get("swd"))
        if nfe is None or swd is None:
            continue
        points.append(SweepPoint(sampler=str(item.get("sampler", "?")), steps=_int(item.get("steps")) or int(nfe),
                                 nfe=nfe, swd=swd, swd_std=_num(item.get("swd_std")),
                                 seconds_per_image=_num(item.get("seconds_per_image")), n=_int(item.get("n"))))
    return tuple(points)


def _curve(raw: Any) -> tuple[CurvePoint, ...]:
    points = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        seen, swd = _num(item.get("images_seen")), _num(item.get("swd"))
        if seen is not None and swd is not None:
            points.append(CurvePoint(step=_int(item.get("step")), images_seen=seen, seconds=_num(item.get("seconds")),
                                     swd=swd, swd_std=_num(item.get("swd_std"))))
    return tuple(sorted(points, key=lambda p: p.images_seen))


def _training_log(path: Path, problems: list[str]) -> TrainingLog | None:
    """Parses stats.jsonl line by line; a torn last line (crash mid-write) is skipped, not fatal."""
    if not path.is_file():
        return None
    records, bad = [], 0
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        problems.append(f"stats.jsonl: unreadable ({str(err)[:120]})")
        return None
    for line in lines:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            bad += 1 if line.strip() else 0
            continue
        if isinstance(record, dict) and _num(record.get("images_seen")) is not None:
            records.append(record)
    if bad:
        problems.append(f"stats.jsonl: skipped {bad} line(s) that are not JSON")
    if not records:
        return None
    nan = float("nan")
    losses = {name: np.array([_num(r.get(name)) if _num(r.get(name)) is not None else nan for r in records])
              for name in LOSS_FIELDS}
    return TrainingLog(images_seen=np.array([float(r["images_seen"]) for r in records]),
                       losses={name: series for name, series in losses.items() if np.isfinite(series).any()})


def _load_npz(path: Path, problems: list[str]) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        problems.append(f"{path.parent.name}/{path.name}: unreadable ({err})")
        return None


def _as_rgb(array: Any) -> np.ndarray | None:
    """(N, H, W[, 1 or 3]) → (N, H, W, 3) uint8; anything else → None."""
    if not isinstance(array, np.ndarray) or array.ndim not in (3, 4) or min(array.shape[:3]) == 0:
        return None
    if array.ndim == 3:
        array = array[..., None]
    if array.shape[-1] not in (1, 3):
        return None
    if array.dtype.kind not in "uif":
        return None
    if array.dtype != np.uint8:
        array = np.clip(np.round(array.astype(np.float64)), 0, 255).astype(np.uint8)
    return np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array


def _npz_provenance(data: dict[str, np.ndarray]) -> Any:
    """The ``provenance`` of an npz's JSON ``meta`` array (None when absent or unreadable)."""
    try:
        meta = json.loads(str(data["meta"])) if "meta" in data else None
    except (ValueError, TypeError, RecursionError):
        return None
    return meta.get("provenance") if isinstance(meta, dict) else None


def _images(path: Path, key: str, problems: list[str], gate: ProvenanceGate | None = None) -> np.ndarray | None:
    """``key`` of an npz as (N, H, W, 3) uint8; with ``gate``, only when its meta's provenance passes it."""
    data = _load_npz(path, problems)
    if data is None:
        return None
    if gate is not None and not gate.accept(_npz_provenance(data), f"compare/{path.name}"):
        return None
    images = _as_rgb(data.get(key))
    if images is None:
        problems.append(f"{path.parent.name}/{path.name}: no '{key}' array of shape (N, H, W, 3)")
    return images


def _pairs(path: Path, problems: list[str], gate: ProvenanceGate) -> MemorizationPairs | None:
    data = _load_npz(path, problems)
    if data is None or not gate.accept(_npz_provenance(data), f"compare/{path.name}"):
        return None
    samples, nearest = _as_rgb(data.get("samples")), _as_rgb(data.get("nearest_train"))
    ratio = np.asarray(data.get("ratio", []), dtype=np.float64).reshape(-1)
    d_train = np.asarray(data.get("d_train", []), dtype=np.float64).reshape(-1)
    if samples is None or nearest is None or not len(samples) == len(nearest) == len(ratio) == len(d_train):
        problems.append(f"compare/{path.name}: expected samples, nearest_train, ratio and d_train of equal length")
        return None
    return MemorizationPairs(samples=samples, nearest_train=nearest, ratio=ratio, d_train=d_train)


def _nll(root: Path, problems: list[str], gate: ProvenanceGate) -> NllResult | None:
    """The last ``nll_bpd`` record of the current checkpoint in any ``metrics-*.jsonl`` (files appended
    in time order); every record of another checkpoint is counted by ``gate``."""
    latest: NllResult | None = None
    for path in sorted(root.glob("metrics-*.jsonl")):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            problems.append(f"{path.name}: unreadable ({str(err)[:120]})")
            continue
        for line in lines:
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if not isinstance(record, dict) or not gate.accept(record.get("provenance"), "metric record"):
                continue
            bpd = record.get("bpd") if record.get("metric") == "nll_bpd" else None
            if isinstance(bpd, dict) and _num(bpd.get("mean")) is not None:
                latest = NllResult(bpd=float(bpd["mean"]), se=_num(bpd.get("se")), n=_int(record.get("n")))
    return latest


def _latest_preview(folder: Path) -> Path | None:
    steps = []
    for path in folder.glob("step-*.png") if folder.is_dir() else []:
        match = re.fullmatch(r"step-(\d+)\.png", path.name)
        if match:
            steps.append((int(match.group(1)), path))
    return max(steps)[1] if steps else None


# ------------------------------------------------------------------------------- the guidance sweep
def _guidance(folder: Path, problems: list[str], gate: ProvenanceGate) -> GuidanceSweep | None:
    """compare/guidance.json and its grids, when they are of the current checkpoint (None otherwise)."""
    raw = _read_object(folder / "guidance.json", problems)
    if raw is None or not gate.accept(raw.get("provenance"), "compare/guidance.json"):
        return None
    items = raw.get("points")
    points = tuple(p for p in (_guidance_point(item) for item in (items if isinstance(items, list) else [])) if p)
    if not points:
        problems.append("guidance.json: no readable point")
        return None
    labels, reference = _dict(raw.get("labels")), _dict(raw.get("reference"))
    ceiling, floor = _dict(reference.get("ceiling")), _dict(reference.get("class_swd_floor"))
    axes = _dict(raw.get("axes"))
    not_swept = tuple(f"{name}: {_str(_dict(axis).get('why_not'))}" for name, axis in axes.items()
                      if _dict(axis).get("swept") is False and _str(_dict(axis).get("why_not")))
    guide = _dict(_dict(axes.get("classifier")).get("classifier"))
    evaluator = _dict(raw.get("evaluator"))
    inception = _str(evaluator.get("inception"))
    return GuidanceSweep(
        points=points, classes=_names(labels.get("classes")), n=_int(raw.get("n")), seed=_int(raw.get("seed")),
        sampler=_str(raw.get("sampler")), steps=_int(raw.get("steps")), ceiling=_num(ceiling.get("value")),
        ceiling_low=_num(ceiling.get("low")), ceiling_high=_num(ceiling.get("high")),
        class_swd_floor=_num(floor.get("mean")), swd_floor=_num(_dict(reference.get("swd_floor")).get("value")),
        judge=_str(evaluator.get("clean_classifier")), guide=_str(guide.get("run")),
        reference=_str(reference.get("description")), not_swept=not_swept,
        pr_unavailable=inception if inception and inception.startswith("unavailable") else None,
        grids=_guidance_grids(folder / _file_name(raw.get("grids"), "guidance-grids.npz"), problems, gate),
        ceiling_per_class=_per_class_values(ceiling.get("per_class")),
    )


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _names(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value if isinstance(v, (str, int))) if isinstance(value, list) else ()


def _file_name(value: Any, default: str) -> str:
    """A plain file name from a record (anything with a path separator is ignored: it must sit in compare/)."""
    return value if isinstance(value, str) and value and "/" not in value and "\\" not in value and value != ".." else default


def _per_class_values(raw: Any) -> tuple[tuple[str, float | None], ...]:
    """{class: {"value": v, …}} → ((class, v), …) in the file's order."""
    return tuple((str(name), _num(_dict(v).get("value"))) for name, v in _dict(raw).items())


def _guidance_point(raw: Any) -> GuidancePoint | None:
    if not isinstance(raw, dict):
        return None
    s, w, kind = _num(raw.get("classifier_scale")), _num(raw.get("cfg_scale")), _str(raw.get("kind"))
    if s is None or w is None or kind not in ("unguided", "classifier", "cfg"):
        return None
    metrics = _dict(raw.get("metrics"))
    consistency = _dict(metrics.get("class_consistency"))
    per_class = consistency.get("per_class")
    swd = _dict(metrics.get("swd"))
    return GuidancePoint(
        kind=kind, label=_str(raw.get("label")) or kind, classifier_scale=s, cfg_scale=w,
        consistency=_num(consistency.get("value")), consistency_low=_num(consistency.get("low")),
        consistency_high=_num(consistency.get("high")),
        per_class_consistency=_per_class_values(per_class),
        class_swd=_num(_dict(metrics.get("class_swd")).get("mean")),
        diversity_ratio=_num(_dict(metrics.get("diversity")).get("ratio")),
        swd=_num(swd.get("value")), swd_std=_num(swd.get("std")),
        precision=_num(_dict(metrics.get("precision")).get("value")),
        recall=_num(_dict(metrics.get("recall")).get("value")),
        nfe=_num(raw.get("nfe")), seconds_per_image=_num(raw.get("seconds_per_image")),
    )


def _guidance_grids(path: Path, problems: list[str], gate: ProvenanceGate) -> tuple[GuidanceGrid, ...]:
    """The grids npz: ``images`` (P, C, G, H, W, 3) and a ``meta`` naming the P points; () when absent or bad."""
    data = _load_npz(path, problems)
    if data is None or not gate.accept(_npz_provenance(data), f"compare/{path.name}"):
        return ()
    try:
        meta = json.loads(str(data["meta"])) if "meta" in data else {}
    except (ValueError, TypeError, RecursionError):
        meta = {}
    images, points = data.get("images"), _dict(meta).get("points")
    if (not isinstance(images, np.ndarray) or images.ndim != 6 or images.shape[-1] != 3 or images.dtype != np.uint8
            or min(images.shape) == 0 or not isinstance(points, list) or len(points) != len(images)):
        problems.append(f"compare/{path.name}: expected images (P, C, G, H, W, 3) uint8 and a meta naming P points")
        return ()
    return tuple(GuidanceGrid(label=_str(_dict(p).get("label")) or "?", kind=_str(_dict(p).get("kind")) or "?",
                              images=grid) for p, grid in zip(points, images, strict=True))
