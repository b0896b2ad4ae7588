"""The options of ``landiff train``: one :class:`~landiff.options.Spec` per flag, its help, and the recipe's default.

Every recipe field a flag overrides (:data:`OVERRIDES`) and every switch has a spec built for a
resolved recipe (:func:`train_specs`, :func:`switch_specs`), so ``--help`` states the value the run
would get: ``landiff train --help`` shows the ``tiny`` recipe's, ``landiff train --preset dcgan --help``
(or ``--model gan --help``, ``--model classifier --help``) that recipe's (:func:`describe_recipe`). A
flag the recipe's model family does not read says so instead ("unused, --model gan only"); the run
refuses it (:func:`check_family`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from landiff.diffusion import FORMULATIONS, LOSSES, PREDICTIONS, SCHEDULES, TIMESTEP_SAMPLERS, VARIANCES, WEIGHTINGS
from landiff.errors import UserError
from landiff.options import Spec, show_value, spec_of
from landiff.runs.config import (
    CLASSIFIER_NOISES,
    GAN_LOSSES,
    INT_BOUNDS,
    MODELS,
    NUMBER_BOUNDS,
    RECIPES,
    TrainConfig,
    recipe,
)
from landiff.samplers import SAMPLERS

# flag → (section, field, type); section None is TrainConfig itself.
OVERRIDES: dict[str, tuple[str | None, str, Any]] = {
    "data": (None, "data", str), "resolution": (None, "resolution", int), "synthetic_n": (None, "synthetic_n", int),
    "label_dropout": (None, "label_dropout", float), "steps": (None, "train_steps", int), "minutes": (None, "max_minutes", float),
    "ema_decay": (None, "ema_decay", float), "precision": (None, "precision", str), "seed": (None, "seed", int),
    "workers": (None, "num_workers", int), "log_every": (None, "log_every", int),
    "checkpoint_every": (None, "checkpoint_every", int), "sample_every": (None, "sample_every", int),
    "keep": (None, "keep_checkpoints", int), "preview_count": (None, "preview_count", int),
    "preview_sampler": (None, "preview_sampler", str), "preview_steps": (None, "preview_steps", int),
    "channels": ("net", "base_channels", int), "channel_mult": ("net", "channel_mult", "ints"),
    "res_blocks": ("net", "num_res_blocks", int), "attention": ("net", "attention_resolutions", "ints"),
    "heads": ("net", "num_heads", int), "head_channels": ("net", "head_channels", int),
    "dropout": ("net", "dropout", float), "diffusion_steps": ("diffusion", "num_steps", int),
    "schedule": ("diffusion", "schedule", str), "prediction": ("diffusion", "prediction", str),
    "variance": ("diffusion", "variance", str), "loss": ("diffusion", "loss", str),
    "timestep_sampler": ("diffusion", "timestep_sampler", str), "formulation": ("diffusion", "formulation", str),
    "weighting": ("diffusion", "weighting", str), "snr_gamma": ("diffusion", "snr_gamma", float),
    "sigma_data": ("diffusion", "sigma_data", float), "p_mean": ("diffusion", "p_mean", float),
    "p_std": ("diffusion", "p_std", float), "lr": ("optim", "lr", float),
    "batch": ("optim", "batch", int), "accum": ("optim", "accum", int), "warmup": ("optim", "warmup", int),
    "decay": ("optim", "decay", str), "grad_clip": ("optim", "grad_clip", float),
    "weight_decay": ("optim", "weight_decay", float), "beta1": ("optim", "beta1", float),
    "beta2": ("optim", "beta2", float), "z_dim": ("gan", "z_dim", int), "ngf": ("gan", "ngf", int),
    "ndf": ("gan", "ndf", int), "d_steps": ("gan", "d_steps", int),
    "max_skips": (None, "max_consecutive_skips", int), "ema_snapshot_every": (None, "ema_snapshot_every", int),
    "augment": (None, "augment", float), "ema_length": (None, "ema_length", float),
    "gan_loss": ("gan", "loss", str), "r1_gamma": ("gan", "r1_gamma", float), "r1_every": ("gan", "r1_every", int),
    "diffaugment": ("gan", "diffaugment", str), "noise": ("classifier", "noise", str),
    "noise_schedule": ("classifier", "schedule", str), "noise_steps": ("classifier", "num_steps", int),
    "holdout": ("classifier", "holdout", "holdout"), "eval_every": ("classifier", "eval_every", int),
}
# UNet fields as the UNet's own validation names them → the flag that sets them.
NET_FLAGS = {"base_channels": "--channels", "channel_mult": "--channel-mult", "num_res_blocks": "--res-blocks",
             "attention_resolutions": "--attention", "num_heads": "--heads", "head_channels": "--head-channels",
             "dropout": "--dropout", "resolution": "--resolution"}
# Flags that only one family reads (besides whole sections: net/diffusion → diffusion, gan → GAN).
DIFFUSION_ONLY = {"label_dropout", "preview_sampler", "preview_steps", "accum", "ema_snapshot_every", "posthoc_ema",
                  "augment", "ema_length", "no_posthoc_ema"}
GAN_ONLY = {"gan_ema", "spectral_norm"}
# Flags of the previews, which a classifier does not draw (the net section is a classifier's trunk too).
PREVIEW_FLAGS = {"preview_count", "sample_every"}

# What each override does, in one line (the accepted range, the unit and the recipe's value are appended).
GENERAL_HELP = {
    "data": "training images: 'synthetic' (the built-in landscapes), an image folder (searched recursively) or a "
            "folder made by landiff data prepare",
    "resolution": "image size: the data is resized to it and the net is built for it (a DCGAN needs s·2^k px with s "
                  "in 4..7, e.g. 32 or 64)",
    "synthetic_n": "--data synthetic: how many different landscapes the training set holds",
    "label_dropout": "with --class-cond: probability that a training label is replaced by the null label, so the net "
                     "also learns the unconditional model (classifier-free guidance, Ho & Salimans 2022)",
    "steps": "optimiser steps to train; the run stops at the first of --steps and --minutes, with a checkpoint",
    "minutes": "training-time budget; 0 = no limit (the run stops at the first of --steps and --minutes)",
    "ema_decay": "decay d of the weight EMA, theta_ema <- d·theta_ema + (1 - d)·theta after every step (with "
                 "warm-up min(d, (1 + n)/(10 + n)) unless --no-ema-warmup); a GAN keeps one only with --gan-ema",
    "precision": "autocast precision of the forward pass: auto (bf16 where the device computes it natively, else fp16 "
                 "with loss scaling on CUDA and fp32 on CPU), fp32, bf16 or fp16 (CUDA only); weights stay fp32",
    "seed": "seed of the initial weights, the data order, the flips, the noise and the synthetic set",
    "workers": "DataLoader worker processes that load and decode images (0 = in the training process)",
    "log_every": "print a line and append a stats.jsonl record (loss, lr, grad norm, img/s …) every N steps",
    "checkpoint_every": "write RUN/checkpoints/step-N.safetensors every N steps (and at the end, or on Ctrl-C/SIGTERM)",
    "sample_every": "draw the preview grid RUN/samples/step-N.png every N steps (and at the end)",
    "keep": "checkpoints kept in RUN/checkpoints; older ones are deleted once the new one is verified",
    "preview_count": "images in each preview grid, from fixed seeds; 0 = no previews",
    "preview_sampler": "sampler of the preview grids",
    "preview_steps": "network evaluations per preview image (at most --diffusion-steps)",
    "max_skips": "stop after this many non-finite (NaN/Inf) steps in a row; a skipped step changes no weight",
}
NET_HELP = {
    "channels": "UNet base width: level i has channels·mult_i channels, the time embedding 4·channels "
                "(diffusion; a classifier's trunk)",
    "channel_mult": "UNet width multiplier of each level, one entry per level; each later level halves the feature "
                    "map (e.g. 1,2,2: three levels)",
    "res_blocks": "residual blocks per UNet level in the encoder (the decoder has one more)",
    "attention": "feature-map sizes (at --resolution) that get self-attention after each residual block, e.g. 16,8; "
                 "'' = the middle block only",
    "heads": "attention heads of each attention block (when --head-channels is not set)",
    "head_channels": "channels per attention head (ADM uses 64); wins over --heads when set",
    "dropout": "dropout probability inside the UNet's residual blocks",
}
PROCESS_HELP = {
    "diffusion_steps": "T, the number of noise levels of the discrete process (edm: the size of its sampling table of "
                       "levels evenly spaced in log sigma)",
    "schedule": "beta schedule of the forward process: linear (DDPM) or cosine (Improved DDPM)",
    "prediction": "what the net outputs: eps (the noise, DDPM), x0 (the clean image), v (the velocity of Salimans & "
                  "Ho 2022) or mean (the posterior mean)",
    "variance": "variance of each reverse step: fixed_small (the posterior's beta-tilde), fixed_large (beta) or "
                "learned_range (learned between them, Improved DDPM; needs --loss hybrid or kl)",
    "loss": "objective: mse (L_simple), kl (the variational bound) or hybrid (L_simple + 0.001·L_vlb, Improved DDPM)",
    "formulation": "discrete: the T-step DDPM/Improved-DDPM process; edm: EDM's preconditioned denoiser "
                   "with log-normal noise levels (Karras et al. 2022), sampled by every sampler",
    "weighting": "discrete MSE weighting: none (L_simple) or min-snr (min-SNR-gamma, Hang et al. 2023)",
    "snr_gamma": "gamma of --weighting min-snr (the paper's is 5)",
    "sigma_data": "--formulation edm: the data's standard deviation in its preconditioning",
    "p_mean": "mean of ln(sigma) of the training noise levels (--formulation edm, or --timestep-sampler log-normal)",
    "p_std": "standard deviation of ln(sigma) of the training noise levels",
    "timestep_sampler": "how training draws t: uniform, loss-aware (Improved DDPM's importance sampling) or log-normal "
                        "(ln sigma_t ~ N(--p-mean, --p-std), EDM's distribution on the discrete levels)",
}
OPTIM_HELP = {
    "lr": "peak learning rate of AdamW (the GAN's G and D each have one), reached after --warmup steps",
    "batch": "images per optimiser step and process (global batch = batch x processes x --accum)",
    "accum": "micro-batches of --batch accumulated into each optimiser step",
    "warmup": "steps of linear LR warm-up, lr·(step + 1)/warmup; 0 = none",
    "decay": "LR after warm-up: none (constant), cosine or linear to 0 over --steps / --minutes (the horizon is fixed "
             "when the run is created)",
    "grad_clip": "clip the global L2 norm of the gradients to this; 0 = no clipping (the norm is still logged)",
    "weight_decay": "AdamW's decoupled weight decay",
    "beta1": "AdamW's beta1, the decay of the gradient average",
    "beta2": "AdamW's beta2, the decay of the squared-gradient average",
}
GAN_HELP = {
    "z_dim": "GAN: size of the latent z the generator maps to an image",
    "ngf": "GAN: generator base width (its largest feature map has 8·ngf channels)",
    "ndf": "GAN: discriminator base width",
    "d_steps": "GAN: discriminator updates, each on a fresh real batch, per generator update",
    "gan_loss": "GAN loss: ns (non-saturating, DCGAN's), hinge (SNGAN's) or rsgan (relativistic pairs)",
    "r1_gamma": "GAN: weight gamma of the R1 gradient penalty on real images (Mescheder et al. 2018); 0 = off",
    "r1_every": "GAN: apply the R1 penalty every N discriminator updates, scaled by N (lazy, StyleGAN2)",
    "diffaugment": "GAN: DiffAugment policies for every image D sees, a comma list of color, translation, cutout "
                   "(Zhao et al. 2020)",
}
EMA_HELP = {
    "ema_snapshot_every": "with --posthoc-ema: save the power EMAs every N steps to RUN/ema-snapshots (never deleted)",
    "augment": "non-leaking augmentation for small folders (EDM): probability of each of six geometric transforms, "
               "the net conditioned on them; 0 = off, EDM uses 0.12 on CIFAR-10",
    "ema_length": "the post-hoc EMA length sigma_rel that sample, compare, eval and the study use for this run unless "
                  "told otherwise (needs --posthoc-ema); 0 = the fixed --ema-decay EMA. A resume may change it",
}
CLASSIFIER_HELP = {
    "noise": "classifier: training images are schedule (x_t at t ~ U{0..T-1} of --noise-schedule, ADM's noisy "
             "classifier) or none (clean images at sigma 0: a clean classifier for class-consistency checks)",
    "noise_schedule": "classifier: the beta schedule of its training noise levels",
    "noise_steps": "classifier: T of --noise-schedule",
    "holdout": "classifier: images held out of --data (a seeded split, never trained on) for the held-out accuracy: "
               "a fraction like 0.05 or 5%, or a count like 500",
    "eval_every": "classifier: measure the held-out accuracy per noise-level quartile every N steps and at the end "
                  "(stats.jsonl, RUN/classifier-summary.json)",
}
HELP: dict[str, str] = {**GENERAL_HELP, **NET_HELP, **PROCESS_HELP, **OPTIM_HELP, **GAN_HELP, **EMA_HELP,
                        **CLASSIFIER_HELP}
CHOICES: dict[str, tuple[str, ...]] = {
    "precision": ("auto", "fp32", "bf16", "fp16"), "preview_sampler": tuple(SAMPLERS), "schedule": SCHEDULES,
    "prediction": PREDICTIONS, "variance": VARIANCES, "loss": LOSSES, "timestep_sampler": TIMESTEP_SAMPLERS,
    "decay": ("none", "cosine", "linear"), "formulation": FORMULATIONS, "weighting": WEIGHTINGS,
    "gan_loss": GAN_LOSSES, "noise": CLASSIFIER_NOISES, "noise_schedule": SCHEDULES,
}
UNITS = {"resolution": "px", "steps": "optimiser steps", "minutes": "minutes", "batch": "images per process",
         "synthetic_n": "images", "diffusion_steps": "timesteps", "channels": "channels", "ngf": "channels",
         "ndf": "channels", "head_channels": "channels", "attention": "px", "checkpoint_every": "steps",
         "sample_every": "steps", "log_every": "steps", "warmup": "steps", "noise_steps": "timesteps",
         "eval_every": "steps", "holdout": "fraction or images", "preview_count": "images", "preview_steps": "steps",
         "ema_snapshot_every": "steps", "keep": "checkpoints", "max_skips": "steps", "workers": "processes",
         "accum": "micro-batches", "r1_every": "D updates", "d_steps": "D updates"}

# Switches whose value the recipe decides: dest → (flag, help, the recipe's state in words).
RECIPE_SWITCHES: dict[str, tuple[str, str, Callable[[TrainConfig], str]]] = {
    "class_cond": ("--class-cond", "class-conditional: labels from the first-level subfolders of --data (synthetic: "
                   "its four classes)", lambda c: show_value(c.class_cond)),
    "flip": ("--flip", "random horizontal flips of folder data (the synthetic set is not flipped)",
             lambda c: show_value(c.flip)),
    "compile": ("--compile", "torch.compile the network (pays off on long runs)", lambda c: show_value(c.compile)),
    "channels_last": ("--channels-last", "channels-last memory layout (for CUDA, where it usually helps; slower on "
                      "our 2-core CPU)", lambda c: show_value(c.channels_last)),
    "no_channels_last": ("--no-channels-last", "NCHW memory layout (turns a stored --channels-last off on a resume)",
                         lambda c: "channels-last " + show_value(c.channels_last)),
    "no_ema_warmup": ("--no-ema-warmup", "use the EMA decay from the first step (no warm-up)",
                      lambda c: "warm-up " + show_value(c.ema_warmup)),
    "gan_ema": ("--gan-ema", "GAN: keep an EMA of the generator (sampled with standing batch-norm statistics)",
                lambda c: show_value(c.gan.ema)),
    "spectral_norm": ("--spectral-norm", "GAN: spectrally normalised discriminator without batch norm (SNGAN)",
                      lambda c: show_value(c.gan.spectral_norm)),
    "posthoc_ema": ("--posthoc-ema", "also keep EDM2's power-function EMAs (sigma_rel 0.05, 0.10) and save snapshots, "
                    "so `sample --ema-length` can choose the EMA length after training", lambda c: show_value(c.posthoc_ema)),
    "no_posthoc_ema": ("--no-posthoc-ema", "keep the fixed-decay EMA only (turns a recipe's post-hoc EMA off)",
                       lambda c: "post-hoc EMA " + show_value(c.posthoc_ema)),
}
PRESET_DEFAULT = "tiny; dcgan with --model gan; classifier-32 with --model classifier (classifier-64 from --resolution 64)"


def flag_name(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def families(flag: str, section: str | None) -> tuple[str, ...]:
    """The model families that read ``flag`` (of config ``section``)."""
    if section == "diffusion" or flag in DIFFUSION_ONLY:
        return ("diffusion",)
    if section == "gan" or flag in GAN_ONLY:
        return ("gan",)
    if section == "classifier":
        return ("classifier",)
    if section == "net":  # the UNet, or the classifier's trunk
        return ("diffusion", "classifier")
    if flag in PREVIEW_FLAGS:
        return ("diffusion", "gan")
    return MODELS


def check_family(flag: str, section: str | None, model: str) -> None:
    """Refuses a flag the chosen model family would silently ignore."""
    readers = families(flag, section)
    if model not in readers:
        why = " (a classifier draws no preview images)" if flag in PREVIEW_FLAGS else ""
        raise UserError(f"{flag_name(flag)} only applies to --model {' or '.join(readers)} (this run is "
                        f"--model {model}){why}")


def recipe_for(preset: str | None, model: str | None, resolution: int | None = None) -> TrainConfig:
    """``--preset`` (default ``tiny``; ``dcgan`` with ``--model gan``; ``classifier-32`` with ``--model classifier``,
    ``classifier-64`` when ``--resolution`` is 64 or more), checked against ``--model``."""
    if model is not None and model not in MODELS:
        raise UserError(f"--model must be one of {', '.join(MODELS)}; got {model!r}")
    classifier = "classifier-64" if resolution is not None and resolution >= 64 else "classifier-32"
    config = recipe(preset or {"gan": "dcgan", "classifier": classifier}.get(model or "", "tiny"))
    if model is not None and model != config.model:
        matching = [name for name in RECIPES if recipe(name).model == model]
        raise UserError(
            f"--preset {config.preset} is a {config.model} recipe; drop --model {model} "
            f"or pick a {model} preset: {', '.join(matching)}"
        )
    return config


def recipe_value(config: TrainConfig, flag: str) -> Any:
    """The value ``config`` has for override ``flag`` (a key of :data:`OVERRIDES`)."""
    section, field, _ = OVERRIDES[flag]
    return getattr(config if section is None else getattr(config, section), field)


def _recipe_default(config: TrainConfig, flag: str, section: str | None, shown: str) -> dict[str, Any]:
    """The default fields of a spec: the recipe's value, or that the recipe's family does not read the flag."""
    readers = families(flag, section)
    if config.model not in readers:
        shown = f"unused, --model {' or '.join(readers)} only"
    return {"default_label": config.preset, "default_text": shown}


def train_specs(config: TrainConfig | None = None) -> dict[str, Spec]:
    """The spec of every override flag, its default the value of ``config`` (default: the tiny recipe).

    The ranges come from runs/config.py's INT_BOUNDS and NUMBER_BOUNDS, the tables validate() enforces
    (tests/test_fuzz_cli.py checks that they agree). Net fields keep the UNet's own checks."""
    config = config if config is not None else recipe("tiny")
    specs = {}
    for flag, (section, _, kind) in OVERRIDES.items():
        name = flag_name(flag)
        value = recipe_value(config, flag)
        shown = "none" if value in (None, "") else show_value(value)
        common: dict[str, Any] = {"help": HELP[flag], "dest": flag, "unit": UNITS.get(flag, ""),
                                  **_recipe_default(config, flag, section, shown)}
        if flag == "seed":
            specs[flag] = Spec(name, "seed", **common)
        elif name in INT_BOUNDS:
            specs[flag] = Spec(name, "int", low=INT_BOUNDS[name][0], high=INT_BOUNDS[name][1], **common)
        elif name in NUMBER_BOUNDS:
            low, high = NUMBER_BOUNDS[name]
            specs[flag] = Spec(name, "float", low=low, high=high, high_open=True, **common)
        elif flag in CHOICES:
            specs[flag] = Spec(name, "choice", choices=CHOICES[flag], **common)
        elif kind == "ints":  # --attention '' means attention in the middle block only
            specs[flag] = Spec(name, "ints", allow_empty=flag == "attention", **common)
        elif kind == "holdout":  # a fraction or a count: parsed by the command, checked by validate()
            specs[flag] = Spec(name, "str", metavar="F|N", **common)
        else:  # net fields (the UNet names the field and its range) and --data
            specs[flag] = Spec(name, {int: "int", float: "float", str: "str"}[kind], **common)
    return specs


# Switches whose parsed value is None when not given (the others are False).
SWITCHES_NOT_GIVEN_NONE = {"class_cond", "flip", "compile", "gan_ema", "spectral_norm", "posthoc_ema", "no_posthoc_ema"}


def switch_specs(config: TrainConfig | None = None) -> dict[str, Spec]:
    """The specs of the switches whose value the recipe decides (the parsed value is off: None or False)."""
    config = config if config is not None else recipe("tiny")
    return {dest: Spec(name, "switch", text, dest=dest, default=None if dest in SWITCHES_NOT_GIVEN_NONE else False,
                       **_recipe_default(config, dest, None, state(config)))
            for dest, (name, text, state) in RECIPE_SWITCHES.items()}


def choice_specs(config: TrainConfig | None = None) -> dict[str, Spec]:
    """``--preset`` and ``--model``: which recipe the other defaults come from."""
    config = config if config is not None else recipe("tiny")
    return {
        "preset": Spec("--preset", "choice", "recipe: the network plus the paper's process and optimiser settings "
                       "(README, Training; landiff train --preset P --help shows P's values)", choices=tuple(RECIPES),
                       default_text=PRESET_DEFAULT),
        "model": Spec("--model", "choice", "model family: diffusion, gan (the DCGAN baseline) or classifier (ADM's noisy "
                      "classifier, for classifier guidance); picks the family's default recipe", choices=MODELS,
                      default_label=config.preset, default_text=config.model),
    }


def all_specs(config: TrainConfig | None = None) -> dict[str, Spec]:
    """Every recipe-dependent spec of ``landiff train`` by its dest: preset and model, overrides, switches."""
    return {**choice_specs(config), **train_specs(config), **switch_specs(config)}


def _given(args: Sequence[str], flag: str) -> str | None:
    """The value of ``flag`` on a command line not parsed yet (``--flag V`` or ``--flag=V``; the last one wins)."""
    value = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.partition("=")[2]
    return value


def chosen_recipe(args: Sequence[str]) -> TrainConfig:
    """The recipe a ``landiff train`` command line chooses (tiny when it chooses none or a bad one)."""
    resolution = _given(args, "--resolution")
    try:
        return recipe_for(_given(args, "--preset"), _given(args, "--model"),
                          int(resolution) if resolution and resolution.strip().isdigit() else None)
    except UserError:  # parsing the line reports the bad value
        return recipe("tiny")


def describe_recipe(parser: argparse.ArgumentParser, args: Sequence[str]) -> None:
    """Sets the help of every recipe-dependent option of ``parser`` to the recipe ``args`` choose."""
    specs = all_specs(chosen_recipe(args))
    for action in parser._actions:
        if spec_of(action) is not None and action.dest in specs:
            spec = specs[action.dest]
            action.help = spec.help_text()
            action.spec = spec  # type: ignore[attr-defined]
