"""Images from a loaded run, the same way for both families: image k comes from seed k alone.

Class-conditional runs are sampled with balanced labels by default: image k of the set gets class
k mod C (:func:`balanced_labels`), so every run with the same class list gets the same labels for
the same seeds. Classifier-free guidance (``guidance`` ≠ 1, Ho & Salimans 2022) wraps a conditional
diffusion network as in :func:`landiff.samplers.classifier_free_guidance`. :class:`Generated`
carries the :class:`~landiff.metrics.provenance.Provenance` of the images.
"""

from __future__ import annotations

import dataclasses
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
    classifier_free_guidance,
    network_evaluations,
    resolve_sampling_precision,
    sample,
)

Labels = torch.Tensor | Literal["balanced"] | None


@dataclass
class Generated:
    """uint8 images (N, H, W, 3), wall-clock seconds per image, network evaluations per image, and
    what made them (``provenance``)."""

    images: np.ndarray
    seconds_per_image: float
    nfe: int
    provenance: Provenance


def balanced_labels(loaded: LoadedRun, n: int) -> torch.Tensor | None:
    """Class k mod C for image k (C = the run's classes); None for an unconditional run."""
    classes = loaded.num_classes
    return torch.arange(n, dtype=torch.long) % classes if classes else None


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


def generation_provenance(loaded: LoadedRun, seeds: Sequence[int], *, sampler: str = DEFAULT_SAMPLER, steps: int = DEFAULT_STEPS,
                          labels: Labels = "balanced", use_ema: bool = True, guidance: float = 1.0,
                          precision: str = "auto") -> Provenance:
    """The provenance :func:`generate` records for these arguments, without drawing anything (cache keys)."""
    resolved = _resolve_labels(loaded, labels, len(seeds))
    model = loaded.ema_model if use_ema else loaded.model
    contiguous = list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))) if len(seeds) else False
    params: dict = {} if loaded.diffusion is None else {"spacing": DEFAULT_SPACING[sampler],
                                                        "eta": DEFAULT_ETA.get(sampler, 0.0), "clip_denoised": True}
    if sampler == "heun":  # generate() draws with EDM's deterministic Heun on the karras levels
        params.update(rho=KARRAS_RHO, churn=dataclasses.asdict(Churn()))
    return provenance_for(loaded, use_ema=use_ema, sampler=sampler, steps=steps, params=params,
                          precision=sampling_precision(model, _autocast(loaded, model, precision)), guidance_scale=guidance,
                          labels=None if resolved is None else resolved.tolist(),
                          seed=seeds[0] if contiguous else None)


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
) -> Generated:
    """Samples one image per seed: the diffusion sampler of choice, or G(z(seed), y) for a GAN run.

    Args:
        labels: (N,) class labels, ``"balanced"`` (:func:`balanced_labels`; nothing for an
            unconditional run) or None (a conditional diffusion model then samples its null label).
        guidance: classifier-free guidance scale w for conditional diffusion runs (1 = plain
            conditional, what the model was trained for).
        precision: ``auto`` (bf16 autocast where the device has native bf16), ``fp32`` or ``bf16``;
            diffusion runs only (a GAN draws in one fp32 pass).
    """
    resolved = _resolve_labels(loaded, labels, len(seeds))
    provenance = generation_provenance(loaded, seeds, sampler=sampler, steps=steps, labels=resolved,
                                       use_ema=use_ema, guidance=guidance, precision=precision)
    net = loaded.ema_model if use_ema else loaded.model
    model: Callable[..., torch.Tensor] = net
    if guidance != 1.0:
        if loaded.diffusion is None or resolved is None:
            raise UserError("--guidance needs a class-conditional diffusion run sampled with class labels; use 1")
        model = classifier_free_guidance(net, guidance, null_label=loaded.config.net.num_classes)
    device = next(loaded.ema_model.parameters()).device
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
                       model_kwargs=None if y is None else {"y": y}, device=device, precision=precision)  # type: ignore[arg-type]
        chunks.append(to_uint8(x))
    seconds = (time.perf_counter() - start_time) / max(1, len(seeds))
    return Generated(images=np.concatenate(chunks), seconds_per_image=seconds,
                     nfe=1 if loaded.diffusion is None else network_evaluations(sampler, steps) * (2 if guidance != 1.0 else 1),
                     provenance=provenance)


def _autocast(loaded: LoadedRun, model: torch.nn.Module, precision: str) -> str:
    """The resolved autocast precision a diffusion run samples with (a GAN: always fp32)."""
    if loaded.diffusion is None:
        return "fp32"
    return resolve_sampling_precision(precision, next(model.parameters()).device)
