"""Fréchet Inception Distance (FID) and Kernel Inception Distance (KID) on feature sets.

FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule", eq. 6): the Fréchet
(2-Wasserstein) distance between Gaussians fitted to the two feature sets,

    d² = ‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½).

KID (Bińkowski et al. 2018, "Demystifying MMD GANs", §4 / eq. 5): the unbiased estimate of the
squared MMD with the cubic polynomial kernel k(x, y) = (x·y / d + 1)³, averaged over random
subsets. Unlike FID it has no bias in the sample count, so it is the one to trust at small n.

Both take features (any extractor); :func:`frechet_inception_distance` and
:func:`kernel_inception_distance` run an extractor on images first. All statistics in float64.
"""

from __future__ import annotations

import numpy as np

from landiff.errors import UserError
from landiff.metrics.features import FeatureExtractor
from landiff.metrics.records import Estimate, mean_std
from landiff.metrics.resampling import half_sample_spread

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise UserError(f"FID needs at least 2 feature vectors (N, D), got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix by eigen-decomposition (negative rounding → 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """Tr((Σ_a Σ_b)^½) without a general (complex) matrix square root.

    With X = Σ_a^½ and Y = Σ_a^½ Σ_b: Σ_a Σ_b = XY and Σ_a^½ Σ_b Σ_a^½ = YX, and XY, YX share
    their non-zero eigenvalues (even for singular Σ_a, e.g. n < d). YX is symmetric PSD, so
    the trace is Σ √λ_i over its eigenvalues λ_i ≥ 0 — real by construction, where
    scipy.linalg.sqrtm of the product returns small imaginary parts that must be dropped.
    """
    root_a = _sqrt_psd(cov_a)
    values = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    return float(np.sqrt(np.clip(values, 0.0, None)).sum())


def frechet_distance(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray) -> float:
    """Squared Fréchet distance between N(μ_a, Σ_a) and N(μ_b, Σ_b) (Heusel et al. eq. 6).

    Args:
        mu_a, mu_b: (D,) means; cov_a, cov_b: (D, D) covariances.
    """
    diff = np.asarray(mu_a, dtype=np.float64) - np.asarray(mu_b, dtype=np.float64)
    trace = float(np.trace(cov_a) + np.trace(cov_b)) - 2.0 * trace_sqrt_product(cov_a, cov_b)
    return float(diff @ diff + trace)


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets (N, D) and (M, D)."""
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))


def fid(features_a: np.ndarray, features_b: np.ndarray, *, repeats: int = 1, seed: int = 0) -> Estimate:
    """FID on the full sets, with the std over ``repeats`` random half-samples as its spread.

    FID is biased upwards at small n (≈ Tr terms of the covariance estimate): compare numbers
    only at equal sample counts, and prefer KID below a few thousand images (Bińkowski et al. 2018, arXiv 1801.01401, §4).
    """
    full = fid_from_features(features_a, features_b)
    return half_sample_spread(fid_from_features, features_a, features_b, repeats=repeats, seed=seed, full_value=full)


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with k(x, y) = (x·y/d + 1)³ between two (m, d) float64 samples.

    MMD²_u = Σ_{i≠j} [k(x_i,x_j) + k(y_i,y_j)] / (m(m−1)) − 2 Σ_{i,j} k(x_i,y_j) / m²  (Bińkowski eq. 5
    with equal sizes; Gretton et al. 2012, Lemma 6).
    """
    m, d = x.shape

    def kernel(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return (u @ v.T / d + 1.0) ** 3

    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kid(features_a: np.ndarray, features_b: np.ndarray, *, subsets: int = KID_SUBSETS,
        subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> Estimate:
    """KID: mean ± std of the unbiased MMD² over ``subsets`` random subsets.

    Each subset draws ``min(subset_size, N, M)`` vectors from each set without replacement
    (stream ``(seed, s)``), as in Bińkowski et al.'s reference code. Values can be slightly
    negative when the sets match (the estimator is unbiased).
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    m = min(subset_size, len(a), len(b))
    if m < 2 or subsets < 1:
        raise UserError(f"KID needs >= 2 vectors per set and >= 1 subset, got {len(a)}, {len(b)} and {subsets}")
    values = []
    for s in range(subsets):
        rng = np.random.default_rng([seed, s])
        values.append(mmd2_unbiased(a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)]))
    # With m = N = M every subset is the whole set reordered: the std is then 0, not a spread.
    note = " (= all vectors: no spread; use a smaller subset size)" if m == len(a) == len(b) else ""
    return mean_std(values, spread=f"std over {subsets} subsets of {m}{note}")


def frechet_inception_distance(images_a: np.ndarray, images_b: np.ndarray, extractor: FeatureExtractor, *,
                               repeats: int = 1, seed: int = 0) -> Estimate:
    """FID between two image sets (N, H, W, 3) uint8 through ``extractor`` (Inception or a stub)."""
    return fid(extractor(images_a), extractor(images_b), repeats=repeats, seed=seed)


def kernel_inception_distance(images_a: np.ndarray, images_b: np.ndarray, extractor: FeatureExtractor, *,
                              subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
                              seed: int = 0) -> Estimate:
    """KID between two image sets (N, H, W, 3) uint8 through ``extractor`` (Inception or a stub)."""
    return kid(extractor(images_a), extractor(images_b), subsets=subsets, subset_size=subset_size, seed=seed)
