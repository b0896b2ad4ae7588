"""Class-conditional evaluation: how well images drawn *for* a class show that class, and at what cost in variety.

The images were drawn with intended labels (e.g. balanced: image k for class k mod C). Four views,
the fidelity and diversity axes of ADM's guidance study (Dhariwal & Nichol 2021, arXiv 2105.05233,
§4, Fig. 3 and Table 4):

* **class consistency** (fidelity): the accuracy of a *clean* classifier — a classifier run trained on
  clean images (``config.classifier.noise == "none"``), applied at σ = 0 to the images scaled to
  [−1, 1] — against the intended labels, overall and per class, each with a Wilson 95 % interval
  (:mod:`landiff.metrics.intervals`). The same classifier's accuracy on held-out *real* images of
  each class is the ceiling: a model cannot be judged more consistent than the judge is accurate.
  A noisy classifier (the one that guides) is refused as the judge: guidance climbs its gradient, so
  its own verdict on guided images is biased upwards.
* **per-class SWD**: :func:`landiff.metrics.swd.sliced_wasserstein` of the samples of class c against
  n_c held-out real images of class c, averaged over classes, beside a real-vs-real floor: the next
  n_c real images of the class against the same n_c (where the data have 2·n_c).
* **within-class diversity**: the mean perceptual distance between different samples of a class
  (:func:`landiff.metrics.perceptual.diversity`), divided by the same for n_c real images of the
  class; the ratio is averaged over classes (1 = as varied as the data, below 1 = guidance narrowed it).
* **improved precision / recall** (Kynkäänniemi et al. 2019, arXiv 1904.06991) of all samples
  against the balanced real set, only with Inception weights; otherwise :data:`PR_UNAVAILABLE`.

The real side depends only on the sample protocol (counts per class), so :func:`prepare_reference`
computes it once and :func:`evaluate_classes` is called per set of images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from landiff.errors import UserError
from landiff.grid import check_rgb_uint8, from_uint8
from landiff.metrics.features import FeatureExtractor
from landiff.metrics.intervals import Proportion, wilson
from landiff.metrics.io import LabelledImages
from landiff.metrics.perceptual import diversity
from landiff.metrics.precision_recall import K_NEIGHBOURS, PrecisionRecall, precision_recall
from landiff.metrics.records import Estimate
from landiff.metrics.swd import SWDResult, sliced_wasserstein
from landiff.runs.load import LoadedRun

ClassifierFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``classifier(x (B, C, H, W) in [−1, 1], sigma (B,)) -> logits (B, K)``; σ = 0 for clean images."""

PR_UNAVAILABLE = "unavailable: needs --inception weights"
CONSISTENCY_UNAVAILABLE = "unavailable: needs --clean-classifier (a classifier run trained on clean images, noise none)"
_BATCH = 256


# ------------------------------------------------------------------------------------ the judge
@dataclass(frozen=True)
class CleanClassifier:
    """The classifier that judges class consistency: its network, its class names (label order),
    and what it is, in words (run directory, step, checkpoint SHA-256 prefix)."""

    network: ClassifierFn
    classes: tuple[str, ...]
    description: str
    checkpoint_sha256: str | None = None


def check_class_names(have: Sequence[str], want: Sequence[str], what: str) -> None:
    """Refuses ``what`` (an option and its run) whose class names are not the model's ``want``."""
    if not have:
        raise UserError(f"{what} has no class names (no classes.json); give a run trained on labelled data")
    if set(have) != set(want) or len(have) != len(want):
        raise UserError(f"{what} knows the classes {', '.join(have)} but the model's are {', '.join(want)}; "
                        "give one trained on the same classes (the same data)")


def clean_classifier(loaded: LoadedRun, classes: Sequence[str], flag: str = "--clean-classifier") -> CleanClassifier:
    """The judge of class consistency from a loaded classifier run trained on clean images.

    Raises:
        UserError: not a classifier run; a noisy classifier (``config.classifier.noise`` is not
            ``"none"``); class names that are not ``classes`` (the model's, in any order).
    """
    root = loaded.checkpoint.parent.parent
    if not loaded.is_classifier:
        raise UserError(f"{flag} {root} is not a classifier run; train one on clean images with "
                        "landiff train --model classifier --noise none --data D")
    noise = loaded.config.classifier.noise
    if noise != "none":
        raise UserError(f"{flag} {root} is a noisy classifier (noise {noise!r}), the kind that guides; class consistency "
                        "needs one trained on clean images: landiff train --model classifier --noise none --data D")
    check_class_names(loaded.classes, classes, f"{flag} {root}")
    return CleanClassifier(loaded.ema_model, tuple(loaded.classes), f"{root} step {loaded.state.step} "
                           f"(sha256 {loaded.checkpoint_sha256[:12]})", loaded.checkpoint_sha256)


@torch.no_grad()
def predict(classifier: CleanClassifier, images: np.ndarray, batch: int = _BATCH) -> list[str]:
    """The class name the classifier gives each image (N,): argmax of its logits at σ = 0, images in [−1, 1]."""
    check_rgb_uint8(images, "class consistency")
    parameters = list(getattr(classifier.network, "parameters", lambda: [])())
    device = parameters[0].device if parameters else torch.device("cpu")
    names: list[str] = []
    for start in range(0, len(images), batch):
        chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + batch])).permute(0, 3, 1, 2)
        x = from_uint8(chunk).to(device)
        logits = classifier.network(x, torch.zeros(len(x), device=device))
        names += [classifier.classes[k] for k in logits.argmax(dim=1).tolist()]
    return names


# ------------------------------------------------------------------------------ class consistency
@dataclass(frozen=True)
class ClassAccuracy:
    """Correct / n overall and per class (class order), each with its Wilson 95 % interval."""

    overall: Proportion
    per_class: dict[str, Proportion]

    def to_dict(self) -> dict[str, Any]:
        return {**_proportion(self.overall), "interval": "Wilson 95%",
                "per_class": {name: _proportion(p) for name, p in self.per_class.items()}}


def _proportion(p: Proportion) -> dict[str, Any]:
    return {"value": p.share if p.n else None, "k": p.k, "n": p.n,
            "low": p.low if p.n else None, "high": p.high if p.n else None}


def accuracy(predicted: Sequence[str], intended: Sequence[str], classes: Sequence[str]) -> ClassAccuracy:
    """The share of ``predicted`` names equal to the ``intended`` ones, overall and per intended class."""
    if len(predicted) != len(intended):
        raise ValueError(f"{len(predicted)} predictions for {len(intended)} labels")
    hits = np.array([p == t for p, t in zip(predicted, intended, strict=True)], dtype=bool)
    wanted = np.array(list(intended), dtype=object)
    per_class = {name: wilson(int(hits[wanted == name].sum()), int((wanted == name).sum())) for name in classes}
    return ClassAccuracy(wilson(int(hits.sum()), len(hits)), per_class)


def class_consistency(classifier: CleanClassifier, images: np.ndarray, labels: np.ndarray,
                      classes: Sequence[str]) -> ClassAccuracy:
    """Accuracy of the clean classifier on ``images`` (N, H, W, 3) uint8 against their intended
    ``labels`` (N,) (indices into ``classes``, the model's class names), matched by class name."""
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    return accuracy(predict(classifier, images), [classes[int(k)] for k in labels], classes)


def real_accuracy(classifier: CleanClassifier, real: LabelledImages, classes: Sequence[str]) -> ClassAccuracy:
    """The ceiling: the same classifier on held-out real images of ``classes`` (their true labels)."""
    keep = np.isin(np.array(real.classes, dtype=object)[real.labels], np.array(list(classes), dtype=object))
    truth = [real.classes[int(k)] for k in real.labels[keep]]
    return accuracy(predict(classifier, real.images[keep]), truth, classes)


# ----------------------------------------------------------------------- SWD and diversity per class
def class_subsets(images: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> dict[str, np.ndarray]:
    """The images of each class, in class order (labels (N,) index ``classes``)."""
    return {name: images[labels == k] for k, name in enumerate(classes)}


def per_class_swd(samples: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], *, seed: int = 0,
                  repeats: int = 1) -> dict[str, SWDResult]:
    """SWD ×10³ of each class's samples against that class's real images (first min(n, m) of each)."""
    results = {}
    for name, images in samples.items():
        real = reference[name]
        if min(len(images), len(real)) < 2:
            raise UserError(f"per-class SWD of class {name!r}: {len(images)} samples and {len(real)} real images; "
                            "it needs at least 2 of each (draw more images, e.g. a larger --guidance-n)")
        results[name] = sliced_wasserstein(images, real, seed=seed, repeats=repeats)
    return results


def mean_over_classes(values: Mapping[str, float | None]) -> float | None:
    """The mean of the per-class values, or None when any class lacks one."""
    numbers = list(values.values())
    if not numbers or any(v is None for v in numbers):
        return None
    return float(np.mean([float(v) for v in numbers if v is not None]))


def within_class_diversity(samples: Mapping[str, np.ndarray], seed: int = 0) -> dict[str, float]:
    """Mean perceptual distance between different images of each class (:func:`~landiff.metrics.perceptual.diversity`)."""
    for name, images in samples.items():
        if len(images) < 2:
            raise UserError(f"within-class diversity of class {name!r} needs at least 2 images, got {len(images)}; "
                            "draw more images (e.g. a larger --guidance-n)")
    return {name: diversity(images, seed) for name, images in samples.items()}


# ------------------------------------------------------------------------------- the real side, once
@dataclass(frozen=True)
class ClassReference:
    """The real side of the class metrics for one sample protocol (``counts`` samples per class).

    Attributes:
        classes: the model's class names, label order.
        reference: per class, the first n_c held-out real images (n_c = min(count, available)).
        floor: per class, SWD of the next n_c real images against ``reference`` (None: fewer than 2·n_c).
        swd_floor: the same for the whole balanced set (None unless every class has its floor set).
        diversity: within-class diversity of ``reference``.
        ceiling: the clean classifier's accuracy on every loaded real image of ``classes`` (None without one).
        features: Inception features of the balanced reference (None without weights).
        description: where the real images came from.
    """

    classes: tuple[str, ...]
    reference: dict[str, np.ndarray]
    floor: dict[str, SWDResult | None]
    swd_floor: SWDResult | None
    diversity: dict[str, float]
    ceiling: ClassAccuracy | None
    features: np.ndarray | None
    description: str

    @property
    def balanced(self) -> np.ndarray:
        """Every class's reference images, concatenated in class order."""
        return np.concatenate([self.reference[name] for name in self.classes])

    def to_dict(self) -> dict[str, Any]:
        floors = {name: None if r is None else r.mean for name, r in self.floor.items()}
        return {"description": self.description, "counts": {c: len(x) for c, x in self.reference.items()},
                "ceiling": self.ceiling.to_dict() if self.ceiling else {"unavailable": CONSISTENCY_UNAVAILABLE},
                "class_swd_floor": {"mean": mean_over_classes(floors), "per_class": floors},
                "swd_floor": _swd(self.swd_floor) if self.swd_floor else None,
                "diversity": dict(self.diversity)}


def prepare_reference(real: LabelledImages, counts: Mapping[str, int], *, classifier: CleanClassifier | None,
                      extractor: FeatureExtractor | None, seed: int = 0, repeats: int = 1) -> ClassReference:
    """The real images per class for ``counts`` samples of each class (class order = the model's).

    Raises:
        UserError: a class of the model that the real images lack.
    """
    classes = tuple(counts)
    missing = [name for name in classes if not len(real.of_class(name))]
    if missing:
        raise UserError(f"the real images ({real.description}) have no images of class {', '.join(missing)}; give "
                        "held-out images of the model's classes (--ref DIR/<class>/...)")
    reference: dict[str, np.ndarray] = {}
    floor_sets: dict[str, np.ndarray] = {}  # the next n_c real images of each class that has 2·n_c
    for name in classes:
        images = real.of_class(name)
        n = min(counts[name], len(images))
        reference[name] = images[:n]
        if n >= 2 and len(images) >= 2 * n:
            floor_sets[name] = images[n : 2 * n]
    floor = {name: sliced_wasserstein(floor_sets[name], reference[name], seed=seed, repeats=repeats)
             if name in floor_sets else None for name in classes}
    balanced = np.concatenate([reference[name] for name in classes])
    swd_floor = (sliced_wasserstein(np.concatenate([floor_sets[name] for name in classes]), balanced, seed=seed,
                                    repeats=repeats) if len(floor_sets) == len(classes) else None)
    return ClassReference(classes, reference, floor, swd_floor, within_class_diversity(reference, seed),
                          real_accuracy(classifier, real, classes) if classifier else None,
                          extractor(balanced) if extractor else None, real.description)


# ------------------------------------------------------------------------------------- per set
@dataclass(frozen=True)
class ClassMetrics:
    """Every class metric of one set of images (see the module docstring)."""

    consistency: ClassAccuracy | None
    class_swd: dict[str, SWDResult]
    diversity: dict[str, float]
    diversity_real: dict[str, float]
    swd: SWDResult
    precision_recall: PrecisionRecall | None

    @property
    def class_swd_mean(self) -> float:
        return float(np.mean([r.mean for r in self.class_swd.values()]))

    @property
    def diversity_ratio(self) -> dict[str, float]:
        """Per class: sample diversity / real diversity (1 = as varied as the data)."""
        return {name: self.diversity[name] / self.diversity_real[name] if self.diversity_real[name] > 0 else float("nan")
                for name in self.diversity}

    @property
    def mean_diversity_ratio(self) -> float:
        return float(np.mean(list(self.diversity_ratio.values())))

    def to_dict(self) -> dict[str, Any]:
        pr = self.precision_recall
        return {
            "class_consistency": self.consistency.to_dict() if self.consistency else {"unavailable": CONSISTENCY_UNAVAILABLE},
            "class_swd": {"mean": self.class_swd_mean, "per_class": {c: _swd(r) for c, r in self.class_swd.items()}},
            "diversity": {"ratio": self.mean_diversity_ratio, "per_class": {
                c: {"samples": self.diversity[c], "real": self.diversity_real[c], "ratio": r}
                for c, r in self.diversity_ratio.items()}},
            "swd": _swd(self.swd),
            "precision": _estimate(pr.precision) if pr else {"unavailable": PR_UNAVAILABLE},
            "recall": _estimate(pr.recall) if pr else {"unavailable": PR_UNAVAILABLE},
        }


def evaluate_classes(images: np.ndarray, labels: np.ndarray, reference: ClassReference, *,
                     classifier: CleanClassifier | None, extractor: FeatureExtractor | None, seed: int = 0,
                     repeats: int = 1) -> ClassMetrics:
    """The class metrics of ``images`` (N, H, W, 3) uint8 drawn for ``labels`` (N,) (indices into
    ``reference.classes``) against the real side prepared by :func:`prepare_reference`."""
    check_rgb_uint8(images, "class metrics")
    subsets = class_subsets(images, labels, reference.classes)
    sizes = {name: min(len(x), len(reference.reference[name])) for name, x in subsets.items()}
    subsets = {name: x[: sizes[name]] for name, x in subsets.items()}
    pr = None
    if extractor is not None and reference.features is not None:
        pr = precision_recall(reference.features, extractor(images), k=K_NEIGHBOURS, repeats=repeats, seed=seed)
    return ClassMetrics(
        consistency=class_consistency(classifier, images, labels, reference.classes) if classifier else None,
        class_swd=per_class_swd(subsets, reference.reference, seed=seed, repeats=repeats),
        diversity=within_class_diversity(subsets, seed),
        diversity_real={name: reference.diversity[name] for name in reference.classes},
        swd=sliced_wasserstein(np.concatenate(list(subsets.values())), reference.balanced, seed=seed, repeats=repeats),
        precision_recall=pr,
    )


def _swd(result: SWDResult) -> dict[str, Any]:
    std = result.std if result.repeats > 1 else None
    return {"value": result.mean, "std": std, "n": result.n, "repeats": result.repeats}


def _estimate(estimate: Estimate) -> dict[str, Any]:
    return {"value": estimate.value, "std": estimate.std, "repeats": estimate.repeats, "spread": estimate.spread}


__all__ = [
    "CONSISTENCY_UNAVAILABLE", "PR_UNAVAILABLE", "ClassAccuracy", "ClassMetrics", "ClassReference", "CleanClassifier",
    "ClassifierFn", "accuracy", "check_class_names", "class_consistency", "class_subsets", "clean_classifier",
    "evaluate_classes", "mean_over_classes", "per_class_swd", "predict", "prepare_reference", "real_accuracy",
    "within_class_diversity",
]
