"""One call per metric: image sets in, a :class:`MetricRecord` out (what ``landiff eval`` writes).

These tie the formulas to the bookkeeping: sample counts, reference description, seed, resize path
and feature network all go into the record. The feature extractor is a parameter, so the same
code runs with the FID Inception or a test stub. ``provenance`` (what made the samples) is passed
through into the record untouched.
"""

from __future__ import annotations

import numpy as np

from landiff.metrics.features import FeatureExtractor
from landiff.metrics.fid import KID_SUBSET_SIZE, KID_SUBSETS, fid, kid
from landiff.metrics.io import ImageSet
from landiff.metrics.memorization import DISTANCE_THRESHOLD, RATIO_THRESHOLD, MemorizationResult, memorization
from landiff.metrics.precision_recall import K_NEIGHBOURS, precision_recall
from landiff.metrics.provenance import Provenance
from landiff.metrics.records import Estimate, MetricRecord
from landiff.metrics.swd import DIR_REPEATS, DIRS_PER_REPEAT, NHOODS_PER_IMAGE, sliced_wasserstein


def evaluate_swd(samples: ImageSet, reference: ImageSet, *, seed: int = 0, repeats: int = 3,
                 provenance: Provenance | None = None) -> MetricRecord:
    """Multi-scale SWD ×10³ (per level and averaged), mean ± std over ``repeats`` seeds."""
    result = sliced_wasserstein(samples.images, reference.images, seed=seed, repeats=repeats)
    spread = f"std over {repeats} seeds of patch positions and directions"

    def est(value: float, std: float) -> Estimate:
        return Estimate(value=value, std=std, repeats=repeats, spread=spread)

    estimates = {"swd": est(result.mean, result.std)}
    estimates.update({f"swd_{size}": est(result.per_level[size], result.per_level_std[size])
                      for size in result.per_level})
    extra = {"levels": list(result.per_level), "scale": "x1e3", "nhoods_per_image": NHOODS_PER_IMAGE,
             "directions": f"{DIR_REPEATS}x{DIRS_PER_REPEAT}",
             "blind_spot": "per-channel normalisation hides global colour/contrast shifts"}
    return MetricRecord(metric="swd", estimates=estimates, n_samples=result.n, n_reference=result.n,
                        samples=samples.description, reference=reference.description, seed=seed, extra=extra,
                        provenance=provenance)


def _features(extractor: FeatureExtractor, images: ImageSet) -> np.ndarray:
    return np.asarray(extractor(images.images), dtype=np.float64)


def _inception_record(metric: str, estimates: dict[str, Estimate], samples: ImageSet, reference: ImageSet,
                      extractor: FeatureExtractor, seed: int, extra: dict,
                      provenance: Provenance | None) -> MetricRecord:
    return MetricRecord(metric=metric, estimates=estimates, n_samples=len(samples), n_reference=len(reference),
                        samples=samples.description, reference=reference.description, seed=seed,
                        resize=getattr(extractor, "resize", "not recorded (custom extractor)"),
                        features=getattr(extractor, "description", f"custom extractor {extractor!r}"), extra=extra,
                        provenance=provenance)


def evaluate_fid(samples: ImageSet, reference: ImageSet, extractor: FeatureExtractor, *, seed: int = 0,
                 repeats: int = 3, provenance: Provenance | None = None) -> MetricRecord:
    """FID on the full sets; spread from ``repeats`` random half-samples."""
    value = fid(_features(extractor, samples), _features(extractor, reference), repeats=repeats, seed=seed)
    note = "biased upwards at small n: compare only at equal sample counts; prefer KID below a few thousand"
    return _inception_record("fid", {"fid": value}, samples, reference, extractor, seed, {"note": note}, provenance)


def evaluate_kid(samples: ImageSet, reference: ImageSet, extractor: FeatureExtractor, *, seed: int = 0,
                 subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
                 provenance: Provenance | None = None) -> MetricRecord:
    """KID mean ± std over ``subsets`` random subsets of ``min(subset_size, n)``."""
    value = kid(_features(extractor, samples), _features(extractor, reference), subsets=subsets,
                subset_size=subset_size, seed=seed)
    extra = {"kernel": "(x.y/d + 1)^3", "subsets": subsets, "subset_size": min(subset_size, len(samples),
                                                                              len(reference))}
    return _inception_record("kid", {"kid": value}, samples, reference, extractor, seed, extra, provenance)


def evaluate_pr(samples: ImageSet, reference: ImageSet, extractor: FeatureExtractor, *, seed: int = 0,
                repeats: int = 3, k: int = K_NEIGHBOURS, provenance: Provenance | None = None) -> MetricRecord:
    """Improved precision and recall (k-NN manifolds); spread from random half-samples."""
    result = precision_recall(_features(extractor, reference), _features(extractor, samples), k=k,
                              repeats=repeats, seed=seed)
    estimates = {"precision": result.precision, "recall": result.recall}
    return _inception_record("pr", estimates, samples, reference, extractor, seed, {"k": k}, provenance)


def evaluate_memorization(samples: ImageSet, train: ImageSet, heldout: ImageSet, *,
                          ratio_threshold: float = RATIO_THRESHOLD, distance_threshold: float = DISTANCE_THRESHOLD,
                          show: int = 16, seed: int = 0,
                          provenance: Provenance | None = None) -> tuple[MetricRecord, MemorizationResult]:
    """Likely copies of training images among the samples, and the ``show`` closest cases.

    ``seed`` is only recorded: it is the seed that chose the reference subsets, if any.
    """
    result = memorization(samples.images, train.images, heldout.images, ratio_threshold=ratio_threshold,
                          distance_threshold=distance_threshold)
    n = len(samples)

    def single(value: float) -> Estimate:
        return Estimate(value=float(value), std=float("nan"), repeats=1, spread="none (deterministic)")

    estimates = {"flagged_fraction": single(len(result.flagged) / n), "median_ratio": single(np.median(result.ratio)),
                 "min_ratio": single(result.ratio.min()), "min_d_train": single(result.d_train.min())}
    closest = result.closest(show)
    extra = {
        "rule": f"ratio < {ratio_threshold:.4g} and d_train < {distance_threshold:.4g} (RMS, 16x16, [0,1])",
        "flagged": result.flagged.tolist(), "flagged_nearest_train": result.nearest_train[result.flagged].tolist(),
        "closest": closest.tolist(), "closest_nearest_train": result.nearest_train[closest].tolist(),
        "closest_ratio": result.ratio[closest].round(4).tolist(),
        "closest_d_train": result.d_train[closest].round(5).tolist(),
        "n_train": result.n_train, "n_heldout": result.n_heldout, "heldout": heldout.description,
    }
    record = MetricRecord(metric="memorization", estimates=estimates, n_samples=n, n_reference=len(train),
                          samples=samples.description, reference=f"train: {train.description}", seed=seed,
                          extra=extra, provenance=provenance)
    return record, result
