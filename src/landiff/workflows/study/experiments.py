"""The five experiments as pure functions of the stored measurements (``OUT/results/runs/*.json``,
the curve files and the runs' samples); each result is a small dataclass, also written as JSON.

1. quality — SWD of each family over its training seeds (mean ± s.d.), Welch comparison;
2. cost — wall-clock, images, FLOPs, sampling cost, and the training compute each family needed to
   reach a common quality level on the quality-vs-compute curve;
3. data-sensitivity — see :mod:`landiff.workflows.study.sensitivity`;
4. hparam-stability — each grid cell's SWD, divergence / collapse, and its distance from the
   default in units of the seed-to-seed spread;
5. seed-stability — the spread of the final SWD over seeds against the metric's own noise.

Rebuilding the report calls these again on the same files: it never trains or samples.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from landiff.workflows.study.datasets import read_layout
from landiff.workflows.study.evaluation import COLLAPSE_RATIO, CurvePoint, RunEval, load_eval, read_curve, write_json
from landiff.workflows.study.options import EXPERIMENTS, FAMILIES, Experiment, Family, StudyOptions
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
    """Both families over seeds. ``ratio`` is diffusion / GAN of the geometric-mean SWD with its
    intervals (below 1: diffusion better; claim 1 is judged on it); ``comparison`` is Welch's
    GAN − diffusion on the arithmetic means (positive: diffusion better), shown alongside."""

    diffusion: FamilySeeds
    gan: FamilySeeds
    comparison: Comparison
    ratio: RatioInterval


def quality(evaluations: Mapping[str, RunEval]) -> QualityResult | None:
    """None until both families have a measured seed run. An SWD ≤ 0 raises ValueError from
    :func:`log_ratio`: SWD is 0 only for identical image sets, so such a value is a broken measurement."""
    d, g = family_seeds("diffusion", evaluations), family_seeds("gan", evaluations)
    if d is None or g is None:
        return None
    return QualityResult(d, g, welch(g.summary, d.summary), log_ratio(d.summary, g.summary))


@dataclass(frozen=True)
class FamilyCost:
    """What one family's runs cost: means over its seed runs, per-image costs, its curve.

    ``to_target_flops`` / ``to_target_seconds``: training compute at which its curve first reached
    the common target SWD (interpolated in log-compute between curve points; ``at_first_point``
    when already below it at the first point, so the value is an upper bound); NaN if never.
    """

    family: Family
    train_seconds: float
    images_seen: float
    flops_per_train_image: float
    train_flops: float
    flops_per_sample: float
    nfe: int
    sample_seconds: float
    curve: tuple[CurvePoint, ...]
    to_target_flops: float
    to_target_seconds: float
    at_first_point: bool
    swd_at_equal_time: float


@dataclass(frozen=True)
class CostResult:
    """Both families' costs, the target quality (the worse family's last curve point) and the
    training time both curves cover (``equal_seconds``: where ``swd_at_equal_time`` is read)."""

    diffusion: FamilyCost
    gan: FamilyCost
    target_swd: float
    equal_seconds: float

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


def swd_at_time(curve: Sequence[CurvePoint], seconds: float) -> float:
    """The curve's SWD after ``seconds`` of training, linear between points; NaN outside the curve."""
    times = [p.train_seconds for p in curve]
    if not curve or not times[0] <= seconds <= times[-1]:
        return math.nan
    return float(np.interp(seconds, times, [p.swd for p in curve]))


def _family_cost(family: Family, seeds: FamilySeeds, evaluations: Mapping[str, RunEval], curve: list[CurvePoint],
                 target: float, equal_seconds: float) -> FamilyCost:
    runs = [evaluations[name] for name in seeds.names]
    flops, seconds, first = compute_to_reach(curve, target)
    return FamilyCost(family, float(np.mean([r.train_seconds for r in runs])), float(np.mean([r.images_seen for r in runs])),
                      runs[0].flops_per_train_image, float(np.mean([r.train_flops for r in runs])), runs[0].flops_per_sample,
                      runs[0].nfe, float(np.mean([r.sample_seconds for r in runs])), tuple(curve), flops, seconds, first,
                      swd_at_time(curve, equal_seconds))


def cost(evaluations: Mapping[str, RunEval], out: Path) -> CostResult | None:
    d, g = family_seeds("diffusion", evaluations), family_seeds("gan", evaluations)
    curves = {f: read_curve(out, f) for f in FAMILIES}
    if d is None or g is None or not all(curves.values()):
        return None
    target = max(curves["diffusion"][-1].swd, curves["gan"][-1].swd)
    equal = min(curves["diffusion"][-1].train_seconds, curves["gan"][-1].train_seconds)
    return CostResult(_family_cost("diffusion", d, evaluations, curves["diffusion"], target, equal),
                      _family_cost("gan", g, evaluations, curves["gan"], target, equal), target, equal)


@dataclass(frozen=True)
class CellResult:
    """One grid cell. ``z`` = (SWD − seed mean) / √(seed s.d.² + cell metric s.d.²); ``outcome`` is
    ``diverged``, ``collapsed``, ``worse`` (z > 2), ``better`` (z < −2) or ``similar``."""

    factor: str
    setting: str
    name: str
    swd: float
    swd_std: float
    diversity: float
    z: float
    outcome: str

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
    assert spec.cell is not None
    if run.status == "diverged":
        return CellResult(spec.cell.factor, spec.cell.shown, spec.name, math.nan, math.nan, math.nan, math.nan, "diverged")
    spread = math.sqrt((default.summary.sd if math.isfinite(default.summary.sd) else 0.0) ** 2 + run.swd_std**2)
    z = (run.swd - default.summary.mean) / spread if spread > 0 else math.nan
    collapsed = run.collapsed and not default.collapsed
    outcome = "collapsed" if collapsed else "worse" if z > WORSE_Z else "better" if z < -WORSE_Z else "similar"
    return CellResult(spec.cell.factor, spec.cell.shown, spec.name, run.swd, run.swd_std, run.diversity, z, outcome)


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
    quality: QualityResult | None
    cost: CostResult | None
    sensitivity: SensitivityResult | None
    hparam: tuple[FamilyGrid, ...] | None
    seeds: tuple[FamilySeeds, ...]


def read_options(out: Path) -> StudyOptions:
    values = json.loads((out / STATE_NAME).read_text(encoding="utf-8"))["options"]
    return StudyOptions(**values)


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
