"""The "Observations" section: sentences computed from the numbers, never fixed text.

Quality sentences rank the runs on each metric and say whether each gap exceeds the noise
(:mod:`landiff.report.numbers`); cost sentences give ratios between the families (or against the
first run when all runs are of one family); sampling-step, training-progress and memorisation
sentences read the sweep, the curve and the flag counts. Works for one run, two runs or more.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from landiff.report.numbers import (
    HIGHER_IS_BETTER,
    describe,
    difference,
    duration,
    metric_or_none,
    metric_title,
    noise_floor,
    ordered_metrics,
    plus_minus,
    ratio,
    si,
    who,
)
from landiff.report.records import Cost, Estimate, Run, SweepPoint
from landiff.report.verdict import NOT_LEARNED, standings


@dataclass(frozen=True)
class ObservationGroup:
    title: str
    items: tuple[str, ...]


def _estimates(runs: list[Run], metric: str) -> list[tuple[Run, Estimate]]:
    """Runs that measured ``metric``, best first."""
    pairs = [(run, est) for run in runs if (est := metric_or_none(run.metrics().get(metric))) is not None]
    return sorted(pairs, key=lambda pair: pair[1].value, reverse=metric in HIGHER_IS_BETTER)


PER_LEVEL = re.compile(r"swd_\d+")


def quality(runs: list[Run]) -> list[str]:
    """Best run per metric against each other run (the per-level SWDs in one line), then a per-family
    tally when both families exist; runs that have not learned the data yet are not ranked."""
    items: list[str] = []
    names = ordered_metrics({name for run in runs for name in run.metrics()})
    behind = {s.run.label for s in standings(runs) if s.learned is False}
    tally: dict[str, list[str]] = {"diffusion": [], "gan": [], "within noise": [], "no spread": [], "neither": []}
    for metric in names:
        ranked, floor = _estimates(runs, metric), noise_floor(runs, metric)
        if not PER_LEVEL.fullmatch(metric):
            items += [_pair(metric, ranked[0], other, floor, behind) for other in ranked[1:]]
        best = {family: next((p for p in ranked if p[0].family == family), None) for family in ("diffusion", "gan")}
        if best["diffusion"] and best["gan"]:
            diff = difference(metric, best["diffusion"], best["gan"], floor)
            key = {None: "no spread", True: "within noise"}.get(diff.within_noise, str(diff.better.family))
            if {best["diffusion"][0].label, best["gan"][0].label} <= behind:
                key = "neither"
            tally[key].append(metric_title(metric))
        if len(ranked) == 1:
            items.append(f"{metric_title(metric)}: only {who(ranked[0][0])} measured it "
                         f"({plus_minus(ranked[0][1].value, ranked[0][1].std)}).")
    items += _per_level(runs, names)
    if any(tally.values()):
        parts = [f"{label} on {', '.join(metrics)}" for label, metrics in
                 (("diffusion is better", tally["diffusion"]), ("the GAN is better", tally["gan"]),
                  ("within noise", tally["within noise"]), ("no spread measured", tally["no spread"]),
                  ("neither has learned the data yet, so neither wins", tally["neither"])) if metrics]
        items.insert(0, "Best diffusion run vs best GAN run: " + "; ".join(parts) + ".")
    return items


def _pair(metric: str, best: tuple[Run, Estimate], other: tuple[Run, Estimate], floor: Estimate | None,
          behind: set[str]) -> str:
    if {best[0].label, other[0].label} <= behind:
        return (f"{metric_title(metric)}: {who(best[0])} {plus_minus(best[1].value, best[1].std)} vs {who(other[0])} "
                f"{plus_minus(other[1].value, other[1].std)}; neither {NOT_LEARNED}, so this does not rank them.")
    return describe(difference(metric, best, other, floor))


def _per_level(runs: list[Run], names: list[str]) -> list[str]:
    """The SWD of each pyramid level, one line for all runs (the spreads are in the metrics table)."""
    levels = [name for name in names if PER_LEVEL.fullmatch(name)]
    parts = []
    for run in runs:
        values = [f"{metric_title(name).removeprefix('SWD ')} {est.value:.3g}" for name in levels
                  if (est := metric_or_none(run.metrics().get(name))) is not None]
        if values:
            parts.append(f'"{run.label}" ' + ", ".join(values))
    return [f"SWD per pyramid level: {'; '.join(parts)}."] if parts else []


def floors(runs: list[Run]) -> list[str]:
    """Runs within noise of the real-vs-real floor (every run's ratio to it is in the summary table)."""
    items = []
    for run in runs:
        for metric, measured_floor in (run.summary.noise_floor.items() if run.summary else []):
            value = metric_or_none(run.metrics().get(metric))
            floor = metric_or_none(measured_floor)
            if value is None or floor is None:
                continue
            if difference(metric, (run, value), (run, floor), None).within_noise:
                items.append(f'"{run.label}": {metric_title(metric)} {plus_minus(value.value, value.std)} is within '
                             f"noise of the real-vs-real floor {plus_minus(floor.value, floor.std)}: "
                             "indistinguishable from real images by this metric at this n.")
    return items


def caveats(runs: list[Run]) -> list[str]:
    """Protocol differences that make the numbers of different runs not comparable."""
    evaluated = [run for run in runs if run.summary is not None]
    items = [f'"{run.label}": {run.ignored}.' for run in runs if run.ignored]
    items += [f'"{run.label}" has no compare/summary.json: run landiff compare on it to measure it.'
              for run in runs if run.summary is None and not (run.ignored and "compare/summary.json" in run.ignored)]
    for field in ("n", "seed", "reference"):
        values = sorted({str(getattr(run.summary, field)) for run in evaluated})
        if len(values) > 1:
            items.append(f"The runs were evaluated with different {field} ({'; '.join(values)}): their metrics "
                         "are not directly comparable.")
    reals = [run.real for run in runs if run.real is not None]
    if any(r.shape != reals[0].shape or not (r == reals[0]).all() for r in reals[1:]):
        items.append("The runs' compare/real.npz reference images differ: they come from different compare runs.")
    for run in runs:
        items.extend(f'"{run.label}": {problem}.' for problem in run.problems)
    return items


@dataclass(frozen=True)
class CostField:
    """One cost quantity: its table column, its phrase in sentences, how to read and write it."""

    column: str
    phrase: str
    read: Callable[[Cost], float | None]
    write: Callable[[float], str]


def _total_flops(cost: Cost) -> float | None:
    if cost.images_seen is None or cost.flops_per_train_image is None:
        return None
    return cost.images_seen * cost.flops_per_train_image


COST_FIELDS = (
    CostField("params", "the parameters", lambda c: c.params, si),
    CostField("images seen", "the images seen", lambda c: c.images_seen, si),
    CostField("train time", "the training wall-clock time", lambda c: c.train_seconds, duration),
    CostField("FLOPs/train image", "the FLOPs per training image", lambda c: c.flops_per_train_image,
              lambda v: si(v, "FLOP")),
    CostField("train FLOPs", "the total training FLOPs", _total_flops, lambda v: si(v, "FLOP")),
    CostField("NFE", "the network evaluations per sample (NFE)", lambda c: c.nfe, lambda v: f"{v:g}"),
    CostField("FLOPs/sample", "the FLOPs per sample", lambda c: c.flops_per_sample, lambda v: si(v, "FLOP")),
    CostField("s/image", "the sampling time per image", lambda c: c.sample_seconds_per_image, duration),
    CostField("configs tried", "the configurations tried to choose the recipe", lambda c: c.configurations_tried,
              lambda v: f"{v:g}"),
)


# The costs the Cost observations put into words (the table under "Training and sampling cost" has all).
SENTENCE_COSTS = ("train time", "train FLOPs", "FLOPs/sample", "s/image", "configs tried")


def cost_pairs(runs: list[Run]) -> list[tuple[Run, Run]]:
    """Each diffusion run against each GAN run; within one family, each run against the first."""
    measured = [run for run in runs if run.summary is not None and run.summary.cost is not None]
    gans = [run for run in measured if run.family == "gan"]
    others = [run for run in measured if run.family != "gan"]
    if gans and others:
        return [(run, gan) for run in others for gan in gans]
    return [(run, measured[0]) for run in measured[1:]]


def measured_cost(run: Run) -> Cost:
    """The cost of a run from :func:`cost_pairs` (every one of those has a measured cost)."""
    if run.summary is None or run.summary.cost is None:
        raise ValueError(f"run {run.label!r} has no measured cost")
    return run.summary.cost


def costs(runs: list[Run]) -> list[str]:
    """Cost ratios between families (training time, FLOPs, NFE, s/image), or one run's costs alone."""
    items = []
    for a, b in cost_pairs(runs):
        clauses = []
        for field in (f for f in COST_FIELDS if f.column in SENTENCE_COSTS):
            va, vb = field.read(measured_cost(a)), field.read(measured_cost(b))
            if va is not None and vb is not None and vb != 0:
                clauses.append(f"{ratio(va, vb)} {field.phrase} ({field.write(va)} vs {field.write(vb)})")
        if clauses:
            items.append(f"{who(a)} vs {who(b)}: " + "; ".join(clauses) + ".")
    if not items:
        for run in runs:
            cost = run.summary.cost if run.summary else None
            clauses = [f"{field.phrase.removeprefix('the ')} {field.write(value)}" for field in COST_FIELDS
                       if cost is not None and (value := field.read(cost)) is not None]
            if clauses:
                items.append(f"{who(run)}: " + "; ".join(clauses) + ".")
    return items


def _sweep_noise(a: SweepPoint, b: SweepPoint) -> float | None:
    return None if a.swd_std is None or b.swd_std is None else float((a.swd_std ** 2 + b.swd_std ** 2) ** 0.5)


def _sweep_point(point: SweepPoint) -> str:
    return f"{point.sampler} at {point.nfe:g} NFE ({plus_minus(point.swd, point.swd_std)})"


def sweeps(runs: list[Run]) -> list[str]:
    """Best sampler setting per diffusion run, the cheapest one within noise of it, and the NFE at
    which diffusion first matches the GAN's SWD."""
    gan = next(((run, est) for run in runs if run.family == "gan"
                and (est := metric_or_none(run.metrics().get("swd"))) is not None), None)
    items = []
    for run in runs:
        sweep = run.summary.sweep if run.summary else ()
        if sweep:
            items.append(_sweep_best(run.label, sweep))
            if gan is not None:
                items.append(_sweep_vs_gan(run.label, sweep, *gan))
    return items


def _sweep_best(label: str, sweep: tuple[SweepPoint, ...]) -> str:
    best = min(sweep, key=lambda p: (p.swd, p.nfe))
    text = f'"{label}": best SWD with {_sweep_point(best)}'
    close = [p for p in sweep if (noise := _sweep_noise(p, best)) is not None and p.swd - best.swd <= noise]
    cheapest = min(close, key=lambda p: (p.nfe, p.swd), default=None)
    if cheapest is None:
        text += "; no spread was measured, so settings within noise of it are unknown"
    elif cheapest.nfe < best.nfe:
        text += f"; the cheapest setting within noise of it is {_sweep_point(cheapest)}"
    return text + "."


def _sweep_vs_gan(label: str, sweep: tuple[SweepPoint, ...], gan: Run, swd: Estimate) -> str:
    """The fewest NFE at which a swept setting reaches the GAN's SWD (same n only: SWD depends on n)."""
    sweep_n, gan_n = {p.n for p in sweep if p.n is not None}, gan.summary.n if gan.summary else None
    if sweep_n and gan_n is not None and sweep_n != {gan_n}:
        return (f'"{label}": sweep not set against the SWD of {who(gan)}: the sweep used n = '
                f"{', '.join(map(str, sorted(sweep_n)))} images, the GAN n = {gan_n} (SWD depends on n).")
    reach = min((p for p in sweep if p.swd <= swd.value), key=lambda p: (p.nfe, p.swd), default=None)
    target = f"the SWD of {who(gan)} ({plus_minus(swd.value, swd.std)} at {_gan_nfe(gan):g} NFE per sample)"
    if reach is None:
        return f'No swept setting of "{label}" reaches {target}.'
    noise = None if reach.swd_std is None or swd.std is None else (reach.swd_std ** 2 + swd.std ** 2) ** 0.5
    margin = ("" if noise is None else " (within noise of it)" if swd.value - reach.swd <= noise else
              " (lower by more than the combined spread)")
    return f'"{label}" first reaches {target} with {_sweep_point(reach)}{margin}.'


def _gan_nfe(run: Run) -> float:
    cost = run.summary.cost if run.summary else None
    return cost.nfe if cost is not None and cost.nfe is not None else 1.0


def progress(runs: list[Run]) -> list[str]:
    """What the metric curve and the loss logs did along training."""
    items = []
    for run in runs:
        if len(run.curve) >= 2:
            first, prev, last = run.curve[0], run.curve[-2], run.curve[-1]
            noise = None if prev.swd_std is None or last.swd_std is None else (prev.swd_std ** 2 + last.swd_std ** 2) ** 0.5
            trend = ("unknown whether the last change exceeds noise (no spread measured)" if noise is None else
                     "flat within noise over the last two checkpoints" if abs(last.swd - prev.swd) <= noise else
                     "still improving at the last checkpoint" if last.swd < prev.swd else "worse at the last checkpoint")
            items.append(f'"{run.label}": SWD {first.swd:.4g} at {si(first.images_seen)} images → {last.swd:.4g} at '
                         f"{si(last.images_seen)} images; {trend}.")
        if run.stats is not None:
            parts = []
            for name, series in run.stats.losses.items():
                start, end = _mean_finite(series[:5]), _mean_finite(series[-5:])
                if name in ("loss", "loss_d", "loss_g") and start is not None and end is not None:
                    parts.append(f"{name} {start:.4g} → {end:.4g}")
            if parts:
                items.append(f'"{run.label}" training log (mean of the first vs last 5 intervals, up to '
                             f"{si(float(run.stats.images_seen[-1]))} images): " + ", ".join(parts) + ".")
    return items


def _mean_finite(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def memorization(runs: list[Run]) -> list[str]:
    """Flag counts of the memorisation check, with the rule used."""
    items = []
    for run in runs:
        memo = run.summary.memorization if run.summary else None
        if memo is not None and memo.unavailable is not None:
            items.append(f"{who(run)}: memorisation not measured: {memo.unavailable}")
        if memo is None or memo.flagged is None:
            continue
        rule = (f"ratio < {memo.ratio_threshold:.3g} and d_train < {memo.distance_threshold:.3g}"
                if memo.ratio_threshold is not None and memo.distance_threshold is not None else "the compare rule")
        lowest = f"; lowest ratio {memo.min_ratio:.3g}" if memo.min_ratio is not None else ""
        verdict = "likely copies of training images, see the memorisation panel" if memo.flagged else "flagged"
        items.append(f"{who(run)}: {memo.flagged} of {memo.n if memo.n is not None else '?'} samples "
                     f"{verdict} ({rule}){lowest}.")
    return items


def groups(runs: list[Run]) -> list[ObservationGroup]:
    """All observation groups that have something to say, in reading order."""
    found = [("Sample quality", quality(runs) + floors(runs)), ("Cost", costs(runs)),
             ("Sampling steps", sweeps(runs)), ("Training progress", progress(runs)),
             ("Memorisation", memorization(runs)), ("Caveats", caveats(runs))]
    return [ObservationGroup(title, tuple(item[:1].upper() + item[1:] for item in items)) for title, items in found
            if items]
