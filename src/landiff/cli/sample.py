"""``landiff sample``: images from a trained run, one fixed seed per image (image i uses seed S+i).

    landiff sample --run runs/tiny --n 64 --sampler dpm++ --steps 20 --out samples/tiny
    landiff sample --run runs/gan --n 64            # a DCGAN run: one generator pass, z of image i from seed S+i
    landiff sample --run runs/tiny --classifier runs/clf --classifier-scale 2 --class cat   # classifier guidance

Classifier guidance (Dhariwal & Nichol 2021, arXiv 2105.05233 §4) adds s·∇log p(y | x_t) of a noisy-image
classifier run (``landiff train --model classifier``) to the score at every step of every sampler: a
class-conditional run is guided towards the --class it is sampled with (matched to the classifier by class
name), an unconditional run towards the classifier's --class (default all: image i gets class i mod K).

For GAN runs the sampler options (--sampler, --steps, --spacing, --eta, --churn…, --rho, --precision,
--no-clip, --denoise-strip) do not apply and are reported as ignored; a class-conditional GAN cycles through its classes unless
--class names one.

Under torchrun the images are shared out between the processes (``--batch`` per process per
round); rank 0 gathers them and writes every file. Image i depends only on seed S+i, so the
output is the same on any number of processes.

    torchrun --nproc_per_node=4 -m landiff -- sample --run runs/tiny --n 50000 --batch 64
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from landiff.errors import UserError
from landiff.generate import check_classifier, class_labels, classifier_class_labels, default_steps, to_classifier_labels
from landiff.grid import png_bytes, save_grid, to_uint8
from landiff.metrics.provenance import provenance_for, sampling_precision
from landiff.nets.dcgan import latents
from landiff.options import (
    BATCH,
    DEVICE,
    N_IMAGES,
    OUT_DIR,
    RUN,
    SEED,
    STEPS,
    Spec,
    check_memory,
    check_output_dir,
    check_seed,
    dcgan_bytes,
    unet_bytes,
)
from landiff.runs.files import atomic_write, atomic_write_bytes
from landiff.samplers import (
    DEFAULT_ETA,
    DEFAULT_SAMPLER,
    DEFAULT_SPACING,
    DEFAULT_STEPS,
    KARRAS_RHO,
    PRECISIONS,
    SAMPLERS,
    SPACINGS,
    Churn,
    ClassifierGuidance,
    classifier_free_guidance,
    heun_levels,
    refuse_inapplicable,
    resolve_sampling_precision,
    sample,
)
from landiff.train import load_run
from landiff.train.distributed import Dist, gather_cat, process_group

if TYPE_CHECKING:
    from landiff.runs.load import LoadedRun
    from landiff.samplers import SamplerName
    from landiff.samplers.timesteps import StepCallback


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sample", help="draw images from a trained run",
        description="images from fixed seeds (image i uses seed S+i at any batch size), a grid and a `samples.npz`; "
                    "optionally classifier-guided")
    RUN.add_to(p, help="run directory: its latest checkpoint", default_text="none: give --run or --ckpt")
    Spec("--ckpt", "path", "a checkpoint file (RUN/checkpoints/step-N.safetensors) instead of --run's latest",
         default_text="--run's latest").add_to(p)
    OUT_DIR.add_to(p, help="output directory", default_text="RUN/samples/<sampler>-<steps> (RUN/samples/gan for a GAN)")
    N_IMAGES.add_to(p, default=16)
    BATCH.add_to(p, default=16)
    Spec("--sampler", "choice", "dpm++sde (DPM-Solver++(2M) SDE on karras levels, the one setting within 1.15x of the "
         "best SWD at up to 1000 evaluations on all three measured models; benchmarks/RESULTS.md), dpm++, heun (EDM, "
         "with --churn), ddim or ddpm (ancestral); not used by GAN runs", choices=tuple(SAMPLERS),
         default_text=DEFAULT_SAMPLER).add_to(p)
    STEPS.add_to(p, help="network evaluations; heun uses (STEPS+1)//2 noise levels",
                 default_text=f"{DEFAULT_STEPS}; 250 for ddpm")
    Spec("--spacing", "choice", "which timesteps (noise levels) the steps visit", choices=tuple(SPACINGS),
         default_text="per sampler: " + ", ".join(f"{s} {v}" for s, v in DEFAULT_SPACING.items())).add_to(p)
    Spec("--rho", "float", "rho of the karras spacing (EDM eq. 5)", low=0.0, low_open=True,
         default_text=f"{KARRAS_RHO:g}").add_to(p)
    # DDIM (Song et al. 2021, eq. 16): eta in [0, 1] goes from deterministic DDIM to DDPM's variance.
    Spec("--eta", "float", "ddim: eta (0 = deterministic, 1 = DDPM's variance); dpm++sde: the share of the SDE's noise "
         "(1 = the SDE)", low=0.0, high=1.0,
         default_text=", ".join(f"{s} {v:g}" for s, v in DEFAULT_ETA.items())).add_to(p)
    # EDM (Karras et al. 2022) Alg. 2: noise re-injected at levels S_tmin <= sigma <= S_tmax.
    Spec("--churn", "float", "heun: EDM's S_churn (0 = deterministic)", default=0.0, low=0.0).add_to(p)
    Spec("--churn-tmin", "float", "heun: lowest sigma that is churned (EDM's S_tmin)", default=Churn.s_tmin,
         low=0.0).add_to(p)
    Spec("--churn-tmax", "float", "heun: highest sigma that is churned (EDM's S_tmax)", default=Churn.s_tmax,
         low=0.0).add_to(p)
    Spec("--churn-noise", "float", "heun: scale of the churn noise (EDM's S_noise)", default=Churn.s_noise, low=0.0,
         low_open=True).add_to(p)
    Spec("--precision", "choice", "auto (bf16 autocast for the network where the device has native bf16, measured "
         "1.96x faster at the same SWD; else fp32), fp32 or bf16; the sampler's maths stays float32",
         default="auto", choices=PRECISIONS).add_to(p)
    SEED.add_to(p, help="image i uses seed SEED+i")
    Spec("--class", "str", "class name, or 'all' to cycle through classes; with --classifier on an unconditional run, "
         "a class of the classifier", dest="class_name",
         default_text="none (a class-conditional GAN, or --classifier on an unconditional run: all)").add_to(p)
    Spec("--guidance", "float", "classifier-free guidance scale w (1 = conditional)", default=1.0, low=0.0).add_to(p)
    Spec("--classifier", "path", "classifier run directory (trained with `landiff train --model classifier`) whose "
         "gradient steers every step towards --class (classifier guidance, ADM); diffusion runs only",
         default_text="none: unguided").add_to(p)
    Spec("--classifier-scale", "float", "classifier guidance scale s, a factor on grad log p(class | x_t) added to the "
         "score (0 = unguided, 1 = the exact p(x | class) for a perfect classifier; ADM uses 1-10); needs --classifier",
         low=0.0, default_text="1 with --classifier").add_to(p)
    Spec("--no-ema", "switch", "use the raw weights instead of the EMA").add_to(p)
    Spec("--ema-length", "float", "a run trained with --posthoc-ema: sample the post-hoc EMA of this relative length "
         "sigma_rel (EDM2; e.g. 0.05 to 0.2), reconstructed from its snapshots; 0 = the fixed-decay EMA", low=0.0,
         high=0.25, default_text="the run's own length (tiny: 0.1)").add_to(p)
    Spec("--no-clip", "switch", "do not clip predicted x0 to [-1, 1]").add_to(p)
    Spec("--denoise-strip", "switch", "also write denoise-strip.png: x_t and predicted x0 of sample 0 at about 8 of the "
         "steps").add_to(p)
    DEVICE.add_to(p)
    p.set_defaults(func=run)


def validate_args(args: argparse.Namespace) -> None:
    """Range checks of the numeric options, each naming the option and what it accepts."""
    for flag, value in (("--n", args.n), ("--batch", args.batch)):
        if value < 1:
            raise UserError(f"{flag} must be an integer >= 1, got {value}")
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be an integer >= 1, got {args.steps}")
    check_seed(args.seed, "--seed", count=args.n)  # image i uses seed + i
    if args.eta is not None and not (math.isfinite(args.eta) and 0 <= args.eta <= 1):
        raise UserError(f"--eta must be a number in [0, 1] (0 = deterministic DDIM), got {args.eta}")
    _churn(args).check()
    if args.rho is not None and not (math.isfinite(args.rho) and args.rho > 0):
        raise UserError(f"--rho must be a finite number > 0 (EDM uses 7), got {args.rho}")
    if args.classifier_scale is not None and args.classifier is None:
        raise UserError("--classifier-scale needs --classifier RUN (a run trained with `landiff train --model classifier`); "
                        "add --classifier or drop --classifier-scale")
    if args.classifier_scale is not None and not (math.isfinite(args.classifier_scale) and args.classifier_scale >= 0):
        raise UserError(f"--classifier-scale must be a finite number >= 0 (0 = unguided), got {args.classifier_scale}")


def _churn(args: argparse.Namespace) -> Churn:
    return Churn(s_churn=args.churn, s_tmin=args.churn_tmin, s_tmax=args.churn_tmax, s_noise=args.churn_noise)


# flag -> (attribute of the parsed args, field of Churn)
CHURN_FLAGS = {"--churn": ("churn", "s_churn"), "--churn-tmin": ("churn_tmin", "s_tmin"),
               "--churn-tmax": ("churn_tmax", "s_tmax"), "--churn-noise": ("churn_noise", "s_noise")}


def _churn_flags_given(args: argparse.Namespace) -> list[str]:
    """The --churn… flags set to something other than their defaults."""
    defaults = Churn()
    return [flag for flag, (name, field) in CHURN_FLAGS.items() if getattr(args, name) != getattr(defaults, field)]


def _refuse_inapplicable(args: argparse.Namespace, sampler: str, spacing: str) -> None:
    """Refuses an option the chosen sampler would ignore (one line naming it and the fix)."""
    refuse_inapplicable(sampler, args.eta, None)  # the library's own check of --eta
    changed = _churn_flags_given(args)
    if changed and sampler != "heun":
        verb, them = ("applies", "it") if len(changed) == 1 else ("apply", "them")
        raise UserError(f"{', '.join(changed)} {verb} to --sampler heun only, not {sampler}; drop {them} or use --sampler heun")
    if args.rho is not None and spacing != "karras":
        raise UserError(f"--rho applies to the karras spacing only, not {spacing}; drop --rho or use --spacing karras")
    if not math.isfinite(args.guidance) or args.guidance < 0:
        raise UserError(f"--guidance must be a finite number >= 0 (1 = plain conditional), got {args.guidance}")


def run(args: argparse.Namespace) -> int:
    validate_args(args)
    with process_group(args.device) as (dist, device):
        if args.ema_length is not None and args.no_ema:
            raise UserError("--ema-length chooses an EMA and --no-ema asks for the raw weights; pass one")
        loaded = load_run(args.run, checkpoint=args.ckpt, device=str(device), ema_length=args.ema_length)
        if getattr(loaded, "is_classifier", False):
            raise UserError(f"--run {args.run or args.ckpt} is a classifier run, which draws no images; pass it as "
                            "--classifier and a diffusion run as --run")
        if loaded.ema_error is not None and dist.is_main:
            print(f"post-hoc EMA sigma_rel {loaded.ema_length:g}: profile reconstructed within "
                  f"{100 * loaded.ema_error:.1f} % (L2)")
        if loaded.is_gan:
            if args.classifier is not None:
                raise UserError(f"--classifier guides diffusion sampling; {args.run or args.ckpt} is a GAN run: "
                                "drop --classifier and --classifier-scale")
            return _run_gan(args, loaded, dist)
        return _run_diffusion(args, loaded, dist)


def _run_diffusion(args: argparse.Namespace, loaded: LoadedRun, dist: Dist) -> int:
    sampler: SamplerName = args.sampler or DEFAULT_SAMPLER
    diffusion = loaded.diffusion
    if diffusion is None:  # not reached: run() sends GAN runs to _run_gan
        raise UserError(f"{args.run} is a GAN run; it has no diffusion sampler")
    steps = args.steps if args.steps is not None else default_steps(sampler)
    spacing = args.spacing or DEFAULT_SPACING[sampler]
    _refuse_inapplicable(args, sampler, spacing)
    precision = resolve_sampling_precision(args.precision, next(loaded.ema_model.parameters()).device)
    params = _sampler_params(args, sampler, spacing)
    net = loaded.model if args.no_ema else loaded.ema_model
    model: Callable[..., torch.Tensor] = net
    device = next(net.parameters()).device
    classifier = _load_classifier(args, device)
    unconditional_guided = classifier is not None and loaded.num_classes == 0  # --class names the classifier's class
    labels = None if unconditional_guided else class_labels(loaded, args.class_name, args.n, device)
    steer = _classifier_guidance(args, loaded, classifier, labels, device)
    if args.guidance != 1.0:
        if labels is None:
            raise UserError("--guidance needs --class (a class-conditional run and a class to guide towards)")
        model = classifier_free_guidance(net, args.guidance, null_label=loaded.config.net.num_classes)
    out = Path(args.out) if args.out else Path(loaded.checkpoint).parent.parent / "samples" / f"{sampler}-{steps}"
    shape = (loaded.config.net.in_channels, loaded.config.resolution, loaded.config.resolution)
    _check_before_sampling(args, out, unet_bytes(loaded.config.net, args.batch, training=False), shape, device)
    strip: list[np.ndarray] = []

    def draw(first: int, count: int) -> torch.Tensor:
        seeds = list(range(args.seed + first, args.seed + first + count))
        kwargs = {"y": labels[first : first + count]} if labels is not None else None
        calls = heun_levels(steps) if sampler == "heun" else steps  # the callback runs once per level
        callback = _strip_callback(strip, calls) if args.denoise_strip and first == 0 else None
        with torch.no_grad():
            return sample(model, diffusion, shape, seeds, sampler=sampler, steps=steps, spacing=spacing,
                          eta=args.eta, churn=_churn(args) if sampler == "heun" else None,
                          rho=args.rho if args.rho is not None else KARRAS_RHO, clip_denoised=not args.no_clip,
                          model_kwargs=kwargs, device=device, precision=precision, callback=callback,
                          progress=dist.is_main,
                          classifier_guidance=None if steer is None else steer.for_batch(first, first + count))

    images = _sample_sharded(args, dist, out, draw, shape)
    if dist.is_main:
        meta = {
            "checkpoint": str(loaded.checkpoint), "checkpoint_sha256": loaded.checkpoint_sha256,
            "step": loaded.state.step, "sampler": sampler, "steps": steps, **params, "seed": args.seed,
            "class": args.class_name, "guidance": args.guidance, "ema": not args.no_ema,
            "config": loaded.config.to_dict(),
            "precision": precision, **_classifier_meta(classifier, steer),
            "provenance": _provenance(args, loaded, labels, sampler=sampler, steps=steps, params=params, autocast=precision,
                                      classifier=classifier, steer=steer),
        }
        _finish(out, images, meta)
        if strip:
            save_grid(np.concatenate(strip), out / "denoise-strip.png", columns=len(strip) // 2)
    return 0


def _load_classifier(args: argparse.Namespace, device: torch.device) -> LoadedRun | None:
    """The ``--classifier`` run on ``device`` (None without the option); refuses anything but a classifier run."""
    if args.classifier is None:
        return None
    fix = "pass the directory of a run trained with `landiff train --model classifier`"
    try:
        classifier = load_run(args.classifier, device=str(device))
    except UserError as err:
        raise UserError(f"--classifier {args.classifier}: {str(err).rstrip('.')}; {fix}") from None
    if not getattr(classifier, "is_classifier", False):
        kind = "GAN" if classifier.is_gan else "diffusion"
        raise UserError(f"--classifier {args.classifier} is a {kind} run, not a classifier; {fix}")
    return classifier


def _classifier_guidance(args: argparse.Namespace, loaded: LoadedRun, classifier: LoadedRun | None,
                         labels: torch.Tensor | None, device: torch.device) -> ClassifierGuidance | None:
    """ADM's classifier guidance of all ``--n`` images: towards the run's own labels (mapped by class name)
    or, for an unconditional run, the classifier's ``--class`` (default all); None without ``--classifier``."""
    if classifier is None:
        return None
    scale = 1.0 if args.classifier_scale is None else args.classifier_scale
    check_classifier(loaded, classifier, scale)
    if loaded.num_classes == 0:
        targets = classifier_class_labels(classifier, args.class_name, args.n)
    elif labels is None:
        raise UserError("--classifier on a class-conditional run needs --class NAME or all (the classes to sample and "
                        "to guide towards)")
    else:
        targets = to_classifier_labels(loaded, classifier, labels)
    return ClassifierGuidance(classifier.ema_model, scale, targets.to(device))


def _classifier_meta(classifier: LoadedRun | None, steer: ClassifierGuidance | None) -> dict:
    """The classifier guidance entries of ``samples.npz``'s meta (empty without ``--classifier``)."""
    if classifier is None or steer is None:
        return {}
    return {"classifier": str(classifier.checkpoint), "classifier_sha256": classifier.checkpoint_sha256,
            "classifier_scale": steer.scale}


def _sampler_params(args: argparse.Namespace, sampler: str, spacing: str) -> dict:
    """Every setting that changes the images, for the samples' metadata and provenance key."""
    params: dict = {"spacing": spacing, "clip_denoised": not args.no_clip}
    if sampler in DEFAULT_ETA:
        params["eta"] = DEFAULT_ETA[sampler] if args.eta is None else args.eta
    if spacing == "karras":
        params["rho"] = KARRAS_RHO if args.rho is None else args.rho
    if sampler == "heun":
        params["churn"] = dataclasses.asdict(_churn(args))
    return params


def _run_gan(args: argparse.Namespace, loaded: LoadedRun, dist: Dist) -> int:
    """Samples a GAN run: image i is G(z_i, y_i) with z_i drawn from seed ``--seed`` + i alone."""
    if args.guidance != 1.0:
        raise UserError("--guidance applies to diffusion runs only; drop it for a GAN run")
    given = {"--sampler": args.sampler is not None, "--steps": args.steps is not None,
             "--spacing": args.spacing is not None, "--eta": args.eta is not None, "--rho": args.rho is not None,
             **{flag: True for flag in _churn_flags_given(args)},
             "--precision": args.precision != "auto", "--no-clip": args.no_clip, "--denoise-strip": args.denoise_strip}
    ignored = [flag for flag, on in given.items() if on]
    if ignored and dist.is_main:
        print(f"note: {', '.join(ignored)} ignored: a GAN draws each image in one generator pass")
    model = loaded.model if args.no_ema else loaded.ema_model
    device = next(model.parameters()).device
    class_name = args.class_name or ("all" if loaded.num_classes else None)  # a conditional G needs labels
    labels = class_labels(loaded, class_name, args.n, device)
    out = Path(args.out) if args.out else Path(loaded.checkpoint).parent.parent / "samples" / "gan"
    g, res = loaded.config.gan, loaded.config.resolution
    _check_before_sampling(args, out, dcgan_bytes(g.z_dim, g.ngf, g.ndf, res, args.batch, training=False),
                           (3, res, res), device)

    def draw(first: int, count: int) -> torch.Tensor:
        y = labels[first : first + count] if labels is not None else None
        with torch.no_grad():
            return model(latents(range(args.seed + first, args.seed + first + count), loaded.config.gan.z_dim, device),
                         y).float()

    images = _sample_sharded(args, dist, out, draw, (3, loaded.config.resolution, loaded.config.resolution))
    if dist.is_main:
        meta = {
            "checkpoint": str(loaded.checkpoint), "checkpoint_sha256": loaded.checkpoint_sha256,
            "step": loaded.state.step, "model": "gan", "seed": args.seed, "class": class_name,
            "ema": loaded.config.gan.ema and not args.no_ema, "config": loaded.config.to_dict(),
            "provenance": _provenance(args, loaded, labels, sampler="gan", steps=1, params={}),
        }
        _finish(out, images, meta)
    return 0


def _check_before_sampling(args: argparse.Namespace, out: Path, net_bytes: dict, shape: tuple[int, ...],
                           device: torch.device) -> None:
    """The output folder is writable and the network batch and the kept images fit, before any step."""
    check_output_dir(out, "--out" if args.out else "the default --out")
    check_memory(net_bytes, ["--batch"], device)
    check_memory({"the uint8 images kept for samples.npz": float(args.n) * math.prod(shape)}, ["--n"], "cpu")


def _sample_sharded(
    args: argparse.Namespace, dist: Dist, out: Path, draw: Callable[[int, int], torch.Tensor], shape: tuple[int, ...]
) -> list[np.ndarray]:
    """Draws images 0..n−1 in rounds of ``batch × ranks``; rank r draws the r-th block of each round.

    Every rank takes part in every round's gather (an empty block where n runs out), so none waits
    for another forever; rank 0 writes ``<index>.png`` and returns the uint8 (B, H, W, C) blocks.
    """
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
    images: list[np.ndarray] = []
    per_round = args.batch * dist.world
    for round_start in range(0, args.n, per_round):
        first = min(args.n, round_start + dist.rank * args.batch)
        count = min(args.n, first + args.batch) - first
        if count:
            mine = torch.from_numpy(to_uint8(draw(first, count)))
        else:
            mine = torch.zeros((0, shape[1], shape[2], shape[0]), dtype=torch.uint8)
        block = gather_cat(mine).numpy()
        if dist.is_main:
            for offset, image in enumerate(block):
                atomic_write_bytes(out / f"{round_start + offset:06d}.png", png_bytes(image))
            images.append(block)
            print(f"sampled {round_start + len(block)}/{args.n}")
    return images


def _finish(out: Path, images: list[np.ndarray], meta: dict) -> None:
    """``grid.png`` of the first 64 images and ``samples.npz`` (all images + meta as JSON)."""
    all_images = np.concatenate(images)
    save_grid(all_images[:64], out / "grid.png")
    atomic_write(out / "samples.npz", lambda tmp: _save_npz(tmp, all_images, meta))
    print(f"wrote {len(all_images)} images, grid.png and samples.npz to {out}")


def _save_npz(path: Path, images: np.ndarray, meta: dict) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, images=images, meta=np.array(json.dumps(meta)))


def _strip_callback(strip: list[np.ndarray], steps: int) -> StepCallback:
    """Keeps x_t (top row) and predicted x0 (bottom row) of sample 0 at ~8 evenly spread steps."""
    keep = set(np.linspace(0, steps - 1, min(8, steps)).round().astype(int).tolist())
    rows: dict[str, list[np.ndarray]] = {"x": [], "x0": []}

    def callback(i: int, x_t: torch.Tensor, pred_x0: torch.Tensor) -> None:
        if i in keep:
            rows["x"].append(to_uint8(x_t[:1].clamp(-1, 1)))
            rows["x0"].append(to_uint8(pred_x0[:1]))
        if i == steps - 1:
            strip.extend(rows["x"] + rows["x0"])

    return callback


def _provenance(args: argparse.Namespace, loaded: LoadedRun, labels: torch.Tensor | None, *, sampler: str, steps: int,
                params: dict, autocast: str = "fp32", classifier: LoadedRun | None = None,
                steer: ClassifierGuidance | None = None) -> dict:
    """The JSON :class:`~landiff.metrics.provenance.Provenance` of these samples (``eval --samples`` reads it)."""
    raw = loaded.model if args.no_ema else loaded.ema_model
    return provenance_for(loaded, use_ema=not args.no_ema, sampler=sampler, steps=steps, params=params,
                          precision=sampling_precision(raw, autocast), guidance_scale=args.guidance,
                          labels=None if labels is None else labels.tolist(), seed=args.seed, classifier=classifier,
                          classifier_scale=0.0 if steer is None else steer.scale,
                          classifier_labels=None if steer is None else steer.labels.tolist()).to_dict()
