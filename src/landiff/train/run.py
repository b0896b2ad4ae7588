"""Loading a trained run with one call: ``load_run("runs/tiny")`` → model, EMA model, diffusion, config.

A GAN run (``config.model == "gan"``) loads the same way: ``model`` is the generator, ``ema_model``
its EMA (the generator itself when the run kept no EMA) and ``diffusion`` is None; a generator maps
``(z (B, config.gan.z_dim), y=None)`` to images in [−1, 1].
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from landiff.diffusion import GaussianDiffusion
from landiff.errors import UserError
from landiff.train.checkpoint import latest_checkpoint, load_checkpoint, unprefixed
from landiff.train.components import TrainState, build_diffusion, build_unet, pick_device
from landiff.train.config import TrainConfig, read_config
from landiff.train.gan_trainer import build_generator


@dataclass
class LoadedRun:
    """A trained run ready for sampling or evaluation (both models in eval mode).

    For a GAN run ``model``/``ema_model`` are generators and ``diffusion`` is None.
    """

    model: nn.Module
    ema_model: nn.Module
    diffusion: GaussianDiffusion | None
    config: TrainConfig
    state: TrainState
    checkpoint: Path
    checkpoint_sha256: str
    classes: list[str]

    @property
    def is_gan(self) -> bool:
        return self.config.model == "gan"

    @property
    def num_classes(self) -> int:
        """Labels the model takes (0: unconditional)."""
        return self.config.gan.num_classes if self.is_gan else self.config.net.num_classes


def load_run(run_dir: str | Path | None = None, *, checkpoint: str | Path | None = None, device: str | None = None) -> LoadedRun:
    """Loads the latest checkpoint of ``run_dir`` (or the given ``checkpoint`` file).

    The config comes from the checkpoint itself, so flags can never disagree with the weights.
    """
    if checkpoint is None:
        if run_dir is None:
            raise UserError("give a run directory (--run) or a checkpoint file (--ckpt)")
        checkpoint = latest_checkpoint(Path(run_dir) / "checkpoints")
        if checkpoint is None:
            raise UserError(f"{run_dir} has no checkpoint yet (expected {Path(run_dir) / 'checkpoints'}/step-*.safetensors)")
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise UserError(f"checkpoint {checkpoint} does not exist")
    tensors, meta = load_checkpoint(checkpoint)
    if not isinstance(meta.get("config"), dict) or not isinstance(meta.get("state"), dict):
        raise UserError(f"{checkpoint} lacks the landiff config or state; it was not written by landiff train")
    config = TrainConfig.from_dict(meta["config"])
    dev = pick_device(device)
    model: nn.Module
    ema_model: nn.Module
    diffusion: GaussianDiffusion | None = None
    if config.model == "gan":
        model, ema_model = build_generator(config, dev), build_generator(config, dev)
        model.load_state_dict(unprefixed("model.g", tensors), strict=True)
        ema_model.load_state_dict(unprefixed("ema.g" if config.gan.ema else "model.g", tensors), strict=True)
    else:
        model, ema_model = build_unet(config, dev), build_unet(config, dev)
        model.load_state_dict(unprefixed("model.net", tensors), strict=True)
        ema_model.load_state_dict(unprefixed("ema.net", tensors), strict=True)
        diffusion = build_diffusion(config)
    classes: list[str] = []
    classes_file = checkpoint.parent.parent / "classes.json"
    if config.class_cond and classes_file.exists():
        mapping = json.loads(classes_file.read_text(encoding="utf-8"))
        classes = [name for name, _ in sorted(mapping.items(), key=lambda item: item[1])]
    return LoadedRun(
        model=model.eval(), ema_model=ema_model.eval(), diffusion=diffusion, config=config,
        state=_state(meta["state"], checkpoint), checkpoint=checkpoint,
        checkpoint_sha256=hashlib.sha256(checkpoint.read_bytes()).hexdigest(), classes=classes,
    )


def existing_run_config(run_dir: Path) -> TrainConfig | None:
    path = run_dir / "config.json"
    return read_config(path) if path.exists() else None


__all__ = ["LoadedRun", "existing_run_config", "load_run"]


def _state(values: dict, checkpoint: Path) -> TrainState:
    try:
        return TrainState(**values)
    except TypeError:
        raise UserError(f"{checkpoint} has an unreadable training state; it was not written by this landiff") from None
