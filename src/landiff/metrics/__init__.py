"""Evaluation metrics, computed from sample files or runs — never inside the trainer.

==========================  =====================================================================
metric                      module
==========================  =====================================================================
SWD (ProGAN, App. D)        :mod:`landiff.metrics.swd` — Laplacian-pyramid 7×7 patches, ×10³
FID (Heusel et al. 2017)    :mod:`landiff.metrics.fid` — Fréchet distance of Gaussian fits
KID (Bińkowski et al. 2018) :mod:`landiff.metrics.fid` — unbiased MMD², cubic kernel, 100 subsets
precision / recall          :mod:`landiff.metrics.precision_recall` — Kynkäänniemi et al. 2019, k = 3
memorisation                :mod:`landiff.metrics.memorization` — nearest training vs held-out image
class consistency et al.    :mod:`landiff.metrics.class_metrics` — clean-classifier accuracy, per-class SWD,
                            within-class diversity, of images drawn for intended labels
perceptual distance         :mod:`landiff.metrics.perceptual` — Laplacian pyramid at 16 px; set diversity
Inception features          :mod:`landiff.metrics.features` — user-supplied weights, fixed resize
==========================  =====================================================================

Command line::

    landiff eval swd --samples runs/tiny/samples/dpm++-20 --ref synthetic --n 512 --repeats 3
    landiff eval fid --run runs/tiny --ref synthetic --inception pt_inception-2015-12-05.safetensors
    landiff eval memorization --run runs/tiny --train synthetic --heldout synthetic

Every result records its sample count, reference set, seed and (Inception metrics) resize path;
with ``--run`` one JSON line is appended to ``RUN/metrics-<name>.jsonl``.
"""

from landiff.metrics.features import (
    RESIZE_PATH,
    FeatureExtractor,
    InceptionFeatures,
    InceptionUnavailable,
    find_inception_weights,
    import_inception,
    load_inception,
    unavailable_message,
)
from landiff.metrics.fid import (
    fid,
    fid_from_features,
    frechet_distance,
    frechet_inception_distance,
    gaussian_stats,
    kernel_inception_distance,
    kid,
    mmd2_unbiased,
)
from landiff.metrics.inception import FIDInceptionV3
from landiff.metrics.io import ImageSet, latest_samples, load_reference, load_samples
from landiff.metrics.memorization import MemorizationResult, memorization
from landiff.metrics.precision_recall import PrecisionRecall, improved_precision_recall, precision_recall
from landiff.metrics.records import Estimate, MetricRecord, append_record
from landiff.metrics.swd import SWDResult, sliced_distance, sliced_wasserstein

__all__ = [
    "RESIZE_PATH",
    "Estimate",
    "FIDInceptionV3",
    "FeatureExtractor",
    "ImageSet",
    "InceptionFeatures",
    "InceptionUnavailable",
    "MemorizationResult",
    "MetricRecord",
    "PrecisionRecall",
    "SWDResult",
    "append_record",
    "fid",
    "fid_from_features",
    "find_inception_weights",
    "frechet_distance",
    "frechet_inception_distance",
    "gaussian_stats",
    "import_inception",
    "improved_precision_recall",
    "kernel_inception_distance",
    "kid",
    "latest_samples",
    "load_inception",
    "load_reference",
    "load_samples",
    "memorization",
    "mmd2_unbiased",
    "precision_recall",
    "sliced_distance",
    "sliced_wasserstein",
    "unavailable_message",
]
