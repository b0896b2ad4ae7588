"""Images from a loaded run, the same way for both families: image k comes from seed k alone."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from landiff.grid import to_uint8
from landiff.samplers import sample
from landiff.train.run import LoadedRun


@dataclass
class Generated:
    """uint8 images (N, H, W, 3), wall-clock seconds per image and network evaluations per image."""

    images: np.ndarray
    seconds_per_image: float
    nfe: int


@torch.no_grad()
def generate(
    loaded: LoadedRun,
    seeds: Sequence[int],
    *,
    sampler: str = "dpm++",
    steps: int = 20,
    batch: int = 64,
    labels: torch.Tensor | None = None,
    use_ema: bool = True,
) -> Generated:
    """Samples one image per seed: the diffusion sampler of choice, or G(z(seed)) for a GAN run."""
    model = loaded.ema_model if use_ema else loaded.model
    device = next(model.parameters()).device
    chunks = []
    start_time = time.perf_counter()
    for start in range(0, len(seeds), batch):
        chunk = list(seeds[start : start + batch])
        y = None if labels is None else labels[start : start + len(chunk)].to(device)
        if loaded.diffusion is None:
            from landiff.nets.dcgan import latents

            x = model(latents(chunk, loaded.config.gan.z_dim, device), y)
        else:
            shape = (loaded.config.net.in_channels, loaded.config.resolution, loaded.config.resolution)
            x = sample(model, loaded.diffusion, shape, chunk, sampler=sampler, steps=steps,  # type: ignore[arg-type]
                       model_kwargs=None if y is None else {"y": y}, device=device)
        chunks.append(to_uint8(x))
    seconds = (time.perf_counter() - start_time) / max(1, len(seeds))
    return Generated(images=np.concatenate(chunks), seconds_per_image=seconds,
                     nfe=1 if loaded.diffusion is None else steps)
