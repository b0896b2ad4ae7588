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

from landiff.cli.train_options import (
    NET_FLAGS,
    OVERRIDES,
    all_specs,
    check_family,
    recipe_for,
    train_specs,
)
from landiff.errors import UserError
from landiff.options import DEVICE, Spec, check_memory, check_output_dir, dcgan_bytes, unet_bytes
from landiff.runs.config import (
    DISCRETE_ONLY,
    REFUSED_COMBINATIONS,
    DiffusionConfig,
    TrainConfig,
    refuse_ignored_flags,
    validate,
)
from landiff.train import train
from landiff.train.distributed import env_dist

RUN_SPEC = Spec("--run", "path", "run directory (created, or resumed when it exists)", required=True)
_train_specs = train_specs  # the override specs (tests/test_fuzz_cli.py checks their ranges against validate())
DESCRIPTION = ("train a diffusion model (or `--model gan`, the DCGAN baseline, or `--model classifier`, ADM's noisy "
               "classifier for guidance); re-running the same command resumes")
RECIPE_NOTE = ("A value after a recipe's name (tiny: 0.001) is that recipe's default; `landiff train --preset P --help` "
               "(or --model gan|classifier --help) shows recipe P's.")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train or resume a diffusion model, the DCGAN baseline or a noisy classifier (re-run the same "
                      "command to resume)",
        description=f"{textwrap.fill(DESCRIPTION + '.', width=96)}\n\n{textwrap.fill(RECIPE_NOTE, width=96)}",
        epilog=refused_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    RUN_SPEC.add_to(p)
    for spec in all_specs().values():  # the tiny recipe's defaults; main.build_parser shows another recipe's
        spec.add_to(p)
    DEVICE.add_to(p)
    Spec("--restart", "switch", "move the existing run aside (RUN/previous-*) and start over").add_to(p)
    Spec("--yes", "switch", "do not ask before --restart").add_to(p)
    Spec("--dry-run", "switch", "print the resolved config as JSON and exit").add_to(p)
    Spec("--tensorboard", "switch", "also write TensorBoard event files to RUN/tensorboard (every stats.jsonl number, "
         "the preview grids, the config; view with tensorboard --logdir RUN/tensorboard); needs pip install "
         "'landiff[tensorboard]'; not stored in the run: pass it on each resume").add_to(p)
    p.set_defaults(func=run)


def refused_epilog() -> str:
    """The ``train --help`` epilog: every flag combination validate() refuses, and why (one line each)."""
    lines = ["refused flag combinations (each ends with a one-line error before any training):"]
    for text in REFUSED_COMBINATIONS:
        lines += textwrap.wrap(text, width=96, initial_indent="  - ", subsequent_indent="    ")
    return "\n".join(lines)


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
    config = recipe_for(args.preset, args.model, _parse("resolution", args.resolution, int) if args.resolution else None)
    sections: dict[str | None, dict[str, Any]] = {None: {}, "net": {}, "diffusion": {}, "optim": {}, "gan": {},
                                                  "classifier": {}}
    for flag, (section, field, kind) in OVERRIDES.items():
        raw = getattr(args, flag)
        if raw is not None:
            check_family(flag, section, config.model)
            sections[section][field] = _parse(flag, raw, kind)
    for switch, field in (("gan_ema", "ema"), ("spectral_norm", "spectral_norm")):
        if getattr(args, switch):
            check_family(switch, None, config.model)
            sections["gan"][field] = True
    for flag in ("class_cond", "flip", "compile", "posthoc_ema"):
        if getattr(args, flag):
            if flag == "posthoc_ema":
                check_family(flag, None, config.model)
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
    check_family("no_posthoc_ema", None, config.model)
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
    state = train(config, args.run, device=args.device, restart=args.restart, log=print if main_rank else _quiet,
                  tensorboard=args.tensorboard)
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
