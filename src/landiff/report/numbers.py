"""How the report writes measured numbers, and how it compares two of them against the noise.

All formatting lives here so tables and observation sentences agree: significant digits,
``31.2 ± 0.8``, SI prefixes, durations, ratios, metric titles, and "not measured" for anything
missing.

Two values count as different only when their gap exceeds the noise: the combined spread
√(σ₁² + σ₂²) of the two estimates, or the spread of the real-vs-real noise floor if that is larger.
Otherwise the sentence says "within noise". Relative differences are taken against the worse value
("31 vs 50: 38% lower").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from landiff.report.records import Estimate, MetricValue, Run, Unavailable

NOT_MEASURED = "not measured"

# Lower is better for distances and likelihood bounds; higher for precision / recall.
HIGHER_IS_BETTER = frozenset({"precision", "recall"})

METRIC_TITLES = {
    "swd": "SWD", "swd_32": "SWD 32px", "swd_16": "SWD 16px", "fid": "FID", "kid": "KID",
    "precision": "precision", "recall": "recall", "nll_bpd": "NLL (bits/dim)",
}


def metric_title(name: str) -> str:
    return METRIC_TITLES.get(name, name)


def number(value: float | None, digits: int = 4) -> str:
    """``digits`` significant digits, or "not measured"."""
    if value is None:
        return NOT_MEASURED
    return f"{value:.{digits}g}"


def estimate(value: MetricValue | None) -> str:
    """``31.2 ± 0.8``; an unavailable metric's reason verbatim; a missing one "not measured"."""
    if value is None:
        return NOT_MEASURED
    if isinstance(value, Unavailable):
        return value.reason
    return plus_minus(value.value, value.std)


def plus_minus(value: float, std: float | None) -> str:
    return f"{value:.4g}" if std is None else f"{value:.4g} ± {std:.2g}"


def metric_or_none(value: MetricValue | None) -> Estimate | None:
    return value if isinstance(value, Estimate) else None


def si(value: float | None, unit: str = "") -> str:
    """1.2e9 → ``1.2 G`` + unit; keeps three significant digits."""
    if value is None:
        return NOT_MEASURED
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".rstrip()


def duration(seconds: float | None) -> str:
    """Seconds as ``0.52 ms``, ``42 s``, ``5.5 min`` or ``2.1 h``."""
    if seconds is None:
        return NOT_MEASURED
    if seconds < 0.1:
        return f"{seconds * 1000:.3g} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def ratio(a: float | None, b: float | None) -> str:
    """``a / b`` as ``3.2×``; "not measured" when either is missing or b is zero."""
    if a is None or b is None or b == 0:
        return NOT_MEASURED
    value = a / b
    return f"{value:.0f}×" if abs(value) >= 1000 else f"{value:.3g}×"  # 1109×, not 1.11e+03×


def ordered_metrics(names: set[str]) -> list[str]:
    """Known metrics in :data:`METRIC_TITLES` order, then any others alphabetically."""
    known = [name for name in METRIC_TITLES if name in names]
    return known + sorted(names - set(known))


# ------------------------------------------------------------- comparing two values against the noise
@dataclass(frozen=True)
class Difference:
    """``better`` vs ``worse`` on one metric; ``noise`` is None when no spread was measured."""

    metric: str
    better: Run
    worse: Run
    better_value: Estimate
    worse_value: Estimate
    delta: float
    relative: float | None
    noise: float | None

    @property
    def within_noise(self) -> bool | None:
        return None if self.noise is None else self.delta <= self.noise


def who(run: Run) -> str:
    """``the diffusion run "a"`` (the family named first, so sentences say which family)."""
    family = {"diffusion": "diffusion", "gan": "GAN"}.get(run.family or "", "unknown-family")
    return f'the {family} run "{run.label}"'


def noise_floor(runs: list[Run], metric: str) -> Estimate | None:
    """The first real-vs-real noise floor measured for ``metric`` among the runs."""
    for run in runs:
        floor = metric_or_none(run.summary.noise_floor.get(metric)) if run.summary else None
        if floor is not None:
            return floor
    return None


def difference(metric: str, a: tuple[Run, Estimate], b: tuple[Run, Estimate], floor: Estimate | None) -> Difference:
    """Orders the pair by the metric's direction and measures the gap against the noise."""
    higher = metric in HIGHER_IS_BETTER
    (better, bv), (worse, wv) = (a, b) if (a[1].value >= b[1].value) == higher else (b, a)
    delta = abs(bv.value - wv.value)
    noise = None
    if bv.std is not None and wv.std is not None:
        noise = math.hypot(bv.std, wv.std)
        if floor is not None and floor.std is not None:
            noise = max(noise, floor.std)
    relative = delta / abs(wv.value) if wv.value != 0 else None
    return Difference(metric, better, worse, bv, wv, delta, relative, noise)


def describe(diff: Difference) -> str:
    """One sentence: who is better on which metric, by how much, and whether that exceeds noise."""
    title = metric_title(diff.metric)
    direction = "higher" if diff.metric in HIGHER_IS_BETTER else "lower"
    values = f"{plus_minus(diff.better_value.value, diff.better_value.std)} vs " \
             f"{plus_minus(diff.worse_value.value, diff.worse_value.std)}"
    if diff.relative is not None:
        values += f", {100 * diff.relative:.3g}% {direction}"
    if diff.noise is None:  # the same test as ``diff.within_noise is None``, one mypy can narrow
        return (f"{title}: {who(diff.better)} is better than {who(diff.worse)} ({values}); no spread was "
                f"measured, so it is unknown whether the difference {diff.delta:.3g} exceeds noise.")
    if diff.within_noise:
        return f"{title}: {who(diff.better)} is nominally better than {who(diff.worse)} ({values}), within noise."
    return f"{title}: {who(diff.better)} is better than {who(diff.worse)} ({values}, beyond noise)."
