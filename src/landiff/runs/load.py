"""Loading a trained run with one call: ``load_run("runs/tiny")`` → model, EMA model, diffusion, config.

A GAN run (``config.model == "gan"``) loads the same way: ``model`` is the generator, ``ema_model``
its EMA (the generator itself when the run kept no EMA) and ``diffusion`` is None; a generator maps
``(z (B, config.gan.z_dim), y=None)`` to images in [−1, 1].

A noisy-classifier run (``config.model == "classifier"``, :attr:`LoadedRun.is_classifier`) loads too:
``model``/``ema_model`` are :class:`~landiff.nets.classifier.NoisyClassifier` s mapping
``(x_t (B, C, H, W), sigma (B,))`` to logits, and ``diffusion`` is None. Code that reads
``diffusion is None`` as "a GAN" must first call :func:`refuse_classifier` (or test ``is_classifier``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from landiff.diffusion import GaussianDiffusion
from landiff.errors import UserError
from landiff.nets import NoisyClassifier, UNet
from landiff.nets.dcgan import Generator, standing_statistics
from landiff.options import check_memory, pick_device
from landiff.runs.checkpoint import TrainState, check_module_tensors, latest_checkpoint, load_checkpoint, unprefixed
from landiff.runs.config import TrainConfig, read_config
from landiff.runs.files import read_json
from landiff.runs.models import (
    build_classifier,
    build_diffusion,
    build_generator,
    build_unet,
    gan_net_config,
    sampling_network,
)
from landiff.runs.posthoc_ema import POSTHOC_SIGMA_RELS, list_snapshots, reconstruct, sigma_rel_to_gamma, snapshot_sources


@dataclass
class LoadedRun:
    """A trained run ready for sampling or evaluation (both models in eval mode).

    For a GAN run ``model``/``ema_model`` are generators and ``diffusion`` is None; for a classifier run
    they are noisy classifiers and ``diffusion`` is None too (see :func:`refuse_classifier`). For an EDM run
    (``config.diffusion.formulation == "edm"``) they are :class:`~landiff.diffusion.edm.EDMNetwork`
    denoisers on ``diffusion``, the sampling table; ``.net`` is the UNet.
    """

    model: nn.Module
    ema_model: nn.Module
    diffusion: GaussianDiffusion | None
    config: TrainConfig
    state: TrainState
    checkpoint: Path
    checkpoint_sha256: str
    classes: list[str]
    ema_length: float | None = None  # σ_rel of the post-hoc EMA reconstructed into ema_model (None: the fixed EMA)
    ema_error: float | None = None  # its profile's relative L2 distance from the asked one

    @property
    def is_gan(self) -> bool:
        return self.config.model == "gan"

    @property
    def is_classifier(self) -> bool:
        """A noisy-classifier run (``--model classifier``): it guides a diffusion model, it cannot be sampled."""
        return self.config.model == "classifier"

    @property
    def num_classes(self) -> int:
        """Labels the model takes (0: unconditional); for a classifier, the classes it predicts."""
        return self.config.gan.num_classes if self.is_gan else self.config.net.num_classes


def load_run(run_dir: str | Path | None = None, *, checkpoint: str | Path | None = None, device: str | None = None,
             ema_length: float | None = None) -> LoadedRun:
    """Loads the latest checkpoint of ``run_dir`` (or the given ``checkpoint`` file).

    The config comes from the checkpoint itself, so flags can never disagree with the weights.
    ``ema_length`` (σ_rel, e.g. 0.1) makes ``ema_model`` the post-hoc EMA of that length at the
    checkpoint's step, reconstructed from the run's power-EMA snapshots (a run trained with
    ``--posthoc-ema``; :mod:`landiff.runs.posthoc_ema`). ``None`` takes the run's own default length
    (``config.ema_length``, e.g. the tiny preset's 0.1), and ``0`` the run's fixed-decay EMA.
    """
    checkpoint = _checkpoint_file(run_dir, checkpoint)
    tensors, meta = load_checkpoint(checkpoint)
    config = _stored_config(meta, checkpoint)
    state = _state(meta["state"], checkpoint)
    dev = pick_device(device)
    gan, classifier = config.model == "gan", config.model == "classifier"
    make: Callable[[], nn.Module] = (
        (lambda: Generator(gan_net_config(config))) if gan else
        (lambda: NoisyClassifier(config.net)) if classifier else (lambda: UNet(config.net))
    )
    prefixes = ("model.g", "ema.g" if config.gan.ema else "model.g") if gan else ("model.net", "ema.net")
    # The shapes the stored config implies, from a network on the meta device (no memory), are
    # compared with the tensors before anything is allocated: as strict as the resume path
    # (components.py Checkpointable.load_checkpoint), but refusing absurd sizes before building them.
    expected = _meta_shapes(make, checkpoint)
    for prefix in prefixes:
        check_module_tensors(expected, tensors, prefix, str(checkpoint))
    weights = sum(4.0 * math.prod(shape) for shape in expected.values())
    check_memory({"weights and EMA weights": 2 * weights}, [str(checkpoint)], dev, fix="use a device with more memory")
    model: nn.Module
    ema_model: nn.Module
    diffusion: GaussianDiffusion | None = None
    try:
        if gan:
            model, ema_model = build_generator(config, dev), build_generator(config, dev)
        elif classifier:
            model, ema_model = build_classifier(config, dev), build_classifier(config, dev)
        else:
            model, ema_model = build_unet(config, dev), build_unet(config, dev)
            diffusion = build_diffusion(config)
        model.load_state_dict(unprefixed(prefixes[0], tensors), strict=True)
        ema_weights, ema_error = unprefixed(prefixes[1], tensors), None
        ema_length = (config.ema_length if ema_length is None else ema_length) or None  # 0: the fixed EMA
        if ema_length is not None:
            ema_weights, ema_error = _posthoc_weights(checkpoint, config, tensors, meta, state, ema_length)
        ema_model.load_state_dict(ema_weights, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:  # as Checkpointable.load_checkpoint does
        raise UserError(f"{checkpoint} does not match its stored config ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''})") from None
    classes = _classes(checkpoint.parent.parent / "classes.json", config) if config.class_cond else []
    if not gan and not classifier:  # what the samplers call: the network itself, or EDM's preconditioned denoiser
        model, ema_model = sampling_network(config, model), sampling_network(config, ema_model)
    elif config.gan.ema and isinstance(ema_model, Generator):  # it carries G's batch-norm statistics
        standing_statistics(ema_model, config.gan.num_classes)  # re-estimated for its own weights
    return LoadedRun(
        model=model.eval(), ema_model=ema_model.eval(), diffusion=diffusion, config=config,
        state=state, checkpoint=checkpoint,
        checkpoint_sha256=hashlib.sha256(checkpoint.read_bytes()).hexdigest(), classes=classes,
        ema_length=ema_length, ema_error=ema_error,
    )


def refuse_classifier(loaded: LoadedRun, command: str) -> None:
    """Raises the one-line :class:`UserError` for a noisy-classifier run given to ``command`` (e.g. ``"eval nll"``),
    which needs a generative model; returns for any other run."""
    if loaded.is_classifier:
        run = loaded.checkpoint.parent.parent
        raise UserError(f"{run} is a noisy-classifier run (--model classifier): it cannot be sampled (landiff {command}); "
                        "pass it to `landiff sample --classifier` to guide a diffusion model")


def _checkpoint_file(run_dir: str | Path | None, checkpoint: str | Path | None) -> Path:
    """``checkpoint``, or the latest checkpoint of ``run_dir``; refuses what does not exist."""
    if checkpoint is None:
        if run_dir is None:
            raise UserError("give a run directory (--run) or a checkpoint file (--ckpt)")
        checkpoint = latest_checkpoint(Path(run_dir) / "checkpoints")
        if checkpoint is None:
            raise UserError(f"{run_dir} has no checkpoint yet (expected {Path(run_dir) / 'checkpoints'}/step-*.safetensors)")
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise UserError(f"checkpoint {checkpoint} does not exist")
    return checkpoint


def _stored_config(meta: dict, checkpoint: Path) -> TrainConfig:
    """The run config a checkpoint carries (and a check that its state is there too)."""
    if not isinstance(meta.get("config"), dict) or not isinstance(meta.get("state"), dict):
        raise UserError(f"{checkpoint} lacks the landiff config or state; it was not written by landiff train")
    try:
        return TrainConfig.from_dict(meta["config"])
    except UserError as err:
        raise UserError(f"{checkpoint}: {err}") from None
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as err:
        raise UserError(f"{checkpoint} holds an unreadable run config ({type(err).__name__}: {err})") from None


def _posthoc_weights(checkpoint: Path, config: TrainConfig, tensors: dict[str, torch.Tensor], meta: dict,
                     state: TrainState, ema_length: float) -> tuple[dict[str, torch.Tensor], float]:
    """The EMA of length ``ema_length`` at this checkpoint: the snapshots before its step plus its own power EMAs."""
    if config.model == "gan" or not config.posthoc_ema:
        raise UserError(f"--ema-length needs a diffusion run trained with --posthoc-ema; {checkpoint} keeps one EMA "
                        f"(decay {config.ema_decay:g}). Drop --ema-length, or train a run with --posthoc-ema")
    sigma_rel_to_gamma(ema_length)  # refuses a length outside the range, naming it
    try:
        live = [(int(meta["emas"][f"posthoc{i}"]["num_updates"]), rel, unprefixed(f"ema.posthoc{i}", tensors))
                for i, rel in enumerate(POSTHOC_SIGMA_RELS)]
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{checkpoint} lacks the power EMAs of a --posthoc-ema run; it was not written by this landiff") from None
    updates = live[0][0]
    if updates < 1:
        raise UserError(f"{checkpoint} was saved before the first EMA update; train at least one step")
    earlier = [source for snap in list_snapshots(checkpoint.parent.parent, up_to_step=state.step - 1)
               for source in snapshot_sources(snap) if 1 <= source[0] <= updates]
    return reconstruct(earlier + live, updates, ema_length)


def _meta_shapes(make: Callable[[], nn.Module], checkpoint: Path) -> dict[str, tuple[int, ...]]:
    """Name → shape of the state dict of ``make()`` built on the meta device."""
    try:
        with torch.device("meta"):
            module = make()
        return {name: tuple(t.shape) for name, t in module.state_dict().items()}
    except (RuntimeError, ValueError, TypeError, OverflowError) as err:
        raise UserError(f"{checkpoint}: its stored config describes a network that cannot be built "
                        f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None


def _classes(path: Path, config: TrainConfig) -> list[str]:
    """Class names by label from ``RUN/classes.json`` (name → label); [] when the file is absent."""
    if not path.exists():
        return []
    mapping = read_json(path, "classes.json of the run")
    count = config.gan.num_classes if config.model == "gan" else config.net.num_classes
    labels = sorted(mapping.values()) if isinstance(mapping, dict) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in mapping.values()) else None
    if labels != list(range(count)) or not isinstance(mapping, dict):  # (labels is None for a non-dict)
        raise UserError(f"{path} must map each of the run's {count} class names to a label 0..{count - 1}; "
                        "restore it from the run's data, or delete it to sample by label number")
    return [name for name, _ in sorted(mapping.items(), key=lambda item: item[1])]


def existing_run_config(run_dir: Path) -> TrainConfig | None:
    path = run_dir / "config.json"
    return read_config(path) if path.exists() else None


__all__ = ["LoadedRun", "existing_run_config", "load_run", "refuse_classifier"]


def _state(values: dict, checkpoint: Path) -> TrainState:
    try:
        state = TrainState(**values)
    except TypeError:
        raise UserError(f"{checkpoint} has an unreadable training state; it was not written by this landiff") from None
    counters = [state.step, state.images_seen, state.skipped_steps, state.consecutive_skips]
    if (not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63 for v in counters)
            or not isinstance(state.seconds, (int, float)) or isinstance(state.seconds, bool)
            or not 0 <= state.seconds < math.inf):
        raise UserError(f"{checkpoint} has a training state with invalid counters (they must be non-negative "
                        "integers and seconds); it was not written by landiff train")
    return state
