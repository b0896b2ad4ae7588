"""Building the pieces of a run from its config, and moving their state in and out of checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from landiff import __version__
from landiff.diffusion import GaussianDiffusion, beta_schedule
from landiff.nets import UNet
from landiff.train.checkpoint import (
    load_optimizer_state,
    optimizer_state,
    prefixed,
    restore_rng,
    rng_state,
    unprefixed,
)
from landiff.train.config import FORMAT_VERSION, OptimConfig, TrainConfig
from landiff.train.ema import EMA
from landiff.train.precision import Precision


def pick_device(requested: str | None = None) -> torch.device:
    """``cuda`` when available unless told otherwise."""
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_diffusion(config: TrainConfig) -> GaussianDiffusion:
    d = config.diffusion
    return GaussianDiffusion(
        beta_schedule(d.schedule, d.num_steps), prediction=d.prediction, variance=d.variance, loss=d.loss  # type: ignore[arg-type]
    )


def build_unet(config: TrainConfig, device: torch.device) -> UNet:
    model = UNet(config.net).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def make_adamw(params: Any, optim: OptimConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with the fused kernel on CUDA and the multi-tensor (foreach) one on CPU."""
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(
        params, lr=optim.lr, betas=(optim.beta1, optim.beta2), weight_decay=optim.weight_decay, **fast
    )


@dataclass
class TrainState:
    """Counters that make a run resumable: optimiser steps done, examples seen, steps skipped."""

    step: int = 0
    images_seen: int = 0
    skipped_steps: int = 0
    seconds: float = 0.0  # training wall-clock, summed over all invocations


@dataclass
class Checkpointable:
    """Everything with state in one training run (diffusion or GAN): modules, optimisers, RNGs."""

    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    emas: dict[str, EMA]
    generators: dict[str, torch.Generator]
    precision: Precision
    extra: dict[str, Any]  # objects with state_dict()/load_state_dict() returning JSON

    def to_checkpoint(self, state: TrainState, config: TrainConfig) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "landiff_version": __version__,
            "state": vars(state).copy(),
            "config": config.to_dict(),
            "precision": self.precision.state_dict(),
            "optimizers": {},
            "emas": {},
            "extra": {name: obj.state_dict() for name, obj in self.extra.items()},
        }
        for name, module in self.modules.items():
            tensors.update(prefixed(f"model.{name}", module.state_dict()))
        for name, ema in self.emas.items():
            tensors.update(prefixed(f"ema.{name}", ema.model.state_dict()))
            meta["emas"][name] = {"num_updates": ema.num_updates}
        for name, optimizer in self.optimizers.items():
            opt_tensors, meta["optimizers"][name] = optimizer_state(optimizer, f"optim.{name}")
            tensors.update(opt_tensors)
        rng_tensors, meta["rng"] = rng_state(self.generators)
        tensors.update(rng_tensors)
        return tensors, meta

    def load_checkpoint(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> TrainState:
        """Restores every piece; any missing or mismatched piece raises (never silently skipped)."""
        for name, module in self.modules.items():
            module.load_state_dict(unprefixed(f"model.{name}", tensors), strict=True)
        for name, ema in self.emas.items():
            ema.model.load_state_dict(unprefixed(f"ema.{name}", tensors), strict=True)
            ema.num_updates = int(meta["emas"][name]["num_updates"])
        for name, optimizer in self.optimizers.items():
            load_optimizer_state(optimizer, f"optim.{name}", tensors, meta["optimizers"][name])
        for name, obj in self.extra.items():
            obj.load_state_dict(meta["extra"][name])
        self.precision.load_state_dict(meta["precision"])
        restore_rng(self.generators, tensors, meta["rng"])
        return TrainState(**meta["state"])
