"""The five experiments as pure functions of the stored measurements (``OUT/results/runs/*.json``,
the curve files and the runs' samples); each result is a small dataclass, also written as JSON.

1. quality — SWD of each family over its training seeds (mean ± s.d.), diffusion against each GAN;
2. cost — wall-clock, images, FLOPs, sampling cost, the quality-vs-compute curve over seeds, and the
   training compute each seed run needed to reach a common quality level along its own curve, with
   the ratio diffusion / GAN of the geometric means and its interval, against each GAN;
3. data-sensitivity — see :mod:`landiff.workflows.study.sensitivity`;
4. hparam-stability — each grid cell's SWD, divergence / collapse, and its distance from the
   default in units of the seed-to-seed spread;
5. seed-stability — the spread of the final SWD over seeds against the metric's own noise.

The claims compare diffusion with each GAN family in turn (:data:`GAN_FAMILIES`), so the two-family
results (:class:`QualityResult`, :class:`CostResult`) come once per GAN that was measured: a pair is
judged exactly as a study with that GAN alone would judge it. Rebuilding the report calls these again
on the same files: it never trains or samples.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from landiff.workflows.study.datasets import read_layout
from landiff.workflows.study.evaluation import COLLAPSE_RATIO, CurvePoint, RunEval, load_eval, read_curve, write_json
from landiff.workflows.study.options import EXPERIMENTS, FAMILIES, GAN_FAMILIES, Experiment, Family, StudyOptions
from landiff.workflows.study.plan import RunSpec, build_plan
from landiff.workflows.study.sensitivity import SensitivityResult, data_sensitivity
from landiff.workflows.study.similarity import calibrate
from landiff.workflows.study.state import STATE_NAME
from landiff.workflows.study.uncertainty import Comparison, RatioInterval, Summary, log_ratio, summarize, welch

WORSE_Z = 2.0  # a cell is worse than the default when its SWD is > 2 combined s.d. above the seed mean


@dataclass(frozen=True)
class FamilySeeds:
    """One family's seed runs on D: SWD per seed (± metric s.d.), their summary, and the floor."""

    family: Family
    names: tuple[str, ...]
    swd: tuple[float, ...]
    swd_std: tuple[float, ...]
    summary: Summary
    metric_sd: float  # mean over seeds of the SWD's own repeat s.d. (measurement noise)
    diversity: tuple[float, ...]
    floor: float
    n: int

    @property
    def collapsed(self) -> bool:
        """Whether any seed's samples fell below the collapse criterion (the default itself failed)."""
        return any(not d >= COLLAPSE_RATIO for d in self.diversity)

    @property
    def cv(self) -> float:
        """Coefficient of variation over seeds (s.d. / mean)."""
        return self.summary.sd / self.summary.mean if self.summary.mean else math.nan


def family_seeds(family: Family, evaluations: Mapping[str, RunEval]) -> FamilySeeds | None:
    """None until at least one seed run of the family is measured."""
    runs = sorted((e for n, e in evaluations.items() if n.startswith(f"{family}-D-seed")), key=lambda e: e.name)
    runs = [e for e in runs if e.status == "finished"]
    if not runs:
        return None
    return FamilySeeds(family, tuple(e.name for e in runs), tuple(e.swd for e in runs), tuple(e.swd_std for e in runs),
                       summarize([e.swd for e in runs]), float(np.nanmean([e.swd_std for e in runs])),
                       tuple(e.diversity for e in runs), runs[0].floor, runs[0].n)


@dataclass(frozen=True)
class QualityResult:
    """Diffusion and one GAN over seeds. ``ratio`` is diffusion / GAN of the geometric-mean SWD with its
    intervals (below 1: diffusion better; claim 1 is judged on it); ``comparison`` is Welch's
    GAN − diffusion on the arithmetic means (positive: diffusion better), shown alongside."""

    diffusion: FamilySeeds
    gan: FamilySeeds
    comparison: Comparison
    ratio: RatioInterval


def quality_against(evaluations: Mapping[str, RunEval], gan: Family) -> QualityResult | None:
    """Diffusion against ``gan``; None until both have a measured seed run. An SWD ≤ 0 raises ValueError
    from :func:`log_ratio`: SWD is 0 only for identical image sets, so such a value is a broken measurement."""
    d, g = family_seeds("diffusion", evaluations), family_seeds(gan, evaluations)
    if d is None or g is None:
        return None
    return QualityResult(d, g, welch(g.summary, d.summary), log_ratio(d.summary, g.summary))


def quality(evaluations: Mapping[str, RunEval]) -> tuple[QualityResult, ...] | None:
    """Diffusion against each GAN with a measured seed run (GAN_FAMILIES order); None when there is none."""
    pairs = tuple(q for gan in GAN_FAMILIES if (q := quality_against(evaluations, gan)) is not None)
    return pairs or None


@dataclass(frozen=True)
class SeedCost:
    """One seed run's quality-vs-compute curve and the compute at which it first reached the target SWD
    (interpolated in log-compute between its points, :func:`compute_to_reach`): NaN when it never did;
    ``at_first_point`` when its first point was already below the target, so the value is an upper bound."""

    name: str
    curve: tuple[CurvePoint, ...]
    to_target_flops: float
    to_target_seconds: float
    at_first_point: bool

    @property
    def reached(self) -> bool:
        return math.isfinite(self.to_target_flops)


@dataclass(frozen=True)
class CurveStage:
    """One training stage of a family's curve over its seed runs: means over the seeds with a point at
    this stage (``seeds`` of them) and the s.d. of their SWD (NaN with one seed); ``metric_sd`` is the
    mean of the points' own metric s.d."""

    stage: int
    seeds: int
    images_seen: float
    train_flops: float
    train_seconds: float
    swd: float
    swd_sd: float
    metric_sd: float


@dataclass(frozen=True)
class FamilyCost:
    """What one family's runs cost: means over its seed runs, per-image costs, its curve over seeds.

    ``to_target_flops`` / ``to_target_seconds``: the geometric mean, over the seeds that reached the
    target, of the compute each needed (``seeds`` holds each seed's value); ``bounded`` when a seed's
    first point was already below the target, so its value is an upper bound.
    """

    family: Family
    train_seconds: float
    images_seen: float
    flops_per_train_image: float
    train_flops: float
    flops_per_sample: float
    nfe: int
    sample_seconds: float
    curve: tuple[CurveStage, ...]
    seeds: tuple[SeedCost, ...]
    to_target_flops: float
    to_target_seconds: float
    bounded: bool
    swd_at_equal_time: float

    @property
    def reached(self) -> int:
        """Seed runs that reached the target."""
        return sum(s.reached for s in self.seeds)

    def values(self, field: Literal["flops", "seconds"]) -> list[float]:
        """Each seed's compute to the target (training FLOPs or seconds), for the seeds that reached it."""
        return [getattr(s, f"to_target_{field}") for s in self.seeds if s.reached]


@dataclass(frozen=True)
class CostResult:
    """Diffusion against one GAN: both families' costs (``families``: diffusion, then the GAN); the target
    quality (the highest final curve SWD over every seed run of the two, the best quality all of them
    reached); the training time both mean curves cover (``equal_seconds``: where ``swd_at_equal_time`` is
    read); and the ratios diffusion / GAN of the geometric-mean compute to the target, with their
    intervals (Welch's t on the logs of the per-seed values, :func:`log_ratio`), in FLOPs and in training
    wall-clock (claim 2)."""

    families: tuple[FamilyCost, ...]
    target_swd: float
    equal_seconds: float
    flops: RatioInterval
    seconds: RatioInterval

    def family(self, name: Family) -> FamilyCost:
        return next(f for f in self.families if f.family == name)

    @property
    def diffusion(self) -> FamilyCost:
        return self.family("diffusion")

    @property
    def gan(self) -> FamilyCost:
        return next(f for f in self.families if f.family != "diffusion")

    def ratio(self, field: str) -> float:
        """diffusion / GAN for a numeric field of :class:`FamilyCost`."""
        a, b = getattr(self.diffusion, field), getattr(self.gan, field)
        return a / b if b else math.nan


def compute_to_reach(curve: Sequence[CurvePoint], target: float) -> tuple[float, float, bool]:
    """(FLOPs, seconds, at the first point) when the curve first reaches SWD ≤ ``target``."""
    for k, point in enumerate(curve):
        if point.swd <= target:
            if k == 0:
                return point.train_flops, point.train_seconds, True
            prev = curve[k - 1]
            w = (prev.swd - target) / (prev.swd - point.swd) if prev.swd != point.swd else 1.0
            flops = math.exp(math.log(prev.train_flops) + w * (math.log(point.train_flops) - math.log(prev.train_flops)))
            seconds = prev.train_seconds + w * (point.train_seconds - prev.train_seconds)
            return flops, seconds, False
    return math.nan, math.nan, False


def swd_at_time(curve: Sequence[CurvePoint | CurveStage], seconds: float) -> float:
    """The curve's SWD after ``seconds`` of training, linear between points; NaN outside the curve."""
    times = [p.train_seconds for p in curve]
    if not curve or not times[0] <= seconds <= times[-1]:
        return math.nan
    return float(np.interp(seconds, times, [p.swd for p in curve]))


def curve_stages(curves: Sequence[Sequence[CurvePoint]]) -> tuple[CurveStage, ...]:
    """The seeds' curves stage by stage: mean ± s.d. over the seeds that have a point at each stage."""
    stages = sorted({p.stage for curve in curves for p in curve})
    result = []
    for stage in stages:
        points = [p for curve in curves for p in curve if p.stage == stage]
        swd = summarize([p.swd for p in points])
        result.append(CurveStage(stage, len(points), float(np.mean([p.images_seen for p in points])),
                                 float(np.mean([p.train_flops for p in points])),
                                 float(np.mean([p.train_seconds for p in points])), swd.mean, swd.sd,
                                 float(np.mean([p.swd_std for p in points]))))
    return tuple(result)


def _geometric_mean(values: Sequence[float]) -> float:
    return math.exp(float(np.mean(np.log(values)))) if values else math.nan


def _family_cost(seeds: FamilySeeds, evaluations: Mapping[str, RunEval], curves: Mapping[str, Sequence[CurvePoint]],
                 target: float, equal_seconds: float) -> FamilyCost:
    runs = [evaluations[name] for name in seeds.names]
    per_seed = tuple(SeedCost(name, tuple(curves[name]), *compute_to_reach(curves[name], target))
                     for name in seeds.names if curves[name])
    stages = curve_stages([s.curve for s in per_seed])
    reached = [s for s in per_seed if s.reached]
    return FamilyCost(seeds.family, float(np.mean([r.train_seconds for r in runs])),
                      float(np.mean([r.images_seen for r in runs])), runs[0].flops_per_train_image,
                      float(np.mean([r.train_flops for r in runs])), runs[0].flops_per_sample, runs[0].nfe,
                      float(np.mean([r.sample_seconds for r in runs])), stages, per_seed,
                      _geometric_mean([s.to_target_flops for s in reached]),
                      _geometric_mean([s.to_target_seconds for s in reached]),
                      any(s.at_first_point for s in per_seed), swd_at_time(stages, equal_seconds))


def cost_of(evaluations: Mapping[str, RunEval], curves: Mapping[str, Sequence[CurvePoint]],
            target: float | None = None, *, gan: Family) -> CostResult | None:
    """Claim 2's numbers, diffusion against ``gan``, from the seed runs' measurements and their curves (by
    run name); None until both families have a measured seed run with a curve. ``target``: the SWD to
    reach (default: the highest final curve SWD over every seed run of the two, which every one reached)."""
    families = [family_seeds(f, evaluations) for f in ("diffusion", gan)]
    seeds = [f for f in families if f is not None]
    if len(seeds) < len(families) or not all(any(curves.get(name) for name in f.names) for f in seeds):
        return None
    runs = {name: list(curves.get(name, ())) for f in seeds for name in f.names}
    target = max(curve[-1].swd for curve in runs.values() if curve) if target is None else target
    equal = min(curve_stages([runs[name] for name in f.names])[-1].train_seconds for f in seeds)
    costs = {f.family: _family_cost(f, evaluations, runs, target, equal) for f in seeds}
    d, g = costs["diffusion"], costs[gan]  # claim 2 compares these two
    return CostResult(tuple(costs.values()), target, equal,
                      log_ratio(summarize(d.values("flops")), summarize(g.values("flops"))),
                      log_ratio(summarize(d.values("seconds")), summarize(g.values("seconds"))))


def cost(evaluations: Mapping[str, RunEval], out: Path) -> tuple[CostResult, ...] | None:
    """:func:`cost_of` against each GAN, on the curves stored in ``out`` (``results/curves/<seed run>.json``);
    None when no pair is measured."""
    names = [name for name in evaluations if any(name.startswith(f"{f}-D-seed") for f in FAMILIES)]
    curves = {name: read_curve(out, name) for name in names}
    pairs = tuple(c for gan in GAN_FAMILIES if (c := cost_of(evaluations, curves, gan=gan)) is not None)
    return pairs or None


@dataclass(frozen=True)
class CellResult:
    """One grid cell. ``z`` = (SWD − seed mean) / √(seed s.d.² + cell metric s.d.²); ``outcome`` is
    ``diverged``, ``collapsed``, ``worse`` (z > 2), ``better`` (z < −2) or ``similar``. ``setting`` is
    the setting as the report shows it, ``value`` as the plan names it (e.g. ``x1/2``); ``match``:
    whether the cell saw the reference's training images or took its optimiser steps."""

    factor: str
    setting: str
    name: str
    swd: float
    swd_std: float
    diversity: float
    z: float
    outcome: str
    match: str = "images"
    value: str = ""

    @property
    def unstable(self) -> bool:
        return self.outcome in ("diverged", "collapsed", "worse")


@dataclass(frozen=True)
class FamilyGrid:
    family: Family
    default: FamilySeeds
    cells: tuple[CellResult, ...]

    @property
    def unstable(self) -> int:
        return sum(c.unstable for c in self.cells)


def _cell(spec: RunSpec, run: RunEval, default: FamilySeeds) -> CellResult:
    """A collapsed cell counts as collapsed only when the default itself is not (else SWD decides)."""
    cell = spec.cell
    assert cell is not None
    if run.status == "diverged":
        return CellResult(cell.factor, cell.shown, spec.name, math.nan, math.nan, math.nan, math.nan, "diverged",
                          cell.match, cell.setting)
    spread = math.sqrt((default.summary.sd if math.isfinite(default.summary.sd) else 0.0) ** 2 + run.swd_std**2)
    z = (run.swd - default.summary.mean) / spread if spread > 0 else math.nan
    collapsed = run.collapsed and not default.collapsed
    outcome = "collapsed" if collapsed else "worse" if z > WORSE_Z else "better" if z < -WORSE_Z else "similar"
    return CellResult(cell.factor, cell.shown, spec.name, run.swd, run.swd_std, run.diversity, z, outcome, cell.match,
                      cell.setting)


def hparam_stability(evaluations: Mapping[str, RunEval], plan: Sequence[RunSpec]) -> tuple[FamilyGrid, ...] | None:
    grids = []
    for family in FAMILIES:
        default = family_seeds(family, evaluations)
        cells = [_cell(s, evaluations[s.name], default) for s in plan
                 if s.family == family and s.role == "grid" and s.name in evaluations and default is not None]
        if cells and default is not None:  # (cells is empty when default is None; repeated for mypy)
            grids.append(FamilyGrid(family, default, tuple(cells)))
    return tuple(grids) or None


@dataclass(frozen=True)
class StudyResults:
    """Everything the report shows; experiments not measured yet are None."""

    options: StudyOptions
    evaluations: dict[str, RunEval]
    quality: tuple[QualityResult, ...] | None  # diffusion against each measured GAN
    cost: tuple[CostResult, ...] | None  # likewise
    sensitivity: SensitivityResult | None
    hparam: tuple[FamilyGrid, ...] | None
    seeds: tuple[FamilySeeds, ...]


def read_options(out: Path) -> StudyOptions:
    values = json.loads((out / STATE_NAME).read_text(encoding="utf-8"))["options"]
    return StudyOptions.from_dict(values)


def read_evaluations(out: Path, plan: Sequence[RunSpec]) -> dict[str, RunEval]:
    folder = out / "results" / "runs"
    return {s.name: load_eval(folder / f"{s.name}.json") for s in plan if (folder / f"{s.name}.json").is_file()}


def compute_results(out: Path) -> StudyResults:
    """Every experiment that the measurements in ``out`` support (pure: reads files only)."""
    options = read_options(out)
    plan = build_plan(options, EXPERIMENTS)
    evaluations = read_evaluations(out, plan)
    layout = read_layout(out)
    sensitivity = None
    if layout is not None:
        calibration = calibrate(layout.reference_images(), seed=options.data_seed)
        sensitivity = data_sensitivity(evaluations, out, calibration)
    seeds = tuple(s for f in FAMILIES if (s := family_seeds(f, evaluations)) is not None)
    return StudyResults(options, evaluations, quality(evaluations), cost(evaluations, out), sensitivity,
                        hparam_stability(evaluations, plan), seeds)


def write_results(out: Path, results: StudyResults, experiments: Sequence[Experiment]) -> list[Path]:
    """``OUT/results/<experiment>.json`` for each requested experiment that has a result."""
    values = {"quality": results.quality, "cost": results.cost, "data-sensitivity": results.sensitivity,
              "hparam-stability": results.hparam, "seed-stability": results.seeds or None}
    written = []
    for name in experiments:
        value = values[name]
        if value is None:
            continue
        path = out / "results" / f"{name}.json"
        data = [asdict(v) for v in value] if isinstance(value, tuple) else asdict(value)
        write_json(path, {"experiment": name, "options": dataclasses.asdict(results.options), "result": data})
        written.append(path)
    return written


def run_experiments(out: Path, experiments: Sequence[Experiment]) -> StudyResults:
    """Computes the results from the measurements stored in ``out`` (as the report will) and writes
    the requested experiments as JSON."""
    results = compute_results(out)
    write_results(out, results, experiments)
    return results
