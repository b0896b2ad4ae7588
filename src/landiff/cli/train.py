"""``landiff train``: train (or resume) a model; every recipe field can be overridden by a flag.

    landiff train --run runs/tiny --preset tiny --steps 3000          # re-run the same line to resume
    landiff train --run runs/c --preset iddpm-cifar --data photos/ --class-cond --dry-run
    landiff train --run runs/gan --model gan --resolution 32 --steps 5000   # DCGAN baseline (recipe dcgan)
    landiff train --run runs/clf --model classifier --minutes 10            # ADM's noisy classifier (classifier-32)

``--model gan`` defaults to the ``dcgan`` recipe (and ``--preset dcgan`` implies ``--model gan``);
``--model classifier`` to ``classifier-32`` (``classifier-64`` with ``--resolution 64`` or more), whose
run guides a diffusion model (``landiff sample --classifier``). Flags of another family (e.g.
``--schedule`` for a GAN, ``--z-dim`` for diffusion, ``--preview-count`` for a classifier) are refused.

Data-parallel on several GPUs or nodes: the same command under ``torchrun`` (``--batch`` is per
process; the log states the global batch). SIGTERM or Ctrl-C saves a checkpoint at the end of the
current step and exits 0 (a second Ctrl-C aborts at once); re-running the command resumes.

    torchrun --nproc_per_node=4 -m landiff -- train --run runs/c --preset iddpm-cifar --batch 32
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
from typing import Any

import torch

from landiff.diffusion import FORMULATIONS, LOSSES, PREDICTIONS, SCHEDULES, TIMESTEP_SAMPLERS, VARIANCES, WEIGHTINGS
from landiff.errors import UserError
from landiff.options import DEVICE, Spec, check_memory, check_output_dir, dcgan_bytes, unet_bytes
from landiff.runs.config import (
    CLASSIFIER_NOISES,
    DISCRETE_ONLY,
    GAN_LOSSES,
    INT_BOUNDS,
    MODELS,
    NUMBER_BOUNDS,
    RECIPES,
    REFUSED_COMBINATIONS,
    DiffusionConfig,
    TrainConfig,
    recipe,
    refuse_ignored_flags,
    validate,
)
from landiff.samplers import SAMPLERS
from landiff.train import train
from landiff.train.distributed import env_dist

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


def _train_specs() -> dict[str, Spec]:
    """The spec of every override flag; the ranges come from runs/config.py's INT_BOUNDS and
    NUMBER_BOUNDS, the tables validate() enforces (tests/test_fuzz_cli.py checks that they agree).
    Net fields keep the UNet's own checks."""
    ints = {flag: INT_BOUNDS["--" + flag.replace("_", "-")] for flag in OVERRIDES
            if "--" + flag.replace("_", "-") in INT_BOUNDS and flag != "seed"}
    numbers = {flag: NUMBER_BOUNDS["--" + flag.replace("_", "-")] for flag in OVERRIDES
               if "--" + flag.replace("_", "-") in NUMBER_BOUNDS}
    choices = {"precision": ("auto", "fp32", "bf16", "fp16"), "preview_sampler": SAMPLERS,
               "schedule": SCHEDULES, "prediction": PREDICTIONS, "variance": VARIANCES, "loss": LOSSES,
               "timestep_sampler": TIMESTEP_SAMPLERS, "decay": ("none", "cosine", "linear"),
               "formulation": FORMULATIONS, "weighting": WEIGHTINGS, "gan_loss": GAN_LOSSES,
               "noise": CLASSIFIER_NOISES, "noise_schedule": SCHEDULES}
    units = {"resolution": "px", "steps": "optimiser steps", "minutes": "minutes", "batch": "images per process",
             "synthetic_n": "images", "diffusion_steps": "timesteps T", "channels": "channels",
             "checkpoint_every": "steps", "sample_every": "steps", "log_every": "steps", "warmup": "steps",
             "noise_steps": "timesteps T", "eval_every": "steps", "holdout": "fraction or images"}
    specs = {}
    for flag, (_, _, kind) in OVERRIDES.items():
        name = "--" + flag.replace("_", "-")
        common: dict[str, Any] = {"help": _help(flag), "dest": flag, "unit": units.get(flag, "")}
        if flag == "seed":
            specs[flag] = Spec(name, "seed", **common)
        elif flag in ints:
            specs[flag] = Spec(name, "int", low=ints[flag][0], high=ints[flag][1], **common)
        elif flag in numbers:
            low, high = numbers[flag]
            specs[flag] = Spec(name, "float", low=low, high=high, high_open=True, **common)
        elif flag in choices:
            specs[flag] = Spec(name, "choice", choices=tuple(choices[flag]), **common)
        elif kind == "ints":  # --attention '' means attention in the middle block only
            specs[flag] = Spec(name, "ints", allow_empty=flag == "attention", **common)
        elif kind == "holdout":  # a fraction or a count: parsed by _parse, checked by validate()
            specs[flag] = Spec(name, "str", metavar="F|N", **common)
        else:  # net fields (the UNet names the field and its range) and --data
            specs[flag] = Spec(name, {int: "int", float: "float", str: "str"}[kind], **common)
    return specs


RUN_SPEC = Spec("--run", "path", "run directory (created, or resumed when it exists)", required=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train or resume a diffusion model, the DCGAN baseline or a noisy classifier (re-run the same "
                      "command to resume)",
        epilog=refused_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    RUN_SPEC.add_to(p)
    Spec("--preset", "choice", "recipe and network (default tiny; dcgan with --model gan; classifier-32 with --model "
         "classifier, classifier-64 from --resolution 64)", choices=tuple(RECIPES)).add_to(p)
    Spec("--model", "choice", "model family: diffusion, gan (the DCGAN baseline) or classifier (ADM's noisy "
         "classifier, for classifier guidance) (default: the preset's, diffusion for tiny)", choices=MODELS).add_to(p)
    for spec in _train_specs().values():
        spec.add_to(p)
    p.add_argument("--class-cond", action="store_true", default=None, help="class-conditional (labels from subfolders)")
    p.add_argument("--flip", action="store_true", default=None, help="random horizontal flips")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the network (long runs)")
    p.add_argument(
        "--channels-last",
        action="store_true",
        help="channels-last memory layout (for CUDA, where it usually helps; slower on our 2-core CPU)",
    )
    p.add_argument("--no-channels-last", action="store_true", help="NCHW memory layout (the default)")
    p.add_argument("--no-ema-warmup", action="store_true", help="use the EMA decay from the first step")
    p.add_argument("--gan-ema", action="store_true", default=None,
                   help="GAN: keep an EMA of the generator (sampled with standing batch-norm statistics)")
    p.add_argument("--spectral-norm", action="store_true", default=None,
                   help="GAN: spectrally normalised discriminator without batch norm (SNGAN)")
    p.add_argument("--posthoc-ema", action="store_true", default=None,
                   help="also keep EDM2's power-function EMAs (sigma_rel 0.05, 0.10) and save snapshots, so "
                        "`sample --ema-length` can choose the EMA length after training (on in the tiny preset)")
    p.add_argument("--no-posthoc-ema", action="store_true", default=None,
                   help="keep the fixed-decay EMA only (turns the tiny preset's post-hoc EMA off)")
    DEVICE.add_to(p)
    p.add_argument("--restart", action="store_true", help="move the existing run aside and start over")
    p.add_argument("--yes", action="store_true", help="do not ask before --restart")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=run)


def refused_epilog() -> str:
    """The ``train --help`` epilog: every flag combination validate() refuses, and why (one line each)."""
    lines = ["refused flag combinations (each ends with a one-line error before any training):"]
    for text in REFUSED_COMBINATIONS:
        lines += textwrap.wrap(text, width=96, initial_indent="  - ", subsequent_indent="    ")
    return "\n".join(lines)


PROCESS_HELP = {
    "formulation": "discrete: the T-step DDPM/Improved-DDPM process (default); edm: EDM's preconditioned denoiser "
                   "with log-normal noise levels (Karras et al. 2022), sampled by every sampler",
    "weighting": "discrete MSE weighting: none (L_simple) or min-snr (min-SNR-gamma, Hang et al. 2023)",
    "snr_gamma": "gamma of --weighting min-snr (default 5, the paper's)",
    "sigma_data": "--formulation edm: the data's standard deviation in its preconditioning (default 0.5)",
    "p_mean": "mean of ln(sigma) during training (--formulation edm, or --timestep-sampler log-normal; default -1.2)",
    "p_std": "standard deviation of ln(sigma) during training (default 1.2)",
    "timestep_sampler": "uniform, loss-aware (Improved DDPM's importance sampling) or log-normal "
                        "(ln sigma_t ~ N(--p-mean, --p-std), EDM's distribution on the discrete levels)",
}


CLASSIFIER_HELP = {
    "noise": "classifier: training images are schedule (x_t at t ~ U{0..T-1} of --noise-schedule, ADM's noisy "
             "classifier; default) or none (clean images at sigma 0: a clean classifier for class-consistency checks)",
    "noise_schedule": "classifier: the beta schedule of its training noise levels (default cosine, as diffusion)",
    "noise_steps": "classifier: T of --noise-schedule (default 1000)",
    "holdout": "classifier: images held out of --data (a seeded split, never trained on) for the held-out accuracy: "
               "a fraction like 0.05 or 5%, or a count like 500 (default 0.05)",
    "eval_every": "classifier: measure the held-out accuracy per noise-level quartile every N steps and at the end "
                  "(stats.jsonl, RUN/classifier-summary.json; default 500)",
}


GAN_HELP = {
    "gan_loss": "GAN loss: ns (non-saturating, DCGAN's; default), hinge (SNGAN's) or rsgan (relativistic pairs)",
    "r1_gamma": "GAN: weight gamma of the R1 gradient penalty on real images (Mescheder et al. 2018); 0 = off (default)",
    "r1_every": "GAN: apply the R1 penalty every N discriminator updates, scaled by N (lazy, StyleGAN2; default 16)",
    "diffaugment": "GAN: DiffAugment policies for every image D sees, a comma list of color, translation, cutout "
                   "(Zhao et al. 2020; default: none)",
}


def _help(flag: str) -> str:
    section, field, _ = OVERRIDES[flag]
    if flag == "batch":
        return "override optim.batch: examples per process (global batch = batch x processes x --accum)"
    if flag == "max_skips":
        return "stop after this many non-finite (NaN/Inf) steps in a row (default 20)"
    if flag == "augment":
        return ("non-leaking augmentation for small folders (EDM): probability of each of six geometric transforms, "
                "the net conditioned on them; 0 = off (default), EDM uses 0.12 on CIFAR-10")
    if flag == "ema_length":
        return ("the post-hoc EMA length sigma_rel that sample, compare, eval and the study use for this run unless "
                "told otherwise (needs --posthoc-ema; tiny: 0.1); 0 = the fixed --ema-decay EMA. A resume may change it "
                "(from the next checkpoint)")
    if flag == "ema_snapshot_every":
        return "with --posthoc-ema: save the power EMAs every N steps to RUN/ema-snapshots (default 200)"
    if flag in PROCESS_HELP:
        return PROCESS_HELP[flag]
    if flag in GAN_HELP:
        return GAN_HELP[flag]
    if flag in CLASSIFIER_HELP:
        return CLASSIFIER_HELP[flag]
    return f"override {section + '.' if section else ''}{field}"


def _parse(flag: str, raw: str, kind: Any) -> Any:
    if not isinstance(raw, str):  # already typed and range-checked by its Spec while parsing
        return raw
    if kind == "holdout":
        return _holdout(raw)
    try:
        if kind == "ints":
            return tuple(int(v) for v in raw.split(",") if v.strip())
        return kind(raw)
    except ValueError:
        want = {int: "an integer", float: "a number", "ints": "comma-separated integers"}[kind]
        raise UserError(f"--{flag.replace('_', '-')} must be {want}, got {raw!r}") from None


def _holdout(raw: str) -> float | int:
    """``--holdout``: ``5%`` or ``0.05`` (a fraction), ``500`` (a count); the range is validate()'s."""
    text = raw.strip()
    try:
        if text.endswith("%"):
            return float(text[:-1]) / 100
        return int(text) if text.isdigit() else float(text)
    except ValueError:
        raise UserError(f"--holdout must be a fraction (e.g. 0.05 or 5%) or a number of images (e.g. 500), got {raw!r}") from None


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """Recipe of ``--preset`` (or of ``--model``) with every given flag applied, validated."""
    config = _recipe_for(args.preset, args.model, _parse("resolution", args.resolution, int) if args.resolution else None)
    sections: dict[str | None, dict[str, Any]] = {None: {}, "net": {}, "diffusion": {}, "optim": {}, "gan": {},
                                                  "classifier": {}}
    for flag, (section, field, kind) in OVERRIDES.items():
        raw = getattr(args, flag)
        if raw is not None:
            _check_family(flag, section, config.model)
            sections[section][field] = _parse(flag, raw, kind)
    for switch, field in (("gan_ema", "ema"), ("spectral_norm", "spectral_norm")):
        if getattr(args, switch):
            _check_family(switch, None, config.model)
            sections["gan"][field] = True
    for flag in ("class_cond", "flip", "compile", "posthoc_ema"):
        if getattr(args, flag):
            if flag == "posthoc_ema":
                _check_family(flag, None, config.model)
            sections[None][flag] = True
    _posthoc_switch(args, config, sections[None])
    if args.channels_last and args.no_channels_last:
        raise UserError("--channels-last and --no-channels-last contradict each other; pass one")
    if args.channels_last or args.no_channels_last:
        sections[None]["channels_last"] = bool(args.channels_last)
    if args.no_ema_warmup:
        sections[None]["ema_warmup"] = False
    if "resolution" in sections[None] and config.model != "gan":  # the UNet's (or classifier trunk's) design size
        sections["net"].setdefault("resolution", sections[None]["resolution"])
    try:
        net = dataclasses.replace(config.net, **sections["net"])
    except TypeError as err:
        raise UserError(f"invalid network override: {err}") from None
    except UserError as err:  # name the flag, not only the UNet field
        flags = sorted({flag for field, flag in NET_FLAGS.items() if field in str(err)})
        raise UserError(f"{err} (set by {', '.join(flags) or 'the preset'})") from None
    config = dataclasses.replace(
        config,
        net=net,
        diffusion=_process(config.diffusion, sections["diffusion"]),
        optim=dataclasses.replace(config.optim, **sections["optim"]),
        gan=dataclasses.replace(config.gan, **sections["gan"]),
        classifier=dataclasses.replace(config.classifier, **sections["classifier"]),
        **sections[None],
    )
    validate(config)
    refuse_ignored_flags(config, {f"{k}.{f}" if k else f for k, fields in sections.items() for f in fields})
    return config


def _posthoc_switch(args: argparse.Namespace, config: TrainConfig, given: dict[str, Any]) -> None:
    """``--no-posthoc-ema``: off, with the preset's sampling length back to the fixed EMA unless given."""
    if not args.no_posthoc_ema:
        return
    _check_family("no_posthoc_ema", None, config.model)
    if args.posthoc_ema:
        raise UserError("--posthoc-ema and --no-posthoc-ema contradict each other; pass one")
    given["posthoc_ema"] = False
    given.setdefault("ema_length", 0.0)


def _process(recipe_process: DiffusionConfig, given: dict[str, Any]) -> DiffusionConfig:
    """The recipe's process with the given flags; ``--formulation edm`` on a discrete recipe resets the
    recipe's discrete-only fields (e.g. the tiny preset's v-prediction) that were not given, so the
    flags a user typed are the only ones validate() can refuse."""
    if given.get("formulation") == "edm" and recipe_process.formulation != "edm":
        default = DiffusionConfig()
        reset = {name: getattr(default, name) for name in DISCRETE_ONLY if name not in given}
        recipe_process = dataclasses.replace(recipe_process, **reset)
    return dataclasses.replace(recipe_process, **given)


def _recipe_for(preset: str | None, model: str | None, resolution: int | None = None) -> TrainConfig:
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


def _families(flag: str, section: str | None) -> tuple[str, ...]:
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


def _check_family(flag: str, section: str | None, model: str) -> None:
    """Refuses a flag the chosen model family would silently ignore."""
    families = _families(flag, section)
    if model not in families:
        why = " (a classifier draws no preview images)" if flag in PREVIEW_FLAGS else ""
        raise UserError(f"--{flag.replace('_', '-')} only applies to --model {' or '.join(families)} (this run is "
                        f"--model {model}){why}")


def _confirm_restart(args: argparse.Namespace) -> None:
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise UserError("--restart moves the existing run aside; add --yes to confirm when not on a terminal")
    answer = input(f"Move the run in {args.run} aside and start over? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise UserError("restart cancelled")


def run(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    if args.dry_run:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    check_output_dir(args.run, "--run")  # before any data is read or a step is taken
    check_fits(config, args.device)
    if args.restart:
        _confirm_restart(args)
    main_rank = env_dist().is_main
    state = train(config, args.run, device=args.device, restart=args.restart, log=print if main_rank else _quiet)
    if main_rank:
        done = f"done: step {state.step}" if state.step >= config.train_steps else (
            f"stopped at step {state.step} of {config.train_steps} (re-run the same command to continue)")
        print(f"{done}, {state.images_seen} images seen, {state.seconds:.0f} s, {state.skipped_steps} skipped "
              f"step(s); run in {args.run}")
    return 0


def check_fits(config: TrainConfig, device: str | None) -> None:
    """Refuses a network or batch that cannot fit in memory (a lower bound, options.unet_bytes)."""
    where = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if config.model == "gan":
        g = config.gan
        parts = dcgan_bytes(g.z_dim, g.ngf, g.ndf, config.resolution, config.optim.batch, training=True)
        check_memory(parts, ["--batch", "--ngf", "--ndf", "--z-dim"], where)
    elif config.model == "classifier":  # the encoder half: num_res_blocks of the UNet's 2·num_res_blocks + 1 blocks
        blocks = config.net.num_res_blocks
        parts = {k: v * blocks / (2 * blocks + 1) for k, v in unet_bytes(config.net, config.optim.batch, training=True).items()}
        check_memory(parts, ["--batch", "--channels", "--channel-mult", "--res-blocks", "--resolution"], where)
    else:
        check_memory(unet_bytes(config.net, config.optim.batch, training=True),
                     ["--batch", "--channels", "--channel-mult", "--res-blocks", "--resolution"], where)
        # the process's tables (betas, alphas, their products and roots …): about 20 float64 per timestep
        check_memory({"diffusion schedule tables": 8.0 * 20 * config.diffusion.num_steps}, ["--diffusion-steps"], "cpu")


def _quiet(_: str) -> None:
    pass
