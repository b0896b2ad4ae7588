"""The entrants of ``budget_race.py``: each trains in stages on the same landscape stream and samples.

An entrant keeps its own clock: ``train_until(s)`` trains until ``s`` seconds of training have been
spent in total, so evaluation between stages is not charged to it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

ENTRANTS = ("landiff", "dcgan", "denoising-diffusion-pytorch", "diffusers")
DATA_SEED = 0
SYNTHETIC_N = 50_000


class Entrant(Protocol):
    name: str
    seconds: float
    images_seen: int

    def train_until(self, seconds: float) -> None: ...

    def sample(self, seeds: list[int]) -> np.ndarray: ...


def make_entrant(name: str, resolution: int, out: Path, *, quick: bool, anchor_steps: int, minutes: float) -> Entrant:
    if name in ("landiff", "dcgan"):
        return LandiffEntrant(name, resolution, out, quick, minutes)
    if name == "denoising-diffusion-pytorch":
        return DdpmPytorchEntrant(resolution, quick, anchor_steps)
    if name == "diffusers":
        return DiffusersEntrant(resolution, quick, anchor_steps)
    raise SystemExit(f"unknown entrant {name!r}; choose from {', '.join(ENTRANTS)}")


def to_uint8_hwc(x: torch.Tensor, low: float) -> np.ndarray:
    """(B, 3, H, W) floats in [low, 1] → uint8 (B, H, W, 3)."""
    x = (x.float().clamp(low, 1) - low) / (1 - low)
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class LandiffEntrant:
    """``landiff train`` with the demo's recipes; every stage is a resume with a larger budget. A
    decaying LR (the tiny recipe's cosine) is given the whole race (``minutes``) as its horizon, as a
    user's ``landiff train --minutes`` would, so the curve's points lie along one schedule."""

    def __init__(self, name: str, resolution: int, out: Path, quick: bool, minutes: float) -> None:
        from landiff.workflows.pairing import diffusion_recipe, gan_recipe

        self.name, self.run_dir = name, out
        make = diffusion_recipe if name == "landiff" else gan_recipe
        self.config = make("synthetic", resolution, 0.0)
        if self.config.optim.decay != "none":
            self.config = dataclasses.replace(self.config, optim=dataclasses.replace(
                self.config.optim, decay_steps=self.config.train_steps, decay_minutes=minutes))
        if quick:
            self.config = dataclasses.replace(self.config, optim=dataclasses.replace(self.config.optim, batch=4),
                                              preview_count=0)
        self.seconds, self.images_seen = 0.0, 0

    def train_until(self, seconds: float) -> None:
        from landiff.train import train

        train(dataclasses.replace(self.config, max_minutes=seconds / 60), self.run_dir, log=lambda _: None)
        run = self._load()
        self.seconds, self.images_seen = run.state.seconds, run.state.images_seen

    def _load(self):
        from landiff.train import load_run

        return load_run(self.run_dir, device="cpu")

    def sample(self, seeds: list[int]) -> np.ndarray:
        from landiff.generate import generate

        return generate(self._load(), seeds).images


def landscape_batches(resolution: int, batch: int) -> Iterator[torch.Tensor]:
    """The same training stream landiff reads (uint8 (B, 3, H, W)), as floats in [0, 1]."""
    from landiff.data import open_dataset
    from landiff.train.data_stream import batch_stream

    dataset = open_dataset("synthetic", resolution, seed=DATA_SEED, synthetic_n=SYNTHETIC_N)
    for chunk in batch_stream(dataset, batch, DATA_SEED, start=0):
        yield chunk.images.float() / 255


class Clock:
    """Training seconds, counted only inside ``train_until``."""

    def __init__(self) -> None:
        self.seconds, self.images_seen = 0.0, 0

    def run(self, seconds: float, step) -> None:
        start = time.monotonic()
        base = self.seconds
        while self.seconds < seconds:
            self.images_seen += step()
            self.seconds = base + time.monotonic() - start


class DdpmPytorchEntrant(Clock):
    """denoising-diffusion-pytorch's README recipe (see budget_race.py), with its Trainer's optimiser."""

    name = "denoising-diffusion-pytorch"

    def __init__(self, resolution: int, quick: bool, steps: int) -> None:
        super().__init__()
        from anchors import ddpm_pytorch_unet

        ddpm_pytorch_unet(8)  # registers the torchvision stand-in where needed
        from denoising_diffusion_pytorch import GaussianDiffusion, Unet
        from ema_pytorch import EMA

        torch.manual_seed(0)
        unet = Unet(dim=8 if quick else 64, dim_mults=(1, 2, 4, 8), flash_attn=True)
        self.diffusion = GaussianDiffusion(unet, image_size=resolution, timesteps=1000, sampling_timesteps=steps)
        self.optimizer = torch.optim.Adam(self.diffusion.parameters(), lr=8e-5, betas=(0.9, 0.99))
        self.ema = EMA(self.diffusion, beta=0.995, update_every=10)
        self.batch, self.accumulate = (4, 2) if quick else (32, 2)
        self.data = landscape_batches(resolution, self.batch)

    def _step(self) -> int:
        for _ in range(self.accumulate):
            (self.diffusion(next(self.data)) / self.accumulate).backward()
        torch.nn.utils.clip_grad_norm_(self.diffusion.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.ema.update()
        return self.batch * self.accumulate

    def train_until(self, seconds: float) -> None:
        self.diffusion.train()
        self.run(seconds, self._step)

    @torch.no_grad()
    def sample(self, seeds: list[int]) -> np.ndarray:
        model = self.ema.ema_model.eval()
        chunks = []
        for start in range(0, len(seeds), 64):
            torch.manual_seed(seeds[start])  # its sampler draws from the global RNG
            chunks.append(to_uint8_hwc(model.sample(batch_size=len(seeds[start : start + 64])), 0.0))
        return np.concatenate(chunks)


class DiffusersEntrant(Clock):
    """diffusers' unconditional-training example recipe (see budget_race.py)."""

    name = "diffusers"

    def __init__(self, resolution: int, quick: bool, steps: int) -> None:
        super().__init__()
        from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
        from diffusers.optimization import get_cosine_schedule_with_warmup
        from diffusers.training_utils import EMAModel

        torch.manual_seed(0)
        widths = (16, 16, 32, 32, 64, 64) if quick else (128, 128, 256, 256, 512, 512)
        self.unet = UNet2DModel(
            sample_size=resolution, layers_per_block=2, block_out_channels=widths,
            down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4,
            norm_num_groups=16 if quick else 32,
        )
        self.scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
        self.sampler = DDIMScheduler.from_config(self.scheduler.config)
        self.steps = steps
        self.optimizer = torch.optim.AdamW(self.unet.parameters(), lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6, eps=1e-8)
        # The example's horizon is 100 epochs; over minutes only the warm-up and the top of the cosine matter.
        total = 100 * math.ceil(SYNTHETIC_N / 16)
        self.lr = get_cosine_schedule_with_warmup(self.optimizer, num_warmup_steps=500, num_training_steps=total)
        self.ema = EMAModel(self.unet.parameters(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=0.75)
        self.batch = 4 if quick else 16
        self.data = landscape_batches(resolution, self.batch)
        self.noise = torch.Generator().manual_seed(0)

    def _step(self) -> int:
        x0 = next(self.data) * 2 - 1
        noise = torch.randn(x0.shape, generator=self.noise)
        t = torch.randint(0, 1000, (x0.shape[0],), generator=self.noise)
        pred = self.unet(self.scheduler.add_noise(x0, noise, t), t).sample
        torch.nn.functional.mse_loss(pred.float(), noise).backward()
        torch.nn.utils.clip_grad_norm_(self.unet.parameters(), 1.0)
        self.optimizer.step()
        self.lr.step()
        self.optimizer.zero_grad()
        self.ema.step(self.unet.parameters())
        return self.batch

    def train_until(self, seconds: float) -> None:
        self.unet.train()
        self.run(seconds, self._step)

    @torch.no_grad()
    def sample(self, seeds: list[int]) -> np.ndarray:
        self.ema.store(self.unet.parameters())
        self.ema.copy_to(self.unet.parameters())
        self.unet.eval()
        self.sampler.set_timesteps(self.steps)
        chunks = []
        size = self.unet.config.sample_size
        for start in range(0, len(seeds), 64):
            part = seeds[start : start + 64]
            x = torch.stack([torch.randn(3, size, size, generator=torch.Generator().manual_seed(s)) for s in part])
            for t in self.sampler.timesteps:
                x = self.sampler.step(self.unet(x, t).sample, t, x, eta=0.0).prev_sample
            chunks.append(to_uint8_hwc(x, -1.0))
        self.ema.restore(self.unet.parameters())
        return np.concatenate(chunks)
