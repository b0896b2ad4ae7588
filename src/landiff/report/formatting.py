"""How numbers are written in the report (one place, so tables and observations agree)."""

from __future__ import annotations

from landiff.report.records import Estimate, MetricValue, Unavailable

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
