"""What every metric result records, and the ``metrics-<name>.jsonl`` lines written to a run.

A number without its sample count, reference set, seed and (for Inception metrics) resize path
cannot be compared with another one, so :class:`MetricRecord` carries them all, with the
:class:`~landiff.metrics.provenance.Provenance` of the images (checkpoint hash, sampler, labels …),
and :func:`append_record` writes them together.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from landiff.metrics.provenance import Provenance


@dataclass(frozen=True)
class Estimate:
    """A metric value with its spread.

    Attributes:
        value: the point estimate (see each metric for how it is formed).
        std: standard deviation of the repeats behind ``spread`` (NaN with fewer than 2).
        repeats: number of repeats / subsets / resamples behind ``std``.
        spread: how ``std`` was obtained, in words (e.g. "std over 3 seeds").
    """

    value: float
    std: float
    repeats: int
    spread: str

    def __str__(self) -> str:
        if self.repeats < 2 or math.isnan(self.std):
            return f"{self.value:.4g}"
        return f"{self.value:.4g} ± {self.std:.2g}"


def mean_std(values: list[float] | np.ndarray, spread: str) -> Estimate:
    """Mean and sample standard deviation (ddof = 1) of repeated measurements."""
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
    return Estimate(value=float(arr.mean()), std=std, repeats=int(arr.size), spread=spread)


@dataclass(frozen=True)
class MetricRecord:
    """One evaluation, as written to ``metrics-<metric>.jsonl``.

    Attributes:
        metric: ``"swd"``, ``"fid"``, ``"kid"``, ``"pr"`` or ``"memorization"``.
        estimates: named values, e.g. ``{"swd": …, "swd_32": …}`` or ``{"precision": …, "recall": …}``.
        n_samples: number of generated images used.
        n_reference: number of reference images used.
        samples: where the generated images came from.
        reference: the reference set, in words (e.g. "synthetic held-out split, seed 0, 32x32").
        seed: seed of every random choice of the metric.
        resize: the resize / quantisation path into the feature network (Inception metrics only).
        features: the feature network and its weights (Inception metrics only).
        extra: metric-specific details (thresholds, flagged indices, levels …).
        provenance: the model and procedure behind the samples (None: unknown; the report ignores
            such records of a run).
    """

    metric: str
    estimates: dict[str, Estimate]
    n_samples: int
    n_reference: int
    samples: str
    reference: str
    seed: int
    resize: str | None = None
    features: str | None = None
    extra: dict = field(default_factory=dict)
    time: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))
    provenance: Provenance | None = None

    def to_json(self) -> str:
        """One line of JSON (NaN written as null; provenance in its :meth:`Provenance.to_dict` form)."""
        values = dataclasses.asdict(dataclasses.replace(self, provenance=None))
        values["provenance"] = self.provenance.to_dict() if self.provenance is not None else None
        return json.dumps(nan_to_null(values))

    def summary(self) -> str:
        """Human-readable lines: the values first, then where they came from."""
        lines = [f"{self.metric}: n={self.n_samples} samples vs {self.n_reference} reference, seed {self.seed}"]
        for name, est in self.estimates.items():
            lines.append(f"  {name:<14} {est}" + (f"   ({est.spread})" if est.repeats > 1 else ""))
        lines.append(f"  samples:   {self.samples}")
        lines.append(f"  reference: {self.reference}")
        if self.features:
            lines.append(f"  features:  {self.features}")
        if self.resize:
            lines.append(f"  resize:    {self.resize}")
        if self.provenance is not None:
            p = self.provenance
            what = (f"external file, sha256 {p.short()}" if p.source == "external" else
                    f"checkpoint sha256 {p.short()}, {p.weights} weights, key {p.digest()}")
            lines.append(f"  from:      {what}")
        return "\n".join(lines)


def nan_to_null(obj: object) -> object:
    """A copy of nested dicts/lists/tuples with non-finite floats replaced by None (JSON has no NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: nan_to_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_to_null(v) for v in obj]
    return obj


def append_record(run_dir: str | Path, record: MetricRecord) -> Path:
    """Appends ``record`` as one line to ``RUN/metrics-<metric>.jsonl``; returns the file path."""
    path = Path(run_dir) / f"metrics-{record.metric}.jsonl"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(record.to_json() + "\n")
    return path
