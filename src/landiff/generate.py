"""Images from a loaded run, the same way for both families: image k comes from seed k alone.

Class-conditional runs are sampled with balanced labels by default: image k of the set gets class
k mod C (:func:`balanced_labels`), so every run with the same class list gets the same labels for
the same seeds. Classifier-free guidance (``guidance`` ≠ 1, Ho & Salimans 2022) wraps a conditional
diffusion network as in :func:`landiff.samplers.classifier_free_guidance`. Classifier guidance
(``classifier`` a loaded classifier run and ``classifier_scale`` s > 0; Dhariwal & Nichol 2021,
arXiv 2105.05233 §4, :mod:`landiff.samplers.classifier_guidance`) steers any diffusion run: a
class-conditional one towards the labels it is sampled with, mapped to the classifier's labels by
class *name*; an unconditional one towards the classifier's classes, balanced (k mod K) by default.
:class:`Generated` carries the :class:`~landiff.metrics.provenance.Provenance` of the images, which
keys on the classifier's checkpoint and s as well.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from landiff.errors import UserError
from landiff.grid import to_uint8
from landiff.metrics.provenance import Provenance, provenance_for, sampling_precision
from landiff.nets.dcgan import latents
from landiff.runs.load import LoadedRun
from landiff.samplers import (
    DEFAULT_ETA,
    DEFAULT_SAMPLER,
    DEFAULT_SPACING,
    DEFAULT_STEPS,
    KARRAS_RHO,
    Churn,
    ClassifierGuidance,
    classifier_free_guidance,
    network_evaluations,
    resolve_sampling_precision,
    sample,
)

Labels = torch.Tensor | Literal["balanced"] | None


@dataclass
class Generated:
    """uint8 images (N, H, W, 3), wall-clock seconds per image, network evaluations per image, and
    what made them (``provenance``).

    ``nfe`` counts the diffusion (or GAN) network's passes per image: classifier-free guidance's
    doubled batch counts twice. ``classifier_evaluations`` counts classifier gradients per image
    (one forward and one backward pass of the classifier each), kept apart because the classifier is
    another, usually smaller, network: one per sampler step that calls the denoiser, i.e.
    ``network_evaluations(sampler, steps)``, and 0 unguided.
    """

    images: np.ndarray
    seconds_per_image: float
    nfe: int
    provenance: Provenance
    classifier_evaluations: int = 0


def balanced_labels(loaded: LoadedRun, n: int) -> torch.Tensor | None:
    """Class k mod C for image k (C = the run's classes); None for an unconditional run."""
    classes = loaded.num_classes
    return torch.arange(n, dtype=torch.long) % classes if classes else None


def default_steps(sampler: str) -> int:
    """The step count a sampler runs when none is asked for (``landiff sample`` and :class:`~landiff.pipeline.Pipeline`):
    :data:`~landiff.samplers.DEFAULT_STEPS`, but 250 for ``ddpm``, whose ancestral steps need many more (Improved DDPM)."""
    return 250 if sampler == "ddpm" else DEFAULT_STEPS


def class_labels(loaded: LoadedRun, class_name: str | None, n: int, device: torch.device | str | None = None, *,
                 flag: str = "--class") -> torch.Tensor | None:
    """The labels of ``n`` images of a class-conditional run named by ``class_name``: a class name (every image
    that class), ``"all"`` (image k gets class k mod C) or None (no labels).

    Raises:
        UserError: a name for an unconditional run, or one the run does not have (``flag`` names the option).
    """
    num_classes = loaded.num_classes
    if class_name is None:
        return None
    if num_classes == 0:
        raise UserError(f"{flag} needs a class-conditional run (trained with --class-cond)")
    if class_name == "all":
        return torch.arange(n, device=device) % num_classes
    names = loaded.classes or [str(k) for k in range(num_classes)]
    if class_name not in names:
        raise UserError(f"{flag} {class_name!r} is not a class of this run; choose one of: {', '.join(names)}, all")
    return torch.full((n,), names.index(class_name), device=device, dtype=torch.long)


def _resolve_labels(loaded: LoadedRun, labels: Labels, n: int) -> torch.Tensor | None:
    if isinstance(labels, str):
        if labels != "balanced":
            raise ValueError(f"labels must be a tensor, None or 'balanced', got {labels!r}")
        return balanced_labels(loaded, n)
    if labels is None and loaded.is_gan and loaded.num_classes:
        raise UserError("this GAN is class-conditional: it needs class labels (sample it with balanced labels)")
    if labels is not None and loaded.num_classes == 0:
        raise UserError("class labels were given for an unconditional run; sample it without labels")
    return labels


def classifier_classes(classifier: LoadedRun) -> list[str]:
    """The class names of a loaded classifier run, index k = label k (refuses a run without them)."""
    names = list(getattr(classifier, "classes", None) or [])
    if not names:
        raise UserError(f"the classifier run {getattr(classifier, 'checkpoint', '')} has no class names (classes.json); "
                        "retrain it with `landiff train --model classifier` on a labelled data set")
    return names


def check_classifier(loaded: LoadedRun, classifier: LoadedRun | None, scale: float) -> None:
    """Refuses a classifier guidance setting that cannot apply (each one line naming the fix)."""
    if not (math.isfinite(scale) and scale >= 0):
        raise UserError(f"--classifier-scale must be a finite number >= 0 (0 = unguided), got {scale}")
    if classifier is None:
        if scale != 0:
            raise UserError("--classifier-scale needs a classifier: add --classifier RUN (a run trained with "
                            "`landiff train --model classifier`) or drop --classifier-scale")
        return
    if not getattr(classifier, "is_classifier", False):
        raise UserError(f"--classifier {classifier.checkpoint} is not a classifier run; pass a run trained with "
                        "`landiff train --model classifier`")
    if loaded.diffusion is None:
        raise UserError("--classifier guides diffusion sampling; a GAN run has none: drop --classifier and --classifier-scale")


def to_classifier_labels(loaded: LoadedRun, classifier: LoadedRun, labels: torch.Tensor) -> torch.Tensor:
    """A class-conditional run's labels (N,) as the classifier's label indices, matched by class name.

    Raises:
        UserError: a class of the run (among ``labels``) that the classifier does not know.
    """
    names = loaded.classes or [str(k) for k in range(loaded.num_classes)]
    index = {name: k for k, name in enumerate(classifier_classes(classifier))}
    for value in sorted(set(labels.tolist())):
        if names[value] not in index:
            raise UserError(f"class {names[value]!r} of the diffusion run is not a class of the classifier "
                            f"(it knows: {', '.join(index)}); pick a --class both know, or a classifier trained on these classes")
    return torch.tensor([index[names[v]] for v in labels.tolist()], dtype=torch.long, device=labels.device)


def classifier_class_labels(classifier: LoadedRun, class_name: str | None, n: int, *, flag: str = "--class") -> torch.Tensor:
    """Labels to guide an unconditional run towards: the classifier's classes k mod K for image k
    (``class_name`` None or ``"all"``), or every image the one named class (``flag``: the option the message names)."""
    names = classifier_classes(classifier)
    if class_name is None or class_name == "all":
        return torch.arange(n, dtype=torch.long) % len(names)
    if class_name not in names:
        raise UserError(f"{flag} {class_name!r} is not a class of the classifier; choose one of: {', '.join(names)}, all")
    return torch.full((n,), names.index(class_name), dtype=torch.long)


def _classifier_targets(classifier: LoadedRun, labels: Labels, n: int) -> torch.Tensor:
    """An unconditional run's guidance targets: ``"balanced"`` over the classifier's classes, or its label indices."""
    if isinstance(labels, str):
        if labels != "balanced":
            raise ValueError(f"labels must be a tensor, None or 'balanced', got {labels!r}")
        return classifier_class_labels(classifier, None, n)
    if labels is None:
        raise UserError("classifier guidance needs classes to guide towards: balanced labels or one class (--class)")
    count = len(classifier_classes(classifier))
    if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < count:
        raise UserError(f"the classifier's labels lie in 0..{count - 1}, got {labels.min()}..{labels.max()}")
    return labels.long()


def _resolve_targets(loaded: LoadedRun, labels: Labels, n: int, classifier: LoadedRun | None,
                     scale: float) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(the model's labels, the classifier's labels) of ``n`` images."""
    check_classifier(loaded, classifier, scale)
    if classifier is None:
        return _resolve_labels(loaded, labels, n), None
    if loaded.num_classes == 0:  # the labels name the classifier's classes
        return None, _classifier_targets(classifier, labels, n)
    model_labels = _resolve_labels(loaded, labels, n)
    if model_labels is None:
        raise UserError("classifier guidance of a class-conditional run needs its class labels: give --class NAME or all")
    return model_labels, to_classifier_labels(loaded, classifier, model_labels)


def generation_provenance(loaded: LoadedRun, seeds: Sequence[int], *, sampler: str = DEFAULT_SAMPLER, steps: int = DEFAULT_STEPS,
                          labels: Labels = "balanced", use_ema: bool = True, guidance: float = 1.0,
                          precision: str = "auto", classifier: LoadedRun | None = None,
                          classifier_scale: float = 0.0) -> Provenance:
    """The provenance :func:`generate` records for these arguments, without drawing anything (cache keys)."""
    resolved, targets = _resolve_targets(loaded, labels, len(seeds), classifier, classifier_scale)
    model = loaded.ema_model if use_ema else loaded.model
    contiguous = list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))) if len(seeds) else False
    params: dict = {} if loaded.diffusion is None else {"spacing": DEFAULT_SPACING[sampler],
                                                        "eta": DEFAULT_ETA.get(sampler, 0.0), "clip_denoised": True}
    if sampler == "heun":  # generate() draws with EDM's deterministic Heun on the karras levels
        params.update(rho=KARRAS_RHO, churn=dataclasses.asdict(Churn()))
    return provenance_for(loaded, use_ema=use_ema, sampler=sampler, steps=steps, params=params,
                          precision=sampling_precision(model, _autocast(loaded, model, precision)), guidance_scale=guidance,
                          labels=None if resolved is None else resolved.tolist(),
                          seed=seeds[0] if contiguous else None, classifier=classifier, classifier_scale=classifier_scale,
                          classifier_labels=None if targets is None else targets.tolist())


@torch.no_grad()
def generate(
    loaded: LoadedRun,
    seeds: Sequence[int],
    *,
    sampler: str = DEFAULT_SAMPLER,
    steps: int = DEFAULT_STEPS,
    batch: int = 64,
    labels: Labels = "balanced",
    use_ema: bool = True,
    guidance: float = 1.0,
    precision: str = "auto",
    classifier: LoadedRun | None = None,
    classifier_scale: float = 0.0,
) -> Generated:
    """Samples one image per seed: the diffusion sampler of choice, or G(z(seed), y) for a GAN run.

    Args:
        labels: (N,) class labels, ``"balanced"`` (:func:`balanced_labels`; nothing for an
            unconditional run) or None (a conditional diffusion model then samples its null label).
            With a ``classifier`` and an unconditional run they are the classifier's labels
            (``"balanced"``: its classes k mod K).
        guidance: classifier-free guidance scale w for conditional diffusion runs (1 = plain
            conditional, what the model was trained for).
        precision: ``auto`` (bf16 autocast where the device has native bf16), ``fp32`` or ``bf16``;
            diffusion runs only (a GAN draws in one fp32 pass).
        classifier, classifier_scale: a loaded classifier run (``is_classifier``) and its guidance
            scale s ≥ 0 (0: the unguided images, bit for bit); diffusion runs only.
    """
    resolved, targets = _resolve_targets(loaded, labels, len(seeds), classifier, classifier_scale)
    provenance = generation_provenance(loaded, seeds, sampler=sampler, steps=steps, labels=labels, use_ema=use_ema,
                                       guidance=guidance, precision=precision, classifier=classifier,
                                       classifier_scale=classifier_scale)
    net = loaded.ema_model if use_ema else loaded.model
    model: Callable[..., torch.Tensor] = net
    if guidance != 1.0:
        if loaded.diffusion is None or resolved is None:
            raise UserError("--guidance needs a class-conditional diffusion run sampled with class labels; use 1")
        model = classifier_free_guidance(net, guidance, null_label=loaded.config.net.num_classes)
    device = next(loaded.ema_model.parameters()).device
    steer = ClassifierGuidance(classifier.ema_model, classifier_scale, targets.to(device)) \
        if classifier is not None and targets is not None and classifier_scale > 0 else None
    chunks = []
    start_time = time.perf_counter()
    for start in range(0, len(seeds), batch):
        chunk = list(seeds[start : start + batch])
        y = None if resolved is None else resolved[start : start + len(chunk)].to(device)
        if loaded.diffusion is None:
            x = model(latents(chunk, loaded.config.gan.z_dim, device), y)
        else:
            shape = (loaded.config.net.in_channels, loaded.config.resolution, loaded.config.resolution)
            x = sample(model, loaded.diffusion, shape, chunk, sampler=sampler, steps=steps,  # type: ignore[arg-type]
                       model_kwargs=None if y is None else {"y": y}, device=device, precision=precision,  # type: ignore[arg-type]
                       classifier_guidance=None if steer is None else steer.for_batch(start, start + len(chunk)))
        chunks.append(to_uint8(x))
    seconds = (time.perf_counter() - start_time) / max(1, len(seeds))
    evaluations = network_evaluations(sampler, steps)
    return Generated(images=np.concatenate(chunks), seconds_per_image=seconds,
                     nfe=1 if loaded.diffusion is None else evaluations * (2 if guidance != 1.0 else 1),
                     provenance=provenance, classifier_evaluations=0 if steer is None else evaluations)


def _autocast(loaded: LoadedRun, model: torch.nn.Module, precision: str) -> str:
    """The resolved autocast precision a diffusion run samples with (a GAN: always fp32)."""
    if loaded.diffusion is None:
        return "fp32"
    return resolve_sampling_precision(precision, next(model.parameters()).device)
