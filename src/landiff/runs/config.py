"""Training configuration: frozen dataclasses, recipes (presets) and the diff used to refuse resumes.

A run's resolved config is written to ``config.json``; re-running the same command on the same run
directory resolves the same config and resumes. Fields in :data:`RESUME_MUTABLE` may change between
invocations (e.g. extend ``train_steps``); any other difference is refused with the list of fields.

A decaying LR schedule keeps the horizon it was created with (``optim.decay_steps`` /
``optim.decay_minutes``, resolved by :func:`finalize` from ``--steps`` / ``--minutes``), so a resume
can never make the LR jump: one that would move it is refused (:func:`check_resume_horizon`).
Combinations that would train something other than what the config says are refused up front by
:func:`validate`; :data:`REFUSED_COMBINATIONS` lists them for the help text.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from landiff.diffusion import FORMULATIONS, LOSSES, PREDICTIONS, SCHEDULES, TIMESTEP_SAMPLERS, VARIANCES, WEIGHTINGS
from landiff.errors import UserError
from landiff.nets import CLASSIFIER_PRESETS, UNetConfig
from landiff.nets import PRESETS as NET_PRESETS
from landiff.nets.dcgan import dcgan_layout
from landiff.nets.diffaugment import parse_policy
from landiff.runs.files import atomic_write_text
from landiff.runs.posthoc_ema import SIGMA_REL_RANGE
from landiff.samplers import SAMPLERS, check_sampler_settings

FORMAT_VERSION = 1
GAN_LOSSES = ("ns", "hinge", "rsgan")
CLASSIFIER_NOISES = ("schedule", "none")
MODELS = ("diffusion", "gan", "classifier")
AUGMENT_DIM = 9  # the width of the augmentation label (landiff.train.augment draws it)
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Decay = Literal["none", "cosine", "linear"]


@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
    """The process: T, schedule, parametrisation, variance, objective and timestep sampling.

    ``formulation`` is ``discrete`` (the T-step process of DDPM / Improved DDPM, every field below
    applies) or ``edm`` (EDM's preconditioned denoiser, :mod:`landiff.diffusion.edm`: σ_data,
    P_mean and P_std apply, ``num_steps`` is its sampling table's size, and the discrete-only
    fields stay at their defaults). ``weighting="min-snr"`` weights the discrete MSE by min-SNR-γ
    (Hang et al. 2023, arXiv 2303.09556) with γ = ``snr_gamma``; ``timestep_sampler="log-normal"``
    draws t with ln σ_t ~ N(P_mean, P_std²), EDM's noise-level distribution on the discrete levels.
    """

    num_steps: int = 1000
    schedule: str = "cosine"
    prediction: str = "eps"
    variance: str = "fixed_small"
    loss: str = "mse"
    timestep_sampler: str = "uniform"
    formulation: str = "discrete"
    weighting: str = "none"
    snr_gamma: float = 5.0
    sigma_data: float = 0.5
    p_mean: float = -1.2
    p_std: float = 1.2


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up, optional decay, gradient clipping and accumulation.

    ``decay_steps`` / ``decay_minutes`` are the decay horizon (see :mod:`landiff.train.schedule`):
    0 means "not resolved yet"; :func:`finalize` sets them from ``train_steps`` / ``max_minutes``
    when a decaying run is created (they stay 0 with ``decay="none"``). Set ``decay_steps`` yourself
    (Python API) to extend a decaying run past its horizon at the floor LR.
    """

    lr: float = 2e-4
    batch: int = 32
    accum: int = 1
    warmup: int = 100
    decay: str = "none"
    min_lr_ratio: float = 0.0
    decay_steps: int = 0
    decay_minutes: float = 0.0
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float = 1.0


@dataclasses.dataclass(frozen=True)
class GANConfig:
    """The DCGAN baseline (``model="gan"``); its Adam settings live in :class:`OptimConfig`.

    Attributes:
        z_dim: latent width (100 in DCGAN §4).
        ngf: generator base channels (width of its largest feature map).
        ndf: discriminator base channels.
        d_steps: discriminator updates (each on a fresh real batch) per generator update.
        ema: keep an EMA of the generator (decay ``TrainConfig.ema_decay``); sampling uses it, with
            standing batch-norm statistics (landiff.nets.dcgan.standing_statistics).
        num_classes: set from the data by :func:`finalize` (0 unless ``class_cond``).
        loss: ``ns`` (non-saturating, DCGAN's), ``hinge`` (SNGAN's, Lim & Ye 2017) or ``rsgan``
            (relativistic pairing, Jolicoeur-Martineau 2018, arXiv 1807.00734); landiff.train.gan_trainer.
        spectral_norm: spectrally normalised D without batch norm (SNGAN, arXiv 1802.05957).
        r1_gamma: weight γ of the R1 penalty γ/2·E‖∇D(x_real)‖² (Mescheder et al. 2018); 0 = off.
        r1_every: lazy regularisation: the penalty every this many D updates, scaled by it (StyleGAN2).
        diffaugment: DiffAugment policies for D's inputs, e.g. ``color,translation,cutout`` ('' = off).
    """

    z_dim: int = 100
    ngf: int = 64
    ndf: int = 64
    d_steps: int = 1
    ema: bool = False
    num_classes: int = 0
    loss: str = "ns"
    spectral_norm: bool = False
    r1_gamma: float = 0.0
    r1_every: int = 16
    diffaugment: str = ""


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """ADM's noisy classifier (``model="classifier"``, arXiv 2105.05233 §4); its trunk is ``TrainConfig.net``.

    Attributes:
        noise: ``schedule``: each training image is x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε at t ~ U{0..T−1} of the
            discrete schedule below (ADM's classifier training), conditioned on σ_t = √((1 − ᾱ_t)/ᾱ_t);
            ``none``: a clean classifier, trained on x0 at σ = 0 (for class-consistency evaluation).
        schedule: the β schedule the training noise levels come from (``noise="schedule"``).
        num_steps: its T.
        holdout: the held-out split, drawn once (seeded by ``TrainConfig.seed``) from the training data and
            never trained on: a fraction in (0, 1) of the images, or a whole number ≥ 1 of them.
        eval_every: measure the held-out accuracy every this many steps (and at the end of the run).
    """

    noise: str = "schedule"
    schedule: str = "cosine"
    num_steps: int = 1000
    holdout: float = 0.05
    eval_every: int = 500

    def holdout_count(self, total: int) -> int:
        """Images held out of ``total``: round(holdout · total) (at least 1) or the count itself.

        Raises:
            UserError: when no training image would be left.
        """
        count = max(1, round(self.holdout * total)) if self.holdout < 1 else int(self.holdout)
        if count >= total:
            raise UserError(f"--holdout {self.holdout:g} holds out {count} of the {total} images, leaving none to train "
                            "on; use a fraction such as 0.05 or a smaller count")
        return count


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (written to ``config.json``).

    ``model`` picks the family: ``"diffusion"`` uses ``net`` and ``diffusion``; ``"gan"`` uses ``gan``;
    ``"classifier"`` (ADM's noisy classifier) uses ``net`` as its trunk and ``classifier``.
    The other families' fields must keep their defaults (``net``, ``diffusion``, ``label_dropout`` and
    the preview sampler fields for a GAN; ``gan`` and ``classifier`` for diffusion; ``diffusion``, ``gan``,
    the previews and the post-hoc EMA for a classifier): :func:`validate` refuses a value the run would ignore.
    """

    preset: str = "tiny"
    model: str = "diffusion"
    data: str = "synthetic"
    resolution: int = 32
    synthetic_n: int = 50_000
    flip: bool = False
    class_cond: bool = False
    label_dropout: float = 0.1
    net: UNetConfig = dataclasses.field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = dataclasses.field(default_factory=DiffusionConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    gan: GANConfig = dataclasses.field(default_factory=GANConfig)
    classifier: ClassifierConfig = dataclasses.field(default_factory=ClassifierConfig)
    train_steps: int = 2000
    max_minutes: float = 0.0  # stop (with a checkpoint) once training time reaches this; 0 = no limit
    ema_decay: float = 0.9999
    ema_warmup: bool = True
    # Post-hoc EMA (EDM2): also keep power-function EMAs of σ_rel 0.05 and 0.10 and save them every
    # ema_snapshot_every steps to RUN/ema-snapshots/, so sampling can pick any EMA length later.
    posthoc_ema: bool = False
    ema_snapshot_every: int = 200
    # The post-hoc EMA length σ_rel that sample, compare, eval and the study use for this run when
    # none is asked (needs posthoc_ema; 0 = the fixed-decay EMA above). Sampling only: resumable.
    ema_length: float = 0.0
    # Non-leaking augmentation (EDM App. C.4): each of six geometric transforms applies with this
    # probability, and the net is conditioned on what was done (landiff.train.augment); 0 = off.
    augment: float = 0.0
    precision: str = "auto"
    # NCHW by default: on CPU, GroupNorm's channels-last kernels cost more than the convolutions gain
    # (tiny, batch 32, bf16: 332 ms NCHW vs 561 ms channels_last); on CUDA pass --channels-last.
    channels_last: bool = False
    compile: bool = False
    seed: int = 0
    num_workers: int = 0
    log_every: int = 50
    checkpoint_every: int = 500
    sample_every: int = 500
    keep_checkpoints: int = 3
    preview_count: int = 16
    preview_sampler: str = "dpm++"
    preview_steps: int = 20
    max_consecutive_skips: int = 20  # stop after this many NaN/Inf steps in a row (--max-skips)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Rebuilds a config from ``config.json`` contents, refusing unknown fields and versions.

        Raises:
            UserError: another format version, an unknown or malformed field, or an invalid value.
        """
        if not isinstance(values, Mapping):
            raise UserError("run config must be a JSON object")
        version = values.get("format_version")
        if version != FORMAT_VERSION:
            raise UserError(
                f"run config has format version {version!r}, this landiff reads version {FORMAT_VERSION}; "
                "use the landiff version that wrote it, or start a new --run"
            )
        nested = {"net": UNetConfig, "diffusion": DiffusionConfig, "optim": OptimConfig, "gan": GANConfig,
                  "classifier": ClassifierConfig}
        fields: dict[str, Any] = {}
        for name, value in values.items():
            if name not in {f.name for f in dataclasses.fields(cls)}:
                raise UserError(f"unknown field {name!r} in run config")
            if name in nested and not isinstance(value, Mapping):
                raise UserError(f"run config field {name!r} must be a JSON object, got {value!r:.60}")
            try:
                fields[name] = UNetConfig.from_dict(value) if name == "net" else (
                    nested[name](**value) if name in nested else value
                )
            except TypeError as err:  # an unknown key inside a section
                raise UserError(f"run config section {name!r}: {err}") from None
        config = cls(**fields)
        # Field checks only: a stored run stays readable (sampling, evaluation) even if it holds a
        # combination training now refuses; training re-validates the config it is given.
        _validate_fields(config)
        return _legacy_horizon(config)


# Fields a re-run may change without starting over (dotted names).
RESUME_MUTABLE = frozenset(
    {"train_steps", "max_minutes", "channels_last", "log_every", "checkpoint_every", "sample_every", "keep_checkpoints",
     "num_workers", "compile", "preview_count", "preview_sampler", "preview_steps", "max_consecutive_skips",
     "ema_length", "classifier.eval_every"}
)

# Training recipes: the net preset plus the paper's process and optimiser settings.
RECIPES: dict[str, dict[str, Any]] = {
    # CPU recipe for 32 px (tuned for minutes, not days): v-prediction on the cosine schedule, a
    # higher LR with warm-up, annealed to 0 by a cosine over the run's --steps or --minutes, and
    # EDM2's post-hoc EMA sampled at σ_rel 0.1, one of the two it tracks, so it is exact at any
    # length of run (benchmarks/RESULTS.md, "Recipe confirmation": at the budget race's 10 minutes
    # the annealed LR gave SWD 35 and 33 on two seeds where the constant LR of tiny-v1 gave 45 and
    # 86). v keeps pred_x0 bounded near t = T where the cosine ᾱ ≈ 0 and ε-prediction amplifies an
    # undertrained net's errors into saturated colours: after 400 steps (12.8 k images) SWD fell from
    # 190 (ε) to 139 (v) on the built-in landscapes.
    "tiny": {"diffusion": {"prediction": "v"}, "optim": {"lr": 1e-3, "batch": 32, "warmup": 200, "decay": "cosine"},
             "ema_decay": 0.999, "posthoc_ema": True, "ema_length": 0.1},
    # The lineage at the tiny net and optimiser, as the study walks it (each differs from the next in
    # its process only): DDPM's (linear β, ε, σ² = β) → Improved DDPM's (cosine, learned σ, hybrid
    # loss) → the first wave's tiny recipe (v-prediction; fixed EMA 0.999) → EDM's formulation.
    "ddpm-tiny": {"net": "tiny", "diffusion": {"schedule": "linear", "variance": "fixed_large"},
                  "optim": {"lr": 1e-3, "batch": 32, "warmup": 200}, "ema_decay": 0.999},
    "iddpm-tiny": {"net": "tiny", "diffusion": {"variance": "learned_range", "loss": "hybrid"},
                   "optim": {"lr": 1e-3, "batch": 32, "warmup": 200}, "ema_decay": 0.999},
    "tiny-v1": {"net": "tiny", "diffusion": {"prediction": "v"}, "optim": {"lr": 1e-3, "batch": 32, "warmup": 200},
                "ema_decay": 0.999},
    "edm-tiny": {"net": "tiny", "diffusion": {"formulation": "edm"}, "optim": {"lr": 1e-3, "batch": 32, "warmup": 200},
                 "ema_decay": 0.999},
    "small": {"resolution": 64, "optim": {"lr": 5e-4, "batch": 32, "warmup": 500}, "ema_decay": 0.9995},
    # DDPM §4 / appendix B: linear β, T = 1000, ε, σ² = β (CIFAR-10), L_simple, lr 2e-4, batch 128.
    "ddpm-cifar": {
        "diffusion": {"schedule": "linear", "variance": "fixed_large"},
        "optim": {"lr": 2e-4, "batch": 128, "warmup": 5000},
        "flip": True,
    },
    # Improved DDPM CIFAR-10: cosine, T = 4000, learned σ, L_hybrid, lr 1e-4, batch 128.
    "iddpm-cifar": {
        "diffusion": {"num_steps": 4000, "variance": "learned_range", "loss": "hybrid"},
        "optim": {"lr": 1e-4, "batch": 128, "warmup": 0},
        "flip": True,
    },
    # ADM ImageNet 64: cosine, T = 1000, learned σ, hybrid, lr 1e-4, class-conditional.
    "adm-64": {
        "resolution": 64,
        "diffusion": {"variance": "learned_range", "loss": "hybrid"},
        "optim": {"lr": 1e-4, "batch": 256, "warmup": 0},
        "class_cond": True,
    },
    # DCGAN §4: Adam lr 2e-4, β1 0.5, batch 128, z of 100 dims, 64 px; no warm-up, decay or clipping.
    "dcgan": {
        "model": "gan",
        "resolution": 64,
        "optim": {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "batch": 128, "warmup": 0, "grad_clip": 0.0},
        "ema_decay": 0.999,
    },
    # The strong GAN baseline (SNGAN-class, 32 px): DCGAN's G and optimiser, a spectrally normalised
    # D without batch norm and the hinge loss (SNGAN, arXiv 1802.05957), DiffAugment's colour,
    # translation and cutout on D's inputs (arXiv 2006.10738), sampled from an EMA of G with standing
    # batch-norm statistics. Chosen from 8 configurations at 3 of the budget race's minutes
    # (benchmarks/RESULTS.md, "GAN screen"): SWD 80.9 against the DCGAN's 113.8.
    "gan-strong": {
        "model": "gan",
        "resolution": 32,
        "optim": {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "batch": 128, "warmup": 0, "grad_clip": 0.0},
        "gan": {"loss": "hinge", "spectral_norm": True, "diffaugment": "color,translation,cutout", "ema": True},
        "ema_decay": 0.999,
    },
    # ADM's noisy classifier (arXiv 2105.05233 §4; trunks in nets/classifier.py): cross-entropy on x_t at
    # t ~ U{0..999} of the cosine schedule, AdamW with ADM's lr 3e-4 and weight decay 0.05. ADM's batch of 256
    # is 1.6 s a step on one CPU core; batch 64 (0.4 s) gives a 10-minute run ~1500 updates. With 100 warm-up
    # steps and a cosine to 0 over --steps / --minutes, two 300-step runs on the landscapes (20 k images, 512
    # held out) measured lr 1e-3 no better: held-out accuracy 0.955 (last quartile 0.82) against 3e-4's 0.959
    # (0.84). ADM keeps no EMA; an EMA of horizon ~200 steps is one lerp a step and is what load_run's
    # ema_model (and so guidance) uses, so the held-out accuracy is measured on it.
    "classifier-32": {
        "model": "classifier", "class_cond": True, "preview_count": 0,
        "optim": {"lr": 3e-4, "batch": 64, "warmup": 100, "decay": "cosine", "weight_decay": 0.05},
        "ema_decay": 0.995,
    },
    # The same at 64 px (not measured): four times the pixels per image, so half the batch.
    "classifier-64": {
        "model": "classifier", "resolution": 64, "class_cond": True, "preview_count": 0,
        "optim": {"lr": 3e-4, "batch": 32, "warmup": 100, "decay": "cosine", "weight_decay": 0.05},
        "ema_decay": 0.995,
    },
}

# The tuning budget behind each preset: how many training configurations were measured to choose it
# (benchmarks/RESULTS.md). A fair comparison gives both families the same chance to be tuned;
# ``landiff compare`` records the count of each run's preset. The paper recipes count as one: they
# were adopted as published, not tuned here.
TUNING: dict[str, int] = {
    "tiny": 10,  # recipe screen rounds 1–3 (nine variants, then the annealed LR) and the confirmations
    "gan-strong": 8,  # GAN screen rounds 1–2 (the DCGAN itself among them)
    "dcgan": 1, "ddpm-cifar": 1, "iddpm-cifar": 1, "adm-64": 1,
    "classifier-32": 2, "classifier-64": 1,  # ADM's recipe on a CPU batch; lr 3e-4 against 1e-3 (above)
}


def recipe(preset: str) -> TrainConfig:
    """The default TrainConfig of a preset (net shape + paper recipe)."""
    if preset not in RECIPES:
        raise UserError(f"unknown preset {preset!r}; choose one of: {', '.join(RECIPES)} (--preset)")
    values = RECIPES[preset]
    name = values.get("net", preset)
    # GAN recipes have no UNet (the field is unused); a classifier's is its trunk.
    net = NET_PRESETS.get(name) or CLASSIFIER_PRESETS.get(name) or UNetConfig()
    base = TrainConfig(preset=preset, net=net, resolution=values.get("resolution", net.resolution))
    sections = ("diffusion", "optim", "gan", "classifier")
    return dataclasses.replace(
        base,
        **{section: dataclasses.replace(getattr(base, section), **values.get(section, {})) for section in sections},
        **{k: v for k, v in values.items() if k not in (*sections, "resolution", "net")},
    )


def finalize(config: TrainConfig, num_classes: int, num_images: int | None = None) -> TrainConfig:
    """Makes the net agree with the process and the data (output channels, class count) and fixes the
    LR decay horizon; validates the result (for a classifier, also its held-out split of ``num_images``)."""
    config = resolve_horizon(config)
    if config.model == "classifier":
        return _finalize_classifier(config, num_classes, num_images)
    if config.model == "gan":
        gan = dataclasses.replace(config.gan, num_classes=num_classes if config.class_cond else 0)
        config = dataclasses.replace(config, gan=gan)
        validate(config)
        return config
    net = dataclasses.replace(
        config.net,
        learn_sigma=config.diffusion.variance == "learned_range",
        num_classes=num_classes if config.class_cond else 0,
        augment_dim=AUGMENT_DIM if config.augment > 0 else 0,
    )
    config = dataclasses.replace(config, net=net)
    validate(config)
    return config


def _finalize_classifier(config: TrainConfig, num_classes: int, num_images: int | None) -> TrainConfig:
    """The classifier's outputs are the data's classes; refuses data with fewer than two, or a held-out
    split that leaves nothing to train on."""
    net = dataclasses.replace(config.net, num_classes=num_classes, learn_sigma=False, augment_dim=0)
    config = dataclasses.replace(config, net=net)
    validate(config)
    if num_classes < 2:
        raise UserError(f"--model classifier needs labelled data with at least 2 classes; --data {config.data!r} has "
                        f"{num_classes}: put each class's images in its own subfolder (DATA/<class>/image.png), or use "
                        "--data synthetic")
    if num_images is not None:
        config.classifier.holdout_count(num_images)
    return config


def validate(config: TrainConfig) -> None:
    """Raises UserError naming the option and the allowed range for the first invalid field, or the
    flags of a refused combination (:data:`REFUSED_COMBINATIONS`)."""
    _validate_fields(config)
    _validate_combinations(config)


# The allowed range of every numeric field, by the flag that sets it: the one source that validate()
# and the CLI's option specs (landiff/cli/train.py) both read. Integers: [low, high]; numbers: [low, high).
# The upper bounds are far above any real run; sizes that cost memory (batch, widths, resolution) are
# refused by the memory estimate of landiff/options.py instead, with the estimate in the message.
INT_BOUNDS: dict[str, tuple[int, int]] = {
    "--diffusion-steps": (2, 100_000), "--batch": (1, 10**12), "--accum": (1, 65_536), "--warmup": (0, 10**9),
    "--steps": (1, 10**12), "--resolution": (8, 65_536), "--log-every": (1, 10**12), "--checkpoint-every": (1, 10**12),
    "--sample-every": (1, 10**12), "--keep": (1, 10_000), "--synthetic-n": (1, 10**12), "--workers": (0, 256),
    "--preview-count": (0, 1024), "--preview-steps": (1, 100_000), "--z-dim": (1, 10**9), "--ngf": (1, 10**9),
    "--ndf": (1, 10**9), "--d-steps": (1, 1000), "--max-skips": (1, 10**9), "--seed": (0, 2**63 - 1),
    "num_classes": (0, 1 << 20), "optim.decay_steps": (0, 10**12), "--ema-snapshot-every": (1, 10**12),
    "--r1-every": (1, 10**6), "--noise-steps": (2, 100_000), "--eval-every": (1, 10**12),
}
NUMBER_BOUNDS: dict[str, tuple[float, float]] = {
    "--lr": (0.0, 1.0), "--ema-decay": (0.0, 1.0), "--label-dropout": (0.0, 1.0), "--weight-decay": (0.0, 1.0),
    "--min-lr-ratio": (0.0, 1.0001), "--minutes": (0.0, 1e7), "--grad-clip": (0.0, float("inf")),
    "--beta1": (0.0, 1.0), "--beta2": (0.0, 1.0), "optim.decay_minutes": (0.0, 1e7),
    "--snr-gamma": (1e-3, 1e6), "--sigma-data": (1e-3, 100.0), "--p-mean": (-10.0, 10.0), "--p-std": (1e-3, 10.0),
    "--augment": (0.0, 1.0001), "--ema-length": (0.0, 0.25), "--r1-gamma": (0.0, 1e6),
}
# DiffusionConfig fields of the discrete process only (refused away from their defaults under --formulation edm).
DISCRETE_ONLY: dict[str, str] = {
    "schedule": "--schedule", "prediction": "--prediction", "variance": "--variance", "loss": "--loss",
    "timestep_sampler": "--timestep-sampler", "weighting": "--weighting",
}


def _validate_fields(config: TrainConfig) -> None:
    """Each field on its own: choices, ranges and types."""
    d, o = config.diffusion, config.optim
    _choice("--schedule", d.schedule, SCHEDULES)
    _choice("--prediction", d.prediction, PREDICTIONS)
    _choice("--variance", d.variance, VARIANCES)
    _choice("--loss", d.loss, LOSSES)
    _choice("--timestep-sampler", d.timestep_sampler, TIMESTEP_SAMPLERS)
    _choice("--formulation", d.formulation, FORMULATIONS)
    _choice("--weighting", d.weighting, WEIGHTINGS)
    _choice("--precision", config.precision, ("auto", "fp32", "bf16", "fp16"))
    _choice("--decay", o.decay, ("none", "cosine", "linear"))
    _choice("--model", config.model, MODELS)
    _choice("--preview-sampler", config.preview_sampler, SAMPLERS)
    _validate_gan_choices(config.gan)
    _validate_classifier_fields(config.classifier)
    values = {
        "--diffusion-steps": d.num_steps, "--batch": o.batch, "--accum": o.accum, "--warmup": o.warmup,
        "--steps": config.train_steps, "--resolution": config.resolution, "--log-every": config.log_every,
        "--checkpoint-every": config.checkpoint_every, "--sample-every": config.sample_every,
        "--keep": config.keep_checkpoints, "--synthetic-n": config.synthetic_n, "--workers": config.num_workers,
        "--preview-count": config.preview_count, "--preview-steps": config.preview_steps, "--z-dim": config.gan.z_dim,
        "--ngf": config.gan.ngf, "--ndf": config.gan.ndf, "--d-steps": config.gan.d_steps,
        "--max-skips": config.max_consecutive_skips, "--seed": config.seed, "num_classes": config.gan.num_classes,
        "optim.decay_steps": o.decay_steps, "--ema-snapshot-every": config.ema_snapshot_every,
        "--r1-every": config.gan.r1_every,
    }
    for flag, value in values.items():
        low, high = INT_BOUNDS[flag]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise UserError(f"{flag} must be an integer >= {low} and <= {high}, got {value!r:.60}")
    _validate_kinds(config)
    numbers = {
        "--lr": o.lr, "--ema-decay": config.ema_decay, "--label-dropout": config.label_dropout,
        "--weight-decay": o.weight_decay, "--min-lr-ratio": o.min_lr_ratio, "--minutes": config.max_minutes,
        "--grad-clip": o.grad_clip, "--beta1": o.beta1, "--beta2": o.beta2, "optim.decay_minutes": o.decay_minutes,
        "--snr-gamma": d.snr_gamma, "--sigma-data": d.sigma_data, "--p-mean": d.p_mean, "--p-std": d.p_std,
        "--augment": config.augment, "--ema-length": config.ema_length, "--r1-gamma": config.gan.r1_gamma,
    }
    for flag, number in numbers.items():
        bottom, top = NUMBER_BOUNDS[flag]
        if not isinstance(number, (int, float)) or isinstance(number, bool) or not bottom <= number < top:
            raise UserError(f"{flag} must be a number in [{bottom}, {top}), got {number!r:.60}")
    if config.model == "gan":
        dcgan_layout(config.resolution)  # raises, naming the supported sizes
        if o.accum != 1:
            raise UserError(f"--accum {o.accum}: the GAN trainer does not accumulate gradients; use --accum 1")
        if not config.gan.r1_gamma and config.gan.r1_every != GANConfig.r1_every:
            raise UserError("--r1-every sets how often the R1 penalty applies; without --r1-gamma there is none. "
                            "Add --r1-gamma or drop --r1-every")
    elif config.resolution % config.net.size_multiple:
        raise UserError(
            f"--resolution {config.resolution} does not fit the {config.preset} net: it needs a multiple of "
            f"{config.net.size_multiple} "
            f"(e.g. {config.net.size_multiple * max(1, config.resolution // config.net.size_multiple)})"
        )


def _validate_classifier_fields(c: ClassifierConfig) -> None:
    """The classifier's training noise, its held-out split and evaluation interval."""
    if not isinstance(c, ClassifierConfig):
        raise UserError("run config field 'classifier' is not a classifier config")
    _choice("--noise", c.noise, CLASSIFIER_NOISES)
    _choice("--noise-schedule", c.schedule, SCHEDULES)
    for flag, value in (("--noise-steps", c.num_steps), ("--eval-every", c.eval_every)):
        low, high = INT_BOUNDS[flag]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise UserError(f"{flag} must be an integer >= {low} and <= {high}, got {value!r:.60}")
    h = c.holdout
    if (not isinstance(h, (int, float)) or isinstance(h, bool) or not math.isfinite(h) or h <= 0
            or (h >= 1 and h != int(h)) or h >= 2**53):
        raise UserError(f"--holdout must be a fraction in (0, 1) of the training images (e.g. 0.05) or a whole number "
                        f"of them >= 1 (e.g. 500), got {h!r:.60}")


def _validate_gan_choices(gan: GANConfig) -> None:
    """The GAN loss and the DiffAugment policy list."""
    _choice("--gan-loss", gan.loss, GAN_LOSSES)
    if not isinstance(gan.diffaugment, str):
        raise UserError(f"--diffaugment must be a comma-separated list of policies, got {gan.diffaugment!r:.60}")
    try:
        parse_policy(gan.diffaugment)
    except ValueError as err:
        raise UserError(f"--diffaugment {err}") from None


def _validate_kinds(config: TrainConfig) -> None:
    """Type checks for fields no range check covers (config.json may hold anything)."""
    if config.seed >= 2**63:
        raise UserError(f"--seed must be an integer in [0, 2**63), got {config.seed}")
    for flag, value in (("--preset", config.preset), ("--data", config.data)):
        if not isinstance(value, str) or not value:
            raise UserError(f"{flag} must be a non-empty string, got {value!r:.60}")
    for flag, switch in (("--flip", config.flip), ("--class-cond", config.class_cond), ("--compile", config.compile),
                        ("--no-ema-warmup", config.ema_warmup), ("--channels-last", config.channels_last),
                        ("--gan-ema", config.gan.ema), ("--posthoc-ema", config.posthoc_ema),
                        ("--spectral-norm", config.gan.spectral_norm)):
        if not isinstance(switch, bool):
            raise UserError(f"{flag}: the config value must be true or false, got {switch!r:.60}")
    if not isinstance(config.net, UNetConfig):
        raise UserError("run config field 'net' is not a UNet config")


def _choice(flag: str, value: str, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise UserError(f"{flag} must be one of {', '.join(allowed)}; got {value!r:.60}")


# What validate() refuses because the run would not train what its config says (one line each;
# ``landiff train --help`` lists them). Flags of the other model family are refused by the CLI too.
REFUSED_COMBINATIONS: tuple[str, ...] = (
    "--variance learned_range with --loss mse: the variance channels get no gradient and never train; "
    "use --loss hybrid (L_simple + λ·L_vlb, Improved DDPM §3.1) or --loss kl",
    "--loss hybrid with a fixed --variance: the bound sees a stop-gradient mean, so it trains exactly like mse; "
    "use --loss mse, or --variance learned_range",
    "--preview-steps above --diffusion-steps (or an unknown --preview-sampler): the preview cannot be drawn; "
    "use --preview-steps 1..T or --preview-count 0",
    "--label-dropout without --class-cond: there are no labels to drop; add --class-cond or drop --label-dropout",
    "--ema-decay or --no-ema-warmup on a GAN without --gan-ema: there is no EMA; add --gan-ema or drop them",
    "--decay cosine/linear with --warmup not below --steps: every step is warm-up, nothing decays; "
    "lower --warmup or use --decay none",
    "a min-LR floor or decay horizon with --decay none: nothing decays; use --decay cosine or linear",
    "a resume that changes --steps or --minutes of a --decay cosine/linear run: the LR would jump; "
    "resume with the run's --steps / --minutes or pass --restart",
    "--formulation edm with a discrete-process option (--schedule, --prediction, --variance, --loss, "
    "--timestep-sampler, --weighting): EDM's preconditioned denoiser has none of them; drop them",
    "--sigma-data with --formulation discrete, or --p-mean/--p-std without --formulation edm or "
    "--timestep-sampler log-normal: nothing reads them; drop them",
    "--weighting min-snr with --loss kl or --prediction mean: min-SNR-γ weights the MSE of an eps, x0 or v "
    "target; use --loss mse/hybrid with one of those",
    "--snr-gamma without --weighting min-snr: nothing reads it; add --weighting min-snr or drop it",
    "--ema-snapshot-every without --posthoc-ema, or --posthoc-ema on a GAN: there are no power EMAs to save; "
    "add --posthoc-ema (diffusion) or drop it",
    "--ema-length above 0 without --posthoc-ema: there are no power EMAs to rebuild it from; add --posthoc-ema "
    "or use --ema-length 0 (the fixed EMA)",
    "--r1-every without --r1-gamma: there is no R1 penalty to schedule; add --r1-gamma or drop it",
    "--timestep-sampler log-normal with --loss kl: the bound needs uniform or importance weighted "
    "timesteps; use --loss mse/hybrid, or --timestep-sampler uniform/loss-aware",
    "--model classifier with a diffusion-process, preview, post-hoc EMA, augmentation, --accum or GAN option: "
    "the classifier trains on noisy images of its own --noise schedule and draws nothing; drop them",
    "--noise-schedule/--noise-steps with --noise none: a clean classifier sees no noise levels; drop them",
    "--noise, --noise-schedule, --noise-steps, --holdout or --eval-every without --model classifier: nothing "
    "reads them; drop them or train --model classifier",
)


def _validate_combinations(config: TrainConfig) -> None:
    """Refuses settings that are accepted one by one but would silently not do what they say."""
    o = config.optim
    if config.model == "diffusion":
        _validate_diffusion_run(config)
    else:
        _refuse_diffusion_only(config)
    if config.model == "classifier":
        _validate_classifier_run(config)
    elif config.classifier != ClassifierConfig():
        raise UserError("classifier settings (--noise, --noise-schedule, --noise-steps, --holdout, --eval-every) only "
                        f"apply to --model classifier and have no effect on a {config.model} run; drop them")
    if o.decay == "none":
        if o.min_lr_ratio or o.decay_steps or o.decay_minutes:
            raise UserError("a min-LR floor (optim.min_lr_ratio) or decay horizon (optim.decay_steps/decay_minutes) has "
                            "no effect with --decay none; use --decay cosine or linear, or leave them at 0")
    elif o.warmup >= (o.decay_steps or config.train_steps):
        raise UserError(f"--decay {o.decay} has no effect: --warmup {o.warmup} is not below the "
                        f"{o.decay_steps or config.train_steps} "
                        "steps of the run (--steps), so every step is warm-up; lower --warmup or use --decay none")


def _validate_diffusion_run(config: TrainConfig) -> None:
    """The refusals of a diffusion run (process, preview sampler, label dropout, EMAs, GAN settings)."""
    d = config.diffusion
    _validate_process(d)
    if d.variance == "learned_range" and d.loss == "mse":
        raise UserError("--variance learned_range with --loss mse would never train the variance (L_simple gives "
                        "it no gradient); use --loss hybrid (Improved DDPM's L_simple + λ·L_vlb) or --loss kl")
    if d.loss == "hybrid" and d.variance != "learned_range":
        raise UserError(f"--loss hybrid with --variance {d.variance} trains exactly like --loss mse (the bound term "
                        "sees a stop-gradient mean and a fixed variance); use --loss mse, or --variance learned_range")
    if config.preview_count:
        check_sampler_settings(
            config.preview_sampler, config.preview_steps, d.num_steps,
            sampler_flag="--preview-sampler", steps_flag="--preview-steps",
            process=f" (--diffusion-steps {d.num_steps})", otherwise=" or --preview-count 0",
        )
    if not config.class_cond and config.label_dropout != TrainConfig.label_dropout:
        raise UserError(f"--label-dropout {config.label_dropout:g} has no effect without --class-cond (it drops "
                        "class labels for classifier-free guidance); add --class-cond or drop --label-dropout")
    if not config.posthoc_ema and config.ema_snapshot_every != TrainConfig.ema_snapshot_every:
        raise UserError("--ema-snapshot-every only applies with --posthoc-ema (it saves the power EMAs); add "
                        "--posthoc-ema or drop --ema-snapshot-every")
    _validate_ema_length(config)
    if config.gan != GANConfig():
        raise UserError("GAN settings (--z-dim, --ngf, --ndf, --d-steps, --gan-ema, --gan-loss, --spectral-norm, "
                        "--r1-gamma, --diffaugment) have no effect on a diffusion run; drop them, or train --model gan")


def _refuse_diffusion_only(config: TrainConfig) -> None:
    """A GAN or classifier run with a diffusion-only setting (the UNet options are a classifier's trunk)."""
    d, kind = config.diffusion, "GAN" if config.model == "gan" else config.model
    ignored = [flag for flag, changed in (
        ("--diffusion-steps/--schedule/--prediction/--variance/--loss/--timestep-sampler", d != DiffusionConfig()),
        ("--channels and the other UNet options", config.model == "gan" and config.net != UNetConfig()),
        ("--preview-sampler/--preview-steps", (config.preview_sampler, config.preview_steps)
         != (TrainConfig.preview_sampler, TrainConfig.preview_steps)),
        ("--label-dropout", config.label_dropout != TrainConfig.label_dropout),
        ("--posthoc-ema/--ema-snapshot-every/--ema-length",
         (config.posthoc_ema, config.ema_snapshot_every, config.ema_length)
         != (TrainConfig.posthoc_ema, TrainConfig.ema_snapshot_every, TrainConfig.ema_length)),
        ("--augment", config.augment != TrainConfig.augment)) if changed]
    if ignored:
        raise UserError(f"{ignored[0]} only apply to diffusion and have no effect on a {kind} run (--model "
                        f"{config.model}); drop them")


def _validate_classifier_run(config: TrainConfig) -> None:
    """The refusals of a noisy-classifier run (:data:`REFUSED_COMBINATIONS`)."""
    c, default = config.classifier, ClassifierConfig()
    if config.gan != GANConfig():
        raise UserError("GAN settings (--z-dim, --ngf, --ndf, --d-steps, --gan-ema, --gan-loss, --spectral-norm, "
                        "--r1-gamma, --diffaugment) have no effect on a classifier run; drop them")
    if config.preview_count or config.sample_every != TrainConfig.sample_every:
        raise UserError("a classifier run draws no preview images: use --preview-count 0 (the classifier presets' "
                        "value) and drop --sample-every")
    if not config.class_cond:
        raise UserError("--model classifier learns p(class | x_t) and needs class labels: set class_cond (the "
                        "classifier presets do; --class-cond)")
    if config.optim.accum != 1:
        raise UserError(f"--accum {config.optim.accum}: the classifier trainer does not accumulate gradients; "
                        "use --accum 1 and a smaller --batch")
    if c.noise == "none" and (c.schedule, c.num_steps) != (default.schedule, default.num_steps):
        raise UserError("--noise-schedule/--noise-steps set the training noise levels; a clean classifier (--noise none) "
                        "has none, so drop them or use --noise schedule")
    if config.resolution != config.net.resolution:
        raise UserError(f"--resolution {config.resolution} differs from the classifier trunk's {config.net.resolution} "
                        "px (its attention pool has one position per pixel of its last level); set net.resolution "
                        "to the data's resolution")


def _validate_ema_length(config: TrainConfig) -> None:
    """The sampling EMA length: 0 (the fixed EMA), or a σ_rel the post-hoc reconstruction covers."""
    low = SIGMA_REL_RANGE[0]  # the upper end is NUMBER_BOUNDS' (0.25, open)
    if config.ema_length and not config.posthoc_ema:
        raise UserError(f"--ema-length {config.ema_length:g} chooses a post-hoc EMA, which needs --posthoc-ema (the "
                        "power EMAs it is rebuilt from); add --posthoc-ema, or --ema-length 0 for the fixed EMA")
    if 0 < config.ema_length < low:
        raise UserError(f"--ema-length must be 0 (the fixed EMA) or a sigma_rel in [{low}, 0.25), "
                        f"got {config.ema_length:g}")


def _validate_process(d: DiffusionConfig) -> None:
    """The formulation, weighting and noise-level distribution refusals of :data:`REFUSED_COMBINATIONS`."""
    default = DiffusionConfig()
    if d.formulation == "edm":
        changed = [flag for name, flag in DISCRETE_ONLY.items() if getattr(d, name) != getattr(default, name)]
        if changed:
            raise UserError(f"{', '.join(changed)} only apply to --formulation discrete; EDM's preconditioned "
                            "denoiser (--formulation edm) has no schedule, parametrisation, variance or timestep "
                            "choice, so drop them")
    elif d.sigma_data != default.sigma_data:
        raise UserError("--sigma-data only applies to --formulation edm (its preconditioning); drop it")
    if d.formulation != "edm" and d.timestep_sampler != "log-normal" and (d.p_mean, d.p_std) != (default.p_mean, default.p_std):
        raise UserError("--p-mean/--p-std set the noise-level distribution of --formulation edm or of "
                        "--timestep-sampler log-normal; add one of those or drop them")
    if d.weighting == "min-snr" and (d.loss == "kl" or d.prediction == "mean"):
        raise UserError(f"--weighting min-snr weights the MSE of an eps, x0 or v target; --loss {d.loss} with "
                        f"--prediction {d.prediction} has none. Use --loss mse or hybrid with --prediction eps, x0 or v")
    if d.weighting != "min-snr" and d.snr_gamma != default.snr_gamma:
        raise UserError("--snr-gamma only applies with --weighting min-snr; add it or drop --snr-gamma")
    if d.timestep_sampler == "log-normal" and d.loss == "kl":
        raise UserError("--timestep-sampler log-normal with --loss kl would not estimate the bound (it needs uniform "
                        "or importance-weighted timesteps); use --loss mse or hybrid, or --timestep-sampler uniform")


def refuse_ignored_flags(config: TrainConfig, given: set[str]) -> None:
    """Refuses flags the user gave explicitly that this config would ignore (``landiff train``).

    Args:
        given: dotted config fields set on the command line (``label_dropout``, ``optim.lr``, …).
    """
    if "label_dropout" in given and not config.class_cond:
        raise UserError("--label-dropout has no effect without --class-cond (it drops class labels for "
                        "classifier-free guidance); add --class-cond or drop --label-dropout")
    if config.model == "gan" and not config.gan.ema:
        flags = [flag for field, flag in (("ema_decay", "--ema-decay"), ("ema_warmup", "--no-ema-warmup")) if field in given]
        if flags:
            raise UserError(f"{' and '.join(flags)} have no effect on a GAN run without an EMA; add --gan-ema or drop them")


def resolve_horizon(config: TrainConfig) -> TrainConfig:
    """Fixes the LR decay horizon of a decaying run from its budget: ``decay_steps = train_steps`` and,
    with ``--minutes``, ``decay_minutes = max_minutes`` (fields already set are kept; none for ``decay="none"``).

    Called when a run is created (and on every resume, where the result must equal the stored one:
    :func:`check_resume_horizon`)."""
    o = config.optim
    if o.decay == "none" or o.decay_steps:
        return config
    optim = dataclasses.replace(o, decay_steps=config.train_steps, decay_minutes=o.decay_minutes or config.max_minutes)
    return dataclasses.replace(config, optim=optim)


def _legacy_horizon(config: TrainConfig) -> TrainConfig:
    """A config.json written before the horizon was stored: its (last) budget is the horizon it decayed over."""
    o = config.optim
    if o.decay == "none" or o.decay_steps or o.decay_minutes:
        return config
    return resolve_horizon(config)


def check_resume_horizon(stored: TrainConfig, new: TrainConfig) -> None:
    """Refuses a resume that would move the decay horizon of a decaying LR schedule (the LR would jump).

    Other differences are left to :func:`config_differences`.

    Raises:
        UserError: naming the flags, the horizon the run was created with, and how to resume.
    """
    old, now = stored.optim, new.optim
    if old.decay == "none" or old.decay != now.decay:
        return
    if (old.decay_steps, old.decay_minutes) == (now.decay_steps, now.decay_minutes):
        return

    def horizon(o: OptimConfig) -> str:
        return f"{o.decay_steps} steps" + (f" or {o.decay_minutes:g} min, whichever ends first" if o.decay_minutes else "")

    def flags(o: OptimConfig) -> str:
        return f"--steps {o.decay_steps}" + (f" --minutes {o.decay_minutes:g}" if o.decay_minutes else " and no --minutes")

    raise UserError(
        f"this run's LR decays (--decay {old.decay}) over {horizon(old)}, fixed when it was created; resuming with "
        f"{horizon(now)} would make the LR jump: resume with {flags(old)}, or start over with --restart"
    )


def config_differences(stored: TrainConfig, new: TrainConfig) -> list[str]:
    """Dotted names of fields that differ and may not change on resume."""
    a, b = _flatten(stored.to_dict()), _flatten(new.to_dict())
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k) and k not in RESUME_MUTABLE)


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = list(value) if isinstance(value, tuple) else value
    return flat


def write_config(config: TrainConfig, path: Path) -> None:
    """Writes ``config.json`` atomically."""
    atomic_write_text(path, json.dumps(config.to_dict(), indent=2) + "\n")


def read_config(path: Path) -> TrainConfig:
    """Reads and validates ``config.json``.

    Raises:
        UserError: unreadable, not JSON, or invalid; the message starts with the file's path.
    """
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise UserError(f"cannot read run config {path}: {err}") from None
    if not isinstance(values, dict):
        raise UserError(f"run config {path} is not a JSON object")
    try:
        return TrainConfig.from_dict(values)
    except UserError as err:
        raise UserError(f"{path}: {err}") from None
