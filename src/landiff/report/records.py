"""What the report reads from a run directory, as small frozen dataclasses (filled by :mod:`.collect`).

``None`` in any field means "not measured": the file or the value was absent or unreadable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

Family = Literal["diffusion", "gan"]


@dataclass(frozen=True)
class Estimate:
    """A measured value; ``std`` is None when fewer than two repeats were made."""

    value: float
    std: float | None
    repeats: int
    spread: str


@dataclass(frozen=True)
class Unavailable:
    """A metric that could not be computed; ``reason`` is shown verbatim."""

    reason: str


MetricValue = Estimate | Unavailable


@dataclass(frozen=True)
class Cost:
    """Training and sampling cost of one run (None = not measured). Seconds are wall-clock."""

    params: float | None
    images_seen: float | None
    train_seconds: float | None
    flops_per_train_image: float | None
    flops_per_sample: float | None
    nfe: float | None
    sample_seconds_per_image: float | None
    configurations_tried: float | None = None  # to choose the run's preset (landiff.runs.config.TUNING)


@dataclass(frozen=True)
class SweepPoint:
    """Sample quality at one sampler and step count (diffusion runs only)."""

    sampler: str
    steps: int
    nfe: float
    swd: float
    swd_std: float | None
    seconds_per_image: float | None
    n: int | None  # images per point (may differ from the summary's n; SWD depends on n)


@dataclass(frozen=True)
class CurvePoint:
    """The metric of one checkpoint along training."""

    step: int | None
    images_seen: float
    seconds: float | None
    swd: float
    swd_std: float | None


@dataclass(frozen=True)
class MemorizationSummary:
    """How many of ``n`` samples were flagged as copies, with the rule used (or why it was not run)."""

    unavailable: str | None
    n: int | None
    flagged: int | None
    ratio_threshold: float | None
    distance_threshold: float | None
    min_ratio: float | None


@dataclass(frozen=True)
class MemorizationPairs:
    """The k samples closest to a training image: (k, H, W, 3) uint8 each, ratio and d_train (k,)."""

    samples: np.ndarray
    nearest_train: np.ndarray
    ratio: np.ndarray
    d_train: np.ndarray


@dataclass(frozen=True)
class Summary:
    """``compare/summary.json``: one evaluation protocol applied to one checkpoint."""

    step: int | None
    images_seen: float | None
    checkpoint: str | None
    checkpoint_sha256: str | None
    n: int | None
    seed: int | None
    sampler: str | None
    steps: int | None
    reference: str | None
    metrics: dict[str, MetricValue]
    noise_floor: dict[str, MetricValue]
    memorization: MemorizationSummary | None
    cost: Cost | None
    sweep: tuple[SweepPoint, ...]
    class_protocol: str | None = None  # "balanced": image k got class k mod C; "none": unconditional
    classes: tuple[str, ...] = ()  # the class names, in label order
    guidance: float | None = None  # classifier-free guidance scale (1 = plain conditional)
    noise_ceiling: dict[str, MetricValue] = field(default_factory=dict)  # the metric of uniform noise images


@dataclass(frozen=True)
class GuidancePoint:
    """One point of ``compare/guidance.json``: its scales and what was measured there (None = not measured).

    A point is the pair (s, w): ``classifier_scale`` s of classifier guidance (0 = none) and
    ``cfg_scale`` w of classifier-free guidance (1 = plain conditional, 0 = unconditional). The
    classifier line is (s, 1), the classifier-free line (0, w); both pass through the unguided (0, 1).
    """

    kind: str  # "unguided", "classifier" or "cfg"
    label: str
    classifier_scale: float
    cfg_scale: float
    consistency: float | None  # clean-classifier accuracy against the intended labels, in [0, 1]
    consistency_low: float | None  # its Wilson 95 % interval
    consistency_high: float | None
    per_class_consistency: tuple[tuple[str, float | None], ...]
    class_swd: float | None  # per-class SWD ×10³, mean over classes
    diversity_ratio: float | None  # within-class diversity / real within-class diversity, mean over classes
    swd: float | None
    swd_std: float | None
    precision: float | None
    recall: float | None
    nfe: float | None
    seconds_per_image: float | None


@dataclass(frozen=True)
class GuidanceGrid:
    """The first G samples of each class at one point: ``images`` (C, G, H, W, 3) uint8, rows in class order."""

    label: str
    kind: str
    images: np.ndarray


@dataclass(frozen=True)
class GuidanceSweep:
    """``compare/guidance.json`` (+ its grids): one diffusion run at several guidance scales of two kinds.

    Attributes:
        ceiling: the clean classifier's accuracy on held-out real images (its 95 % interval in
            ``ceiling_low``/``ceiling_high``): no consistency above it is meaningful.
        class_swd_floor, swd_floor: the real-vs-real SWD at the same n (per class, mean; overall).
        not_swept: one line per kind of guidance that was not swept, with the reason.
        pr_unavailable: why precision/recall were not measured (None when they were).
    """

    points: tuple[GuidancePoint, ...]
    classes: tuple[str, ...]
    n: int | None
    seed: int | None
    sampler: str | None
    steps: int | None
    ceiling: float | None
    ceiling_low: float | None
    ceiling_high: float | None
    class_swd_floor: float | None
    swd_floor: float | None
    judge: str | None
    guide: str | None
    reference: str | None
    not_swept: tuple[str, ...]
    pr_unavailable: str | None
    grids: tuple[GuidanceGrid, ...] = ()
    ceiling_per_class: tuple[tuple[str, float | None], ...] = ()


@dataclass(frozen=True)
class RunConfig:
    """The few ``config.json`` fields the report shows."""

    model: str | None
    preset: str | None
    data: str | None
    resolution: int | None
    batch: int | None
    train_steps: int | None


@dataclass(frozen=True)
class TrainingLog:
    """``stats.jsonl`` as series: ``images_seen`` (R,) and each loss name → (R,) float (NaN = absent)."""

    images_seen: np.ndarray
    losses: dict[str, np.ndarray]


@dataclass(frozen=True)
class NllResult:
    """The latest negative log-likelihood bound in bits/dim, mean ± standard error over ``n`` images."""

    bpd: float
    se: float | None
    n: int | None


@dataclass(frozen=True)
class Run:
    """Everything the report reads from one run directory.

    Attributes:
        path: the directory as given on the command line.
        label: the shortest trailing part of the path that tells the runs apart (e.g. ``demo/gan``).
        family: from config.json ``model``, else summary.json ``family``; None when neither says.
        samples, real: (N, H, W, 3) uint8 from compare/samples.npz and compare/real.npz.
        preview: the newest samples/step-N.png written during training.
        problems: one line per file that exists but could not be read (shown under "Caveats").
        ignored: one line naming the records left out because they are not of the run's latest
            checkpoint (another checkpoint, external samples, no provenance), or None.
        guidance: compare/guidance.json with its grids (None: no guidance sweep of this checkpoint).
    """

    path: Path
    label: str
    family: Family | None
    config: RunConfig | None
    stats: TrainingLog | None
    summary: Summary | None
    samples: np.ndarray | None
    real: np.ndarray | None
    memorization: MemorizationPairs | None
    curve: tuple[CurvePoint, ...]
    nll: NllResult | None
    preview: Path | None
    problems: tuple[str, ...]
    ignored: str | None = None
    guidance: GuidanceSweep | None = None

    def metrics(self) -> dict[str, MetricValue]:
        """The summary's metrics plus ``nll_bpd``, the latest NLL bound (its standard error as ± spread)."""
        metrics = dict(self.summary.metrics) if self.summary else {}
        if self.nll is not None:
            metrics["nll_bpd"] = Estimate(value=self.nll.bpd, std=self.nll.se, repeats=self.nll.n or 1,
                                          spread="standard error" + (f" over {self.nll.n} images" if self.nll.n else ""))
        return metrics
