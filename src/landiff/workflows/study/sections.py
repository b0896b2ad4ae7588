"""One report section per experiment, as document blocks plus the PNGs they reference.

Each function takes the :class:`~landiff.workflows.study.experiments.StudyResults` (and the study folder for
images) and returns ``(blocks, {png name: bytes})``; it states the experiment's budget, sample sizes
and the uncertainty of what it shows. Tables and figures cover every family of the study (diffusion and
the GANs of ``--gans``); what a claim is judged on is shown once per GAN (diffusion against it).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from landiff.report.figures import grid_count, grid_png, tile_size
from landiff.report.numbers import duration, si
from landiff.report.render import Block, Figure, FigureRow, Heading, Paragraph, Table
from landiff.runs.config import TUNING, TrainConfig
from landiff.workflows.study import figures
from landiff.workflows.study.budget import allocate
from landiff.workflows.study.datasets import read_layout
from landiff.workflows.study.evaluation import COLLAPSE_RATIO, samples_of
from landiff.workflows.study.experiments import (
    WORSE_Z,
    CostResult,
    FamilyCost,
    FamilyGrid,
    FamilySeeds,
    QualityResult,
    StudyResults,
)
from landiff.workflows.study.options import TRAIN_WEIGHT
from landiff.workflows.study.plan import base_config
from landiff.workflows.study.sensitivity import PairStats
from landiff.workflows.study.similarity import calibration_distances
from landiff.workflows.study.uncertainty import RatioInterval
from landiff.workflows.study.verdict import COST_RULE, QUALITY_RULE

Assets = dict[str, bytes]  # PNG path relative to the study folder → bytes
FIGURES = "figures"


def _pm(value: float, spread: float, digits: int = 3) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}g}" if not math.isfinite(spread) else f"{value:.{digits}g} ± {spread:.2g}"


def _not_measured(blocks: list[Block], experiment: str) -> tuple[list[Block], Assets]:
    """The section's heading and the command that measures it."""
    return blocks + [Paragraph(f"Not measured yet: landiff study {experiment}")], {}


def _gan_text(family: str, g: TrainConfig) -> str:
    """One GAN family's default config in words."""
    changes = [text for on, text in ((g.gan.spectral_norm, "a spectrally normalised D"),
                                     (g.gan.loss != "ns", f"the {g.gan.loss} loss"),
                                     (bool(g.gan.diffaugment), f"DiffAugment ({g.gan.diffaugment}) on D's inputs"),
                                     (g.gan.ema, "sampled from an EMA of G")) if on]
    design = "DCGAN's G with " + ", ".join(changes) if changes else "DCGAN"
    return (f"{family} = {design}, Adam lr {g.optim.lr:g}, β1 {g.optim.beta1:g}, batch {g.optim.batch}, "
            f"{g.gan.d_steps} D step per G step")


def recipe_text(results: StudyResults) -> str:
    """The default configs in words (from the same functions that built the runs)."""
    o = results.options
    d = base_config("diffusion", o, "D", 0)
    process = ("EDM formulation (preconditioned denoiser, log-normal noise levels)" if d.diffusion.formulation == "edm"
               else f"{d.diffusion.prediction}-prediction, {d.diffusion.schedule} schedule, {d.diffusion.loss} loss")
    gans = "; ".join(_gan_text(f, base_config(f, o, "D", 0)) for f in o.gans)
    return (f"Default configs (landiff's own recipes, the grid's centre): diffusion = {d.preset} UNet, {process}, "
            f"AdamW lr {d.optim.lr:g}, batch {d.optim.batch}; {gans}.")


def budget_text(results: StudyResults) -> str:
    o, a = results.options, allocate(results.options)
    if o.tiny:
        return f"Budget: tiny (miniature for tests: {a.reference_steps} steps per reference run)."
    minutes = " or ".join(f"{a.run_minutes(f):.2f} min ({f})" for f in o.families)
    return (f"Budget: {o.budget:g} min in all; each reference run (seed 0 on D) trains {minutes}, every other run "
            f"the same number of training images as its family's reference (the equal-steps batch cells: the same "
            f"number of optimiser steps); the full plan's evaluation was estimated at {a.eval_minutes:.1f} min.")


def quality_section(results: StudyResults, out: Path) -> tuple[list[Block], Assets]:
    pairs = results.quality
    blocks: list[Block] = [Heading("1. Quality (claim 1)", 2)]
    if pairs is None:
        return _not_measured(blocks, "quality")
    d = pairs[0].diffusion
    blocks.append(Paragraph(
        f"{recipe_text(results)} Metric: SWD x1e3 (lower is better) of {d.n} samples against as many held-out "
        f"real images, {results.options.sample_steps}-step DPM-Solver++ for diffusion; ± is the s.d. of 3 metric "
        f"repeats per run, and over seeds for the means. Claim 1 is judged against each GAN on the ratio diffusion / "
        f"GAN of the two families' geometric-mean SWD over seeds (below 1: diffusion better), with 95% and 99% "
        f"intervals from Welch's t on log SWD; rule: {QUALITY_RULE}."))
    families = [d, *(q.gan for q in pairs)]
    rows = [_seed_row(f, k, results) for f in families for k in range(len(f.names))]
    rows += [(f.family, "mean ± s.d. (s.e.)", f"{_pm(f.summary.mean, f.summary.sd)} ({f.summary.se:.2g})", "", "", "")
             for f in families]
    rows.append(("real vs real", "floor", f"{d.floor:.3g}", "", "", ""))
    blocks.append(Table(("family", "run", "SWD", "diversity vs data", "images seen", "train time"), tuple(rows)))
    blocks += [Paragraph(_quality_pair_text(q)) for q in pairs]
    grids, assets = _sample_grids(results, out)
    return blocks + grids, assets


def _quality_pair_text(q: QualityResult) -> str:
    c, r, gan = q.comparison, q.ratio, q.gan.family
    return (f"Against {gan}: diffusion / {gan} = {r.ratio:.3g} (ratio of geometric means), 95% interval [{r.low95:.3g}, "
            f"{r.high95:.3g}], 99% interval [{r.low99:.3g}, {r.high99:.3g}], on {r.df:.1f} degrees of freedom. On the "
            f"arithmetic means: {gan} − diffusion = {_pm(c.difference, c.se)} (± s.e.), Welch's t = {c.t:.2f} on "
            f"{c.df:.1f} degrees of freedom; significance: {c.level}.")


def _seed_row(f: FamilySeeds, k: int, results: StudyResults) -> tuple[str, ...]:
    run = results.evaluations[f.names[k]]
    return (f.family, f.names[k], _pm(f.swd[k], f.swd_std[k]), f"{f.diversity[k]:.2f}", f"{run.images_seen:,}",
            duration(run.train_seconds))


def _sample_grids(results: StudyResults, out: Path) -> tuple[list[Block], Assets]:
    layout = read_layout(out)
    if layout is None:
        return [], {}
    sets: dict[str, np.ndarray] = {"real": layout.reference_images()}
    families = [f for f in results.options.families if f"{f}-D-seed0" in results.evaluations]
    sets.update({f: samples_of(out, f"{f}-D-seed0") for f in families})
    count, tile = grid_count(list(sets.values()), 16), tile_size(list(sets.values()))
    assets = {f"{FIGURES}/samples-{name}.png": grid_png(images, count, tile) for name, images in sets.items()}
    captions: dict[str, str] = {"real": "held-out real images"}
    captions.update({f: f"{f}, seed 0" for f in families})
    return [FigureRow(tuple(Figure(f"{FIGURES}/samples-{n}.png", captions[n], captions[n]) for n in sets))], assets


def cost_section(results: StudyResults) -> tuple[list[Block], Assets]:
    pairs = results.cost
    blocks: list[Block] = [Heading("2. Cost (claim 2)", 2)]
    if pairs is None:
        return _not_measured(blocks, "cost")
    seeds = max(len(f.seeds) for c in pairs for f in c.families)
    n = pairs[0].families[0].seeds[0].curve[0].n
    blocks.append(Paragraph(
        f"{budget_text(results)} {_design(results)} Costs are also given in images seen and FLOPs (torch's FLOP "
        f"counter: convolutions, matmuls, attention). The quality-vs-compute curve measures every seed run on D "
        f"({seeds} per family) after each of {results.options.curve_points} training stages with {n} samples per point "
        f"(seed 0 after equal parts of its minutes, the other seeds after the same fractions of their steps, so the "
        f"seeds' points line up in images seen and FLOPs); it is shown as mean ± s.d. over seeds per stage. Claim 2 "
        f"is judged against each GAN in turn. The target quality of a pair is the highest final curve SWD over every "
        f"seed run of diffusion and that GAN (the best quality that all of them reached). Each seed's compute to the "
        f"target interpolates log-FLOPs between its own points (a seed already below the target at its first point "
        f"gives an upper bound, marked ≤; one that never reaches it has none); the claim is judged on the ratio "
        f"diffusion / GAN of the geometric means over seeds, with its 95% interval from Welch's t on log FLOPs; rule: "
        f"{COST_RULE}. The same is shown for wall-clock."))
    for c in pairs:
        blocks += _cost_pair(c, results.options.diffusion_preset)
    blocks.append(_curve_table(pairs))
    floor = results.quality[0].diffusion.floor if results.quality else math.nan
    blocks.append(Figure(f"{FIGURES}/curve.png", "quality vs training compute", "SWD after each training stage, mean ± "
                         "s.d. over the seed runs (thin lines: each seed), against training FLOPs, images seen and "
                         "training wall-clock; dashed: each GAN's target"))
    return blocks, {f"{FIGURES}/curve.png": figures.curve_png(pairs, floor)}


def _cost_pair(c: CostResult, diffusion_preset: str) -> list[Block]:
    """Diffusion against one GAN: the cost table, the ratios to the target and each seed's compute to it."""
    gan = c.gan.family
    ratios = _ratio_text("training FLOPs", c.flops, gan) + " " + _ratio_text("training wall-clock", c.seconds, gan)
    return [Heading(f"diffusion vs {gan}", 3), Paragraph(f"Target quality: SWD {c.target_swd:.3g}. "
                                                           + tuning_text(diffusion_preset, gan)),
            _cost_table(c), Paragraph(ratios), _seed_table(c)]


def tuning_text(diffusion_preset: str, gan_preset: str) -> str:
    """The tuning budget of both recipes: how many configurations were measured to choose each."""
    def tried(preset: str) -> str:
        count = TUNING.get(preset)
        return f"{count} configuration{'s' if count != 1 else ''}" if count else "an unrecorded number of configurations"

    return (f"Tuning budget: the diffusion recipe ({diffusion_preset}) was chosen from {tried(diffusion_preset)}, "
            f"{gan_preset}'s from {tried(gan_preset)} (landiff.runs.config.TUNING; a paper recipe adopted as "
            "published counts as one).")


def _ratio_text(what: str, r: RatioInterval, gan: str) -> str:
    return (f"Diffusion / {gan} in {what} to the target: {r.ratio:.3g} (ratio of geometric means over seeds), 95% "
            f"interval [{r.low95:.3g}, {r.high95:.3g}], 99% [{r.low99:.3g}, {r.high99:.3g}], {r.df:.1f} degrees of freedom.")


def _cost_table(c: CostResult) -> Table:
    rows = []
    for label, field, fmt in (("training time (mean over seeds)", "train_seconds", duration),
                              ("training images seen", "images_seen", lambda v: si(v)),
                              ("FLOPs per training image", "flops_per_train_image", lambda v: si(v, "FLOP")),
                              ("training FLOPs", "train_flops", lambda v: si(v, "FLOP")),
                              (f"FLOPs to reach SWD {c.target_swd:.3g} (geometric mean over seeds)", "to_target_flops",
                               lambda v: si(v, "FLOP")),
                              ("time to reach it (geometric mean over seeds)", "to_target_seconds", duration),
                              ("seed runs that reached it", "reached", str),
                              ("FLOPs per generated image", "flops_per_sample", lambda v: si(v, "FLOP")),
                              ("sampling time per image", "sample_seconds", duration),
                              (f"mean SWD after {duration(c.equal_seconds)} of training (equal wall-clock)",
                               "swd_at_equal_time", lambda v: f"{v:.3g}")):
        values = [getattr(f, field) for f in c.families]
        shown = [fmt(v) if math.isfinite(v) else "not reached" if field.startswith("to_") else "n/a" for v in values]
        ratio = c.ratio(field)
        rows.append((label, *shown, f"{ratio:.3g}x" if field != "reached" and math.isfinite(ratio) else ""))
    return Table(("", *(f.family for f in c.families), f"diffusion / {c.gan.family}"), tuple(rows))


def _curve_table(pairs: tuple[CostResult, ...]) -> Table:
    """Every family's curve over seeds, stage by stage (a family's curve is the same in every pair)."""
    families: dict[str, FamilyCost] = {}
    for c in pairs:
        for f in c.families:
            families.setdefault(f.family, f)
    rows = [(f.family, str(s.stage), str(s.seeds), si(s.images_seen), si(s.train_flops, "FLOP"),
             duration(s.train_seconds), _pm(s.swd, s.swd_sd)) for f in families.values() for s in f.curve]
    return Table(("family", "stage", "seeds", "images seen", "training FLOPs", "train time", "SWD (mean ± s.d. over seeds)"),
                 tuple(rows))


def _seed_cell(f: FamilyCost, k: int) -> tuple[str, str, str]:
    s = f.seeds[k]
    if not s.reached:
        return "not reached", "", f"final SWD {s.curve[-1].swd:.3g}"
    bound = "≤ " if s.at_first_point else ""
    return (bound + si(s.to_target_flops, "FLOP"), bound + duration(s.to_target_seconds),
            "upper bound: below the target at its first point" if s.at_first_point else "")


def _seed_table(c: CostResult) -> Table:
    rows = [(f.family, s.name, *_seed_cell(f, k)) for f in c.families for k, s in enumerate(f.seeds)]
    return Table(("family", "run", f"FLOPs to SWD {c.target_swd:.3g}", "time to it", "note"), tuple(rows))


def _design(results: StudyResults) -> str:
    if results.options.tiny:
        return "In the miniature every family trains the same number of steps."
    families = results.options.families
    weights = " : ".join(f"{TRAIN_WEIGHT[f]:g}" for f in families)
    return (f"The reference runs train for their allocated wall-clock ({' : '.join(families)} = {weights}); the "
            "tables also read the mean curves at the same training time (equal wall-clock).")


def _pair_row(p: PairStats, relative: float) -> tuple[str, ...]:
    return (p.label, _pm(p.rmse_mean, p.rmse_se), _pm(p.perceptual_mean, p.perceptual_se),
            f"{p.same.share:.0%} [{p.same.low:.0%}, {p.same.high:.0%}]", f"{relative:.2f}" if math.isfinite(relative) else "")


def sensitivity_section(results: StudyResults, out: Path) -> tuple[list[Block], Assets]:
    s = results.sensitivity
    blocks: list[Block] = [Heading("3. Data sensitivity (claim 3)", 2)]
    if s is None:
        return _not_measured(blocks, "data-sensitivity")
    layout, o = read_layout(out), results.options
    assert layout is not None
    blocks.append(Paragraph(
        f"D: {layout.n_images} images ({layout.source}). Each D′ changes the same {o.fraction:.0%} of D: replaced by "
        f"images outside D, removed, or all made copies of one image of D. Every model draws image k from the same "
        f"latent input (initial noise through deterministic DPM-Solver++, or z), so image k of two models can be compared; "
        f"{s.n} pairs per row. The seed rows compare two training seeds on D: the yardstick for 'completely different'. "
        f"± are standard errors over the image pairs; they do not include training randomness (one D′ run each)."))
    blocks.append(Paragraph(f"Rule: {s.calibration.rule}."))
    same, different = calibration_distances(layout.reference_images(), seed=o.data_seed)
    assets = {f"{FIGURES}/calibration.png": figures.calibration_png(same, different, s.calibration.threshold)}
    blocks.append(
        Figure(f"{FIGURES}/calibration.png", "calibration of the same-picture threshold", "distances behind the threshold")
    )
    header = ("pair", "RMSE", "perceptual distance", "same picture [95% CI]", "vs seed-vs-seed")
    for f in s.families:
        rows = [_pair_row(p, f.relative(p.label.rsplit("-", 1)[1])) for p in f.variants]
        rows += [_pair_row(p, math.nan) for p in (*f.seeds, *([f.baseline] if f.baseline else []))]
        blocks += [Heading(f.family, 3), Table(header, tuple(rows))]
        if f.collapsed:
            blocks.append(Paragraph(f"The {f.family} D-model collapsed (its samples are nearly alike), so its pairs "
                                    "look 'the same' whatever the data: read these rows as not informative."))
    figs = []
    for f in s.families:
        names = [f"{f.family}-D-seed0", *(p.b for p in f.variants), f"{f.family}-D-seed1"]
        present = [n for n in names if n in results.evaluations and results.evaluations[n].status == "finished"]
        assets[f"{FIGURES}/pairs-{f.family}.png"] = figures.rows_png([samples_of(out, n) for n in present])
        figs.append(Figure(f"{FIGURES}/pairs-{f.family}.png", f"{f.family} pairs", f"{f.family}, rows: " + ", ".join(present)))
    return blocks + [FigureRow(tuple(figs))], assets


def hparam_section(results: StudyResults) -> tuple[list[Block], Assets]:
    blocks: list[Block] = [Heading("4. Hyper-parameter stability (claim 4)", 2)]
    if results.hparam is None:
        return _not_measured(blocks, "hparam-stability")
    blocks.append(Paragraph(
        "One factor at a time around each family's default (a full grid does not fit the budget): learning rate x1/4 "
        "and x4, batch x1/2 and x2 twice, at equal training images (x1/2 takes twice the optimiser steps) and at equal "
        "optimiser steps (x1/2 sees half the images; rows 'batch (equal images)' and 'batch (equal steps)'), and per "
        "family the linear schedule and fixed σ + mse → learned σ + hybrid (diffusion; one cell changing two factors, "
        "since with a fixed σ the hybrid loss trains exactly like mse) or Adam β1 / D steps per G step (each GAN, "
        "the same cells for every GAN); one "
        "seed per cell, each trained on as many images as the default (the equal-steps cells: as many optimiser "
        f"steps) and measured on {results.hparam[0].default.n} samples. A cell diverged when the trainer stopped after "
        f"{TrainConfig.max_consecutive_skips} consecutive "
        "non-finite steps; collapsed when its samples are less than "
        f"{COLLAPSE_RATIO:.0%} as diverse as real images; worse / better when its SWD is more than {WORSE_Z:g} "
        "combined s.d. (seed spread of the default and the cell's metric s.d.) from the default's seed mean."))
    assets, figs = {}, []
    for grid in results.hparam:
        blocks += [Heading(grid.family, 3), _grid_table(grid)]
        if grid.default.collapsed:
            blocks.append(Paragraph(f"The {grid.family} default itself collapsed on a seed, so collapse is not "
                                    "counted against its cells; only divergence and SWD decide."))
        assets[f"{FIGURES}/grid-{grid.family}.png"] = figures.heatmap_png(grid)
        figs.append(Figure(f"{FIGURES}/grid-{grid.family}.png", f"{grid.family} grid", f"{grid.family}: {grid.unstable} of "
                           f"{len(grid.cells)} cells unstable"))
    return blocks + [FigureRow(tuple(figs))], assets


def _grid_table(grid: FamilyGrid) -> Table:
    d = grid.default.summary
    rows = [("default", f"{len(grid.default.names)} seeds", _pm(d.mean, d.sd), "", "", "")]
    rows += [(c.factor, c.setting, _pm(c.swd, c.swd_std), f"{c.diversity:.2f}" if math.isfinite(c.diversity) else "",
              f"{c.z:+.1f}" if math.isfinite(c.z) else "", c.outcome) for c in grid.cells]
    return Table(("factor", "setting", "SWD", "diversity", "z vs default", "outcome"), tuple(rows))


def seed_section(results: StudyResults) -> tuple[list[Block], Assets]:
    blocks: list[Block] = [Heading("5. Seed stability", 2)]
    if not results.seeds:
        return _not_measured(blocks, "seed-stability")
    blocks.append(Paragraph(
        f"The same config and data over {results.seeds[0].summary.n} training seeds (initialisation, data order and "
        f"noise), {results.seeds[0].n} samples each. The seed s.d. "
        "includes the metric's own noise; a ratio well above 1 means training randomness dominates it. With few seeds "
        "an s.d. is itself uncertain by about 1/√(2(n−1)) of its value."))
    rows = [(f.family, ", ".join(f"{v:.3g}" for v in f.swd), _pm(f.summary.mean, f.summary.sd), f"{f.cv:.1%}",
             f"{f.metric_sd:.2g}", f"{f.summary.sd / f.metric_sd:.2g}" if f.metric_sd else "") for f in results.seeds]
    blocks.append(Table(("family", "SWD per seed", "mean ± s.d.", "s.d. / mean", "metric s.d.", "seed s.d. / metric s.d."),
                        tuple(rows)))
    return blocks, {}
