"""``landiff compare``: evaluate runs with one protocol (same reference, sample count, seeds).

    landiff compare runs/diffusion runs/gan --n 512
    landiff compare --train --data synthetic --minutes 20 --out runs/cmp   # trains the entrants first
    landiff compare --train --gans dcgan --minutes 10 --out runs/cmp2       # diffusion vs the DCGAN alone
    landiff compare runs/cond --classifier runs/noisy --clean-classifier runs/clean   # + the guidance sweep
    landiff compare runs/cond --clean-classifier runs/clean --guidance-only --guidance-scales 0,2,8

The guidance sweep (:mod:`landiff.workflows.guidance_sweep`) runs after the normal compare, or alone
with ``--guidance-only``: it writes its own file (compare/guidance.json), so re-running it with other
scales need not redraw compare's samples, sampler sweep and memorisation check.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from landiff.errors import UserError
from landiff.options import N_IMAGES, OUT_DIR, REPEATS, SEED, STEPS, Spec, check_input_dir, check_output_dir, check_seed
from landiff.runs.config import RECIPES
from landiff.samplers import DEFAULT_SAMPLER, DEFAULT_STEPS, PRECISIONS, SAMPLERS
from landiff.workflows.compare import DEFAULT_SWEEP, CompareOptions, compare_runs, parse_sweep
from landiff.workflows.guidance_sweep import DEFAULT_SCALES, MAX_POINTS, GuidanceOptions, parse_scales, plan_sweep, run_sweep
from landiff.workflows.pairing import DEFAULT_GANS, train_entrants


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare", help="evaluate runs with one protocol (optionally train the diffusion default and GANs first)",
        description="evaluate runs with one protocol (same reference, seeds, sample count), sweep samplers × steps; "
                    "`--train` first trains the diffusion default and each GAN preset for the same time; "
                    "`RUN --classifier CLF --clean-classifier CLEAN` sweeps both kinds of guidance")
    Spec("runs", "path", "run directories to evaluate", nargs="*", metavar="RUN",
         default_text="none (then --train must make them)").add_to(p)
    N_IMAGES.add_to(p, default=256, help="images per run and reference images")
    SEED.add_to(p, help="seeds of the samples (seed..seed+n-1) and of the metrics")
    Spec("--ref", "str", "reference images: 'synthetic', an image folder, a prepared dataset or B.npz",
         default_text="the first run's data (synthetic: its held-out split)").add_to(p)
    Spec("--heldout", "str", "held-out images for the memorisation ratio (needed for folders)",
         default_text="synthetic: its held-out split; folders: none").add_to(p)
    Spec("--sampler", "choice", "diffusion sampler for the main samples (landiff sample's default)",
         default=DEFAULT_SAMPLER, choices=SAMPLERS).add_to(p)
    STEPS.add_to(p, default=DEFAULT_STEPS, help="its network evaluations")
    Spec("--precision", "choice", "sampling precision of diffusion runs: auto (bf16 autocast where the device has "
         "native bf16), fp32 or bf16", default="auto", choices=PRECISIONS).add_to(p)
    Spec("--sweep", "str", "samplers x steps for diffusion runs, e.g. 'ddim:10,50;dpm++:5,10,20' ('' for none)",
         metavar="SPEC", allow_empty=True, default_text=_sweep_text()).add_to(p)
    N_IMAGES.add_to(p, name="--sweep-n", help="images per sweep point", default_text="--n")
    REPEATS.add_to(p)
    Spec("--guidance", "float", default=1.0, low=0.0, help="classifier-free guidance scale w for class-conditional "
                   "diffusion runs (1 = plain conditional; recorded in summary.json)").add_to(p)
    Spec("--inception", "path", "FID Inception weights (.safetensors); see landiff weights",
         default_text="$LANDIFF_INCEPTION, then ~/.cache/landiff/inception/pt_inception-2015-12-05.safetensors").add_to(p)
    Spec("--ema-length", "float", "diffusion runs trained with --posthoc-ema: evaluate the post-hoc EMA of this "
         "relative length sigma_rel (EDM2), recorded in every record's provenance; 0 = the fixed-decay EMA",
         low=0.0, high=0.25, default_text="each run's own length (tiny: 0.1)").add_to(p)
    Spec("--train", "switch", "first train a diffusion model (tiny) and the --gans on --data").add_to(p)
    Spec("--data", "str", "data for --train", default="synthetic").add_to(p)
    Spec("--minutes", "float", "training budget for --train, shared equally by the entrants (diffusion and each "
         "GAN get the same training time)", default=20.0, low=0.0, low_open=True, high=24 * 60,
         unit="minutes").add_to(p)
    Spec("--gans", "str", "GAN presets --train trains beside the diffusion model, comma-separated", metavar="PRESETS",
         default_text=",".join(DEFAULT_GANS)).add_to(p)
    Spec("--resolution", "int", "image size of the runs --train trains", default=32, low=8, unit="px").add_to(p)
    OUT_DIR.add_to(p, default="runs/compare", help="where --train puts its runs (diffusion/ and one per GAN preset)")
    _register_guidance(p)
    p.set_defaults(func=run)


GUIDANCE_FLAGS = ("classifier", "guidance_scales", "guidance_n", "guidance_only")


def _register_guidance(p: argparse.ArgumentParser) -> None:
    """The options of the guidance sweep (landiff.workflows.guidance_sweep), which --clean-classifier turns on."""
    scales = ",".join(f"{s:g}" for s in DEFAULT_SCALES)
    Spec("--clean-classifier", "path", "classifier run trained on clean images (landiff train --model classifier --noise "
         "none) that judges class consistency; giving it runs the guidance sweep of the one RUN after the compare, "
         "into RUN/compare/guidance.json", metavar="CLEAN_RUN", default_text="none: no guidance sweep").add_to(p)
    Spec("--classifier", "path", "noisy classifier run (landiff train --model classifier --noise schedule) whose "
         "gradient guides RUN: adds the classifier guidance line (scale s) to the sweep; without it only "
         "classifier-free guidance (scale w) is swept",
         metavar="NOISY_RUN", default_text="none").add_to(p)
    Spec("--guidance-scales", "str", "guidance scales of the sweep, comma-separated numbers >= 0, used as s for "
         "classifier guidance (s = 0 unguided) and as w for classifier-free guidance (w = 1 plain conditional, "
         f"w = 0 unconditional); at most {MAX_POINTS} points in all", metavar="S,S,...", default_text=scales).add_to(p)
    N_IMAGES.add_to(p, name="--guidance-n", low=2, help="images per guidance point, the same seeds at every point, "
                    "balanced over the classes", default_text="256")
    Spec("--guidance-only", "switch", "run only the guidance sweep (needs --clean-classifier): skips the normal compare, "
         "e.g. to re-sweep with other --guidance-scales").add_to(p)


def _sweep_text() -> str:
    """:data:`DEFAULT_SWEEP` written as ``--sweep`` takes it (sampler:steps,steps;…)."""
    steps: dict[str, list[str]] = {}
    for sampler, count in DEFAULT_SWEEP:
        steps.setdefault(sampler, []).append(str(count))
    return ";".join(f"{sampler}:{','.join(counts)}" for sampler, counts in steps.items())


def guidance_from(args: argparse.Namespace, runs: list[str]) -> GuidanceOptions | None:
    """The guidance sweep's options, or None when --clean-classifier is not given; refuses bad combinations."""
    if args.clean_classifier is None:
        given = [f"--{name.replace('_', '-')}" for name in GUIDANCE_FLAGS if getattr(args, name) not in (None, False)]
        if given:
            raise UserError(f"{given[0]} belongs to the guidance sweep, which needs a judge of class consistency: add "
                            "--clean-classifier CLEAN_RUN (landiff train --model classifier --noise none, on RUN's data)")
        return None
    if args.train:
        raise UserError("--clean-classifier sweeps the guidance of one class-conditional diffusion RUN; --train trains "
                        "unconditional entrants: give the run directory instead of --train")
    if len(runs) != 1:
        raise UserError(f"--clean-classifier: the guidance sweep measures one diffusion RUN, got {len(runs)} run "
                        "directories; run landiff compare once per run to sweep")
    for flag in ("classifier", "clean_classifier"):
        if getattr(args, flag) is not None:
            check_input_dir(getattr(args, flag), f"--{flag.replace('_', '-')}", "classifier run made by landiff train")
    return GuidanceOptions(
        scales=DEFAULT_SCALES if args.guidance_scales is None else parse_scales(args.guidance_scales),
        n=256 if args.guidance_n is None else args.guidance_n, seed=args.seed, sampler=args.sampler, steps=args.steps,
        precision=args.precision, reference=args.ref, inception=args.inception, repeats=args.repeats,
        ema_length=args.ema_length)


def options_from(args: argparse.Namespace) -> CompareOptions:
    for flag in ("n", "steps", "repeats"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be >= 1")
    if args.sweep_n is not None and args.sweep_n < 1:
        raise UserError("--sweep-n must be >= 1")
    check_seed(args.seed, "--seed", count=max(args.n, args.sweep_n or 0, args.guidance_n or 0))  # seed .. seed + n - 1
    return CompareOptions(
        n=args.n, seed=args.seed, reference=args.ref, heldout=args.heldout, sampler=args.sampler, steps=args.steps,
        sweep=DEFAULT_SWEEP if args.sweep is None else parse_sweep(args.sweep), sweep_n=args.sweep_n,
        repeats=args.repeats, inception=args.inception, guidance=_guidance(args.guidance), precision=args.precision,
        ema_length=args.ema_length,
    )


def gans_from(text: str) -> tuple[str, ...]:
    """The ``--gans`` list: GAN recipes (``landiff train --preset``), each once."""
    names = tuple(filter(None, (name.strip() for name in text.split(","))))
    gans = [name for name, values in RECIPES.items() if values.get("model") == "gan"]
    for name in names:
        if name not in gans:
            raise UserError(f"--gans: {name!r} is not a GAN preset; choose from {', '.join(gans)}")
    if not names or len(set(names)) != len(names):
        raise UserError(f"--gans must name one or more different GAN presets ({', '.join(gans)}), got {text!r}")
    return names


def _guidance(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise UserError(f"--guidance must be a finite number >= 0 (1 = plain conditional), got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    options = options_from(args)
    runs = list(args.runs)
    for given in runs:  # compare writes samples and summary.json into each run, so it must be writable
        check_output_dir(check_input_dir(given, "RUN", "run directory made by landiff train"), "RUN")
    guidance = guidance_from(args, runs)
    plan = None if guidance is None else plan_sweep(runs[0], guidance, classifier=args.classifier,
                                                   clean_classifier_dir=args.clean_classifier)
    if plan is not None and args.guidance_only:
        run_sweep(plan)
        print(f"report: landiff report {runs[0]} --out <dir>")
        return 0
    if args.train:
        check_output_dir(args.out, "--out")

        if args.minutes <= 0:
            raise UserError("--minutes must be > 0")
        runs += [str(p) for p in train_entrants(args.data, Path(args.out), args.minutes, args.resolution,
                                                gans_from(args.gans or ",".join(DEFAULT_GANS)))]
    elif args.gans is not None:
        raise UserError("--gans names the GANs that --train trains; add --train, or drop --gans")
    if not runs:
        raise UserError("give run directories to compare, or --train --data … to train the diffusion default and "
                        "the GANs first")
    summaries = compare_runs(runs, options)
    for s in summaries:
        print(f"{s['run']}: {s['family']} SWD {s['metrics']['swd']['value']:.2f} ± {s['metrics']['swd']['std']:.2f}, "
              f"train {s['cost']['train_seconds']:.0f} s, {s['cost']['sample_seconds_per_image'] * 1000:.1f} ms/image")
    if plan is not None:
        run_sweep(plan)
    print("report: landiff report " + " ".join(runs) + " --out <dir>")
    return 0
