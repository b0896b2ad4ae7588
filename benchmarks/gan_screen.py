"""Screening GAN flavours for the CPU: variants of the DCGAN recipe trained for the same steps.

    python benchmarks/gan_screen.py                                  # 3-minute screen, ~25 min on 2 cores
    python benchmarks/gan_screen.py --variants sn-hinge-da-b0,sn-hinge-da-lr4e-4,sn-rsgan-da  # round 2
    python benchmarks/gan_screen.py --variants dcgan,sn-hinge-da --steps 1678 --seed 1   # a 10-minute point
    python benchmarks/gan_screen.py --quick                          # seconds: CI's check

Every variant keeps the DCGAN recipe's nets (32 px, G and D of 64 base channels), batch 128 and
(except round 2's optimiser variants) its Adam settings (2e-4, β 0.5 / 0.999), and makes one D
update per G update, so a step costs about the same for all of them and a step count stands in for
the clock: 503 steps are 3 of the budget race's
10 minutes, in which its DCGAN made 1678 steps (the img/s column shows what each variant costs).
SNGAN (arXiv 1802.05957) tried six Adam settings and found spectral normalisation robust across
them, so round 1 does not vary the optimiser; round 2 tries two of those settings' ideas around
round 1's winner. Each variant trains with an EMA of G (it changes nothing
in training) and is measured (multi-scale SWD ×10³ of ``--n`` samples against ``--n`` held-out
images) with the raw generator and with the EMA (standing batch-norm statistics); the better one
is reported. The table records how many configurations were tried.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import RESULTS, append_results, training_parser  # noqa: E402

SCREEN_STEPS = 503  # 3/10 of the budget race DCGAN's 1678 steps
ALL_AUGMENTS = "color,translation,cutout"

# name → (what it changes, GANConfig changes)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "dcgan": ("the paper's recipe: non-saturating loss, batch-norm D", {}),
    "hinge": ("hinge loss", {"loss": "hinge"}),
    "sn-hinge": ("SNGAN: spectrally normalised D (no BN) + hinge", {"loss": "hinge", "spectral_norm": True}),
    "da": ("DiffAugment (color, translation, cutout)", {"diffaugment": ALL_AUGMENTS}),
    "sn-hinge-da": ("SNGAN + DiffAugment", {"loss": "hinge", "spectral_norm": True, "diffaugment": ALL_AUGMENTS}),
    "sn-rsgan-da": ("SN D + relativistic loss + DiffAugment",
                    {"loss": "rsgan", "spectral_norm": True, "diffaugment": ALL_AUGMENTS}),
    "r1-da": ("lazy R1 (γ 0.1, every 16) + DiffAugment, batch-norm D", {"r1_gamma": 0.1, "diffaugment": ALL_AUGMENTS}),
    # Round 2, around round 1's winner (sn-hinge-da): the optimiser settings SNGAN's Table 1 found
    # robust with spectral norm, and a doubled LR (the screen's budget is short).
    "sn-hinge-da-b0": ("SNGAN + DiffAugment, Adam β1 0, β2 0.9",
                       {"loss": "hinge", "spectral_norm": True, "diffaugment": ALL_AUGMENTS,
                        "optim": {"beta1": 0.0, "beta2": 0.9}}),
    "sn-hinge-da-lr4e-4": ("SNGAN + DiffAugment, Adam LR 4e-4",
                           {"loss": "hinge", "spectral_norm": True, "diffaugment": ALL_AUGMENTS, "optim": {"lr": 4e-4}}),
}
SCREENED = ("dcgan", "sn-hinge", "da", "sn-hinge-da", "r1-da")  # the default screen (round 1)
# What RESULTS.md records, round by round: the configurations tried to choose the gan-strong preset.
ROUNDS = {1: SCREENED, 2: ("sn-hinge-da-b0", "sn-hinge-da-lr4e-4", "sn-rsgan-da")}


def variant_config(name: str, data: str, resolution: int, steps: int, seed: int, synthetic_n: int | None):
    from landiff.workflows.pairing import gan_recipe

    config = gan_recipe(data, resolution, 0.0)
    changes = dict(VARIANTS[name][1])
    optim = dataclasses.replace(config.optim, **changes.pop("optim", {}))
    gan = dataclasses.replace(config.gan, ema=True, **changes)
    config = dataclasses.replace(config, gan=gan, optim=optim, train_steps=steps, max_minutes=0.0, checkpoint_every=steps,
                                 preview_count=0, seed=seed)
    return dataclasses.replace(config, synthetic_n=synthetic_n) if synthetic_n else config


def swd(loaded, use_ema: bool, reference, n: int) -> tuple[float, float]:
    """SWD ×10³ (value, std) of ``n`` samples of the run's EMA of G or (``use_ema=False``) of G itself."""
    from landiff.generate import generate
    from landiff.metrics.evaluate import evaluate_swd
    from landiff.metrics.io import ImageSet

    images = generate(loaded, list(range(n)), use_ema=use_ema).images
    estimate = evaluate_swd(ImageSet(images, "samples"), reference).estimates["swd"]
    return float(estimate.value), float(estimate.std)


def main() -> None:
    parser = training_parser(__doc__, "bench-runs/gans", SCREEN_STEPS)
    parser.add_argument("--variants", default=",".join(SCREENED))
    args = parser.parse_args()
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    synthetic_n = None
    if args.quick:
        args.steps, args.n, args.no_append, synthetic_n = 2, 8, True, 64

    from landiff.metrics.io import ImageSet, load_reference
    from landiff.runs.run_dir import read_stats
    from landiff.train import load_run, train

    reference = ImageSet(load_reference(args.ref or "synthetic", (32, 32), args.n, data_seed=0,
                                        split="heldout").images, "held-out")
    tag = "synthetic" if args.data == "synthetic" else Path(args.data).name
    rows, start = [], time.perf_counter()
    for name in names:
        config = variant_config(name, args.data, 32, args.steps, args.seed, synthetic_n)
        if args.quick:
            config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, batch=4),
                                         gan=dataclasses.replace(config.gan, ngf=8, ndf=8, z_dim=8))
        run = args.out / tag / f"{name}-{args.steps}-seed{args.seed}"
        train(config, run, log=lambda _: None)
        loaded = load_run(run, device="cpu")
        raw, ema = swd(loaded, False, reference, args.n), swd(loaded, True, reference, args.n)
        speed = [r["img_per_s"] for r in read_stats(run / "stats.jsonl")]
        rows.append((name, raw, ema, sorted(speed)[len(speed) // 2] if speed else float("nan")))
        print(f"{name}: G {raw[0]:.1f}, EMA {ema[0]:.1f}", file=sys.stderr, flush=True)
    text = "\n".join([
        f"## GAN screen on {tag}: {args.steps} steps, seed {args.seed} ({len(names)} configurations)",
        "",
        f"`python benchmarks/gan_screen.py {' '.join(sys.argv[1:])}` — {time.strftime('%Y-%m-%d %H:%M')}; DCGAN "
        f"nets and Adam, batch 128, 32 px; {args.n} samples vs {args.n} held-out images; "
        f"{time.perf_counter() - start:.0f} s.",
        "",
        "| variant | what | SWD ×10³, G | SWD ×10³, EMA of G | best | median img/s |",
        "|---|---|---:|---:|---:|---:|",
        *(f"| {name} | {VARIANTS[name][0]} | {raw[0]:.1f} ± {raw[1]:.1f} | {ema[0]:.1f} ± {ema[1]:.1f} "
          f"| {min(raw[0], ema[0]):.1f} | {speed:.0f} |" for name, raw, ema, speed in rows),
    ])
    print(text)
    if not args.no_append:
        append_results(RESULTS, text)


if __name__ == "__main__":
    main()
