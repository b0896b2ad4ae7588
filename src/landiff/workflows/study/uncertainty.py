"""The small statistics the study's verdicts rest on, written out so each number can be checked by hand.

- :func:`summarize`: mean, sample s.d. and standard error of repeated measurements (e.g. seeds).
- :func:`welch`: difference of two means with Welch's standard error and degrees of freedom
  (Welch 1947), judged against Student-t critical values (:func:`t_critical`).
- :func:`log_ratio`: the ratio of two geometric means with its 95 % and 99 % intervals, from
  Welch's comparison of the logs (for positive measurements such as SWD, where "half as large" is
  the natural way to compare).
- :func:`wilson`: the Wilson score interval of a proportion (Wilson 1927), good at small n and
  near 0 or 1, where the normal interval fails (defined in :mod:`landiff.metrics.intervals`, which the
  class metrics share, and re-exported here).
- :func:`two_proportions`: difference of two proportions with the unpooled standard error.
- :func:`fisher_greater`: one-sided Fisher exact test on a 2×2 table (counts of unstable cells).

No SciPy: the t table below is the standard one (two-sided 95 % and 99 %); tests check it (and
its interpolation) against ``scipy.stats.t`` where SciPy is installed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from landiff.metrics.intervals import Proportion, wilson

# Two-sided critical values of Student's t for df = 1..30; beyond 30 the normal values.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)
_T99 = (63.657, 9.925, 5.841, 4.604, 4.032, 3.707, 3.499, 3.355, 3.250, 3.169, 3.106, 3.055, 3.012, 2.977,
        2.947, 2.921, 2.898, 2.878, 2.861, 2.845, 2.831, 2.819, 2.807, 2.797, 2.787, 2.779, 2.771, 2.763,
        2.756, 2.750)
Level = Literal["99%", "95%", "none"]


def t_critical(df: float, confidence: Literal[95, 99] = 95) -> float:
    """Two-sided critical value of Student's t; a fractional df (Welch) interpolates the table
    linearly in 1/df, the usual rule for t tables (never below the exact value beyond the table's
    rounding to 3 decimals; within 5 % for df ≥ 2; between df 1 and 2 up to 19 % too large at 95 %
    and 57 % at 99 %, near df 1.4–1.5); beyond df 30 towards the normal value."""
    table = (*(_T95 if confidence == 95 else _T99), 1.960 if confidence == 95 else 2.576)
    if not df >= 1:
        return math.inf
    if df >= len(table) - 1:  # between df 30 and the normal value (includes df = inf: a z test)
        w = 30 / df  # 1/df relative to 1/30
        return table[-1] + w * (table[-2] - table[-1])
    low = int(math.floor(df))
    if low == df:
        return table[low - 1]
    w = (1 / df - 1 / (low + 1)) / (1 / low - 1 / (low + 1))
    return table[low] + w * (table[low - 1] - table[low])


@dataclass(frozen=True)
class Summary:
    """Repeated measurements: mean, sample s.d. (ddof 1; NaN for one value), s.e. = s.d./√n."""

    values: tuple[float, ...]
    mean: float
    sd: float
    se: float

    @property
    def n(self) -> int:
        return len(self.values)


def summarize(values: Sequence[float]) -> Summary:
    """Mean, s.d. and s.e. of the finite ``values`` (NaN-valued fields when none is finite)."""
    finite = tuple(float(v) for v in values if math.isfinite(v))
    if not finite:
        return Summary((), math.nan, math.nan, math.nan)
    arr = np.array(finite)
    sd = float(arr.std(ddof=1)) if len(arr) > 1 else math.nan
    return Summary(finite, float(arr.mean()), sd, sd / math.sqrt(len(arr)) if len(arr) > 1 else math.nan)


@dataclass(frozen=True)
class Comparison:
    """``a − b`` with its standard error, t statistic, Welch df and the confidence level it clears."""

    difference: float
    se: float
    t: float
    df: float
    level: Level


def welch(a: Summary, b: Summary) -> Comparison:
    """Welch's unequal-variance comparison of two means (needs ≥ 2 values in each).

    se = √(s_a²/n_a + s_b²/n_b); df = se⁴ / ((s_a²/n_a)²/(n_a−1) + (s_b²/n_b)²/(n_b−1)).
    With fewer than two values in either group the result has NaN se and level "none".
    """
    diff = a.mean - b.mean
    if a.n < 2 or b.n < 2:
        return Comparison(diff, math.nan, math.nan, math.nan, "none")
    va, vb = a.sd**2 / a.n, b.sd**2 / b.n
    se = math.sqrt(va + vb)
    if se == 0:
        t = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        return Comparison(diff, 0.0, t, math.inf, "99%" if diff else "none")
    df = se**4 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    t = diff / se
    return Comparison(diff, se, t, df, _level(abs(t), df))


@dataclass(frozen=True)
class RatioInterval:
    """``a / b`` of two geometric means with two-sided 95 % and 99 % intervals [low, high];
    ``log_se`` and ``df`` are the Welch s.e. and degrees of freedom of the log difference (NaN
    bounds, s.e. and df when a group has fewer than two values)."""

    ratio: float
    low95: float
    high95: float
    low99: float
    high99: float
    log_se: float
    df: float


def log_ratio(a: Summary, b: Summary) -> RatioInterval:
    """Ratio of the geometric means of two groups of positive values, a / b, with its intervals.

    With x_i = ln a_i and y_j = ln b_j: ln R = mean(x) − mean(y), so R = GM(a) / GM(b);
    se = √(s_x²/n_a + s_y²/n_b) and df = se⁴ / ((s_x²/n_a)²/(n_a−1) + (s_y²/n_b)²/(n_b−1)), as in
    :func:`welch`; the 95 % interval is exp(ln R ± t₀.₉₇₅(df)·se), the 99 % one uses t₀.₉₉₅(df).
    The interval is symmetric around R on the log scale (R·e^∓h), not on the ratio scale. At a
    fractional df :func:`t_critical` is never below the exact quantile, so the intervals are at most
    slightly wider than exact ones (at most 5 % in half-width on the log scale for df ≥ 2; more
    between df 1 and 2, see there).
    When both groups are constant (se = 0) the ratio is exact: every bound equals R and df = ∞.
    Fewer than two values in a group: R as far as defined, NaN bounds, s.e. and df.

    Raises ValueError for a value ≤ 0 (it has no logarithm): such a value means the measurement is
    not a positive size, and dropping it silently would bias R.
    """
    bad = [v for v in (*a.values, *b.values) if not v > 0]
    if bad:
        raise ValueError(f"a ratio of geometric means needs positive values, got {bad[0]!r}")
    c = welch(summarize([math.log(v) for v in a.values]), summarize([math.log(v) for v in b.values]))
    ratio = math.exp(c.difference)
    if not math.isfinite(c.se):
        return RatioInterval(ratio, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    d, h95, h99 = c.difference, t_critical(c.df, 95) * c.se, t_critical(c.df, 99) * c.se
    return RatioInterval(ratio, math.exp(d - h95), math.exp(d + h95), math.exp(d - h99), math.exp(d + h99), c.se, c.df)


def _level(t: float, df: float) -> Level:
    if t > t_critical(df, 99):
        return "99%"
    if t > t_critical(df, 95):
        return "95%"
    return "none"


def two_proportions(a: Proportion, b: Proportion) -> Comparison:
    """``share_a − share_b`` with the unpooled s.e. √(p_a(1−p_a)/n_a + p_b(1−p_b)/n_b), as a z test.

    When both shares are 0 or 1 the s.e. is 0; a nonzero difference then clears every level.
    """
    diff = a.share - b.share
    se = math.sqrt(a.share * (1 - a.share) / a.n + b.share * (1 - b.share) / b.n)
    if se == 0:
        return Comparison(diff, 0.0, 0.0 if diff == 0 else math.copysign(math.inf, diff), math.inf,
                          "99%" if diff else "none")
    z = diff / se
    return Comparison(diff, se, z, math.inf, _level(abs(z), math.inf))


def fisher_greater(k_a: int, n_a: int, k_b: int, n_b: int) -> float:
    """One-sided Fisher exact p-value that group a has a higher rate than group b.

    With margins fixed, the count in group a is hypergeometric; p = P(X ≥ k_a).
    """
    total_k, total = k_a + k_b, n_a + n_b
    denom = math.comb(total, n_a)
    upper = min(n_a, total_k)
    return sum(math.comb(total_k, x) * math.comb(total - total_k, n_a - x) for x in range(k_a, upper + 1)) / denom

__all__ = ["Comparison", "Proportion", "Summary", "fisher_greater", "log_ratio", "summarize", "t_critical",
           "two_proportions", "welch", "wilson"]
