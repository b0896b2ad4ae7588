"""Experiment 3, data sensitivity: do the outputs change when a few training images change?

For each family, image k of two runs comes from the same latent input (the same initial noise
through deterministic DPM-Solver++ for diffusion, the same z for the GAN; see
:mod:`landiff.workflows.study.evaluation`). Pairs compared:

* D-model (seed 0) vs each D′-model (seed 0, same data order for replace/duplicate): the change
  caused by the data;
* D-models of two different training seeds: the change a different initialisation and data order
  cause — the yardstick for "completely different".

Per pair of runs: mean ± s.e. over the n image pairs of the RMSE and the perceptual distance, and
the share of image pairs under the calibrated "same picture" threshold with its Wilson interval.
The s.e. covers the choice of latent inputs, not training randomness (one D′ run per variant):
the seed-vs-seed row shows how large training randomness is.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landiff.metrics.intervals import Proportion, wilson
from landiff.metrics.perceptual import perceptual_distance, rmse
from landiff.workflows.study.evaluation import RunEval, samples_of
from landiff.workflows.study.options import FAMILIES, Family
from landiff.workflows.study.similarity import Calibration

VARIANTS = ("replace", "remove", "duplicate")


@dataclass(frozen=True)
class PairStats:
    """Distances between image k of run ``a`` and image k of run ``b``, over the n latents.

    Attributes:
        kind: ``variant`` (D vs D′) or ``seed`` (seed vs seed on D).
        rmse_mean, rmse_se: per-pixel RMSE in [0, 1] units, mean and standard error.
        perceptual_mean, perceptual_se: the perceptual-style distance, mean and standard error.
        same: image pairs under the "same picture" threshold (count, n, Wilson 95 % interval).
    """

    label: str
    kind: str
    a: str
    b: str
    rmse_mean: float
    rmse_se: float
    perceptual_mean: float
    perceptual_se: float
    same: Proportion


@dataclass(frozen=True)
class FamilySensitivity:
    """One family's pairs; ``baseline`` pools the seed-vs-seed pairs; ``collapsed``: its D-model
    (seed 0) failed the diversity criterion, so similar outputs mean nothing."""

    family: Family
    variants: tuple[PairStats, ...]
    seeds: tuple[PairStats, ...]
    baseline: PairStats | None
    collapsed: bool

    def variant(self, kind: str) -> PairStats | None:
        return next((p for p in self.variants if p.label.endswith(kind)), None)

    def relative(self, kind: str) -> float:
        """Mean perceptual distance D vs D′ over the seed-vs-seed one (1 ≈ as different as a new seed)."""
        pair = self.variant(kind)
        if pair is None or self.baseline is None or not self.baseline.perceptual_mean:
            return math.nan
        return pair.perceptual_mean / self.baseline.perceptual_mean


@dataclass(frozen=True)
class SensitivityResult:
    """The calibrated rule and the pairs of every family that has measured runs."""

    calibration: Calibration
    families: tuple[FamilySensitivity, ...]
    n: int

    def family(self, family: Family) -> FamilySensitivity:
        return next(f for f in self.families if f.family == family)

    def find(self, family: Family) -> FamilySensitivity | None:
        """The family's pairs, or None when it has no measured run (a GAN left out by ``--gans``)."""
        return next((f for f in self.families if f.family == family), None)


def _se(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan


def pair_stats(label: str, kind: str, names: tuple[str, str], a: np.ndarray, b: np.ndarray,
               calibration: Calibration) -> PairStats:
    """Statistics of the image pairs (a[k], b[k])."""
    pixel, perceptual = rmse(a, b), perceptual_distance(a, b)
    same = wilson(int((perceptual < calibration.threshold).sum()), len(perceptual))
    return PairStats(label, kind, names[0], names[1], float(pixel.mean()), _se(pixel), float(perceptual.mean()),
                     _se(perceptual), same)


def _pooled(pairs: list[PairStats], arrays: list[tuple[np.ndarray, np.ndarray]], calibration: Calibration) -> PairStats | None:
    if not pairs:
        return None
    a = np.concatenate([x for x, _ in arrays])
    b = np.concatenate([y for _, y in arrays])
    return pair_stats("seed vs seed (pooled)", "seed", ("seeds", "seeds"), a, b, calibration)


def family_sensitivity(family: Family, evaluations: Mapping[str, RunEval], out: Path,
                       calibration: Calibration) -> FamilySensitivity:
    """The family's D-vs-D′ and seed-vs-seed pairs, from the samples of its finished runs."""
    def images(name: str) -> np.ndarray | None:
        run = evaluations.get(name)
        return samples_of(out, name) if run is not None and run.status == "finished" else None

    reference = images(f"{family}-D-seed0")
    variants = []
    for kind in VARIANTS:
        other = images(f"{family}-{kind}")
        if reference is not None and other is not None:
            variants.append(pair_stats(f"D vs D-{kind}", "variant", (f"{family}-D-seed0", f"{family}-{kind}"),
                                       reference, other, calibration))
    seed_names = sorted(n for n in evaluations if n.startswith(f"{family}-D-seed") and images(n) is not None)
    seeds, arrays = [], []
    for a, b in itertools.combinations(seed_names, 2):
        x, y = images(a), images(b)
        if x is None or y is None:  # never: seed_names holds only runs with samples
            continue
        seeds.append(pair_stats(f"{a.rsplit('-', 1)[1]} vs {b.rsplit('-', 1)[1]}", "seed", (a, b), x, y, calibration))
        arrays.append((x, y))
    d_model = evaluations.get(f"{family}-D-seed0")
    collapsed = d_model is not None and d_model.collapsed
    return FamilySensitivity(family, tuple(variants), tuple(seeds), _pooled(seeds, arrays, calibration), collapsed)


def data_sensitivity(evaluations: Mapping[str, RunEval], out: Path, calibration: Calibration) -> SensitivityResult | None:
    """The results of every family with a measured run, or None when no D′ run has been measured yet."""
    if not any(name.endswith(VARIANTS) for name in evaluations):
        return None
    present = [f for f in FAMILIES if any(e.family == f for e in evaluations.values())]
    families = tuple(family_sensitivity(f, evaluations, out, calibration) for f in present)
    n = next((p.same.n for f in families for p in f.variants), 0)
    return SensitivityResult(calibration, families, n)
