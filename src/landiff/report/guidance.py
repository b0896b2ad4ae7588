"""The report's "Guidance" section: a guidance sweep (``compare/guidance.json``) as a plot, a table and grids.

Fidelity (class consistency; precision when measured) against diversity (within-class diversity
ratio; recall when measured), one line per kind of guidance with its scales marked, as in ADM's
Fig. 3 and Table 4 (Dhariwal & Nichol 2021, arXiv 2105.05233); the axes are defined in
:mod:`landiff.workflows.guidance_sweep` (a point is a pair (s, w); both lines pass the unguided
(0, 1)). A run without a sweep adds nothing to the report.
"""

from __future__ import annotations

from collections.abc import Callable

from landiff.report.figures import guidance_grid_png, guidance_png, tile_size
from landiff.report.numbers import NOT_MEASURED, number, plus_minus
from landiff.report.records import GuidancePoint, GuidanceSweep, Run
from landiff.report.render import Block, Figure, FigureRow, Heading, Paragraph, Table


def _text(value: object) -> str:
    return NOT_MEASURED if value is None or value == "" else str(value)


GUIDANCE_TEXT = (
    "Each point is a pair (s, w): s is the classifier-guidance scale (Dhariwal & Nichol 2021, the noisy classifier's "
    "gradient; s = 0 is none) and w the classifier-free scale (Ho & Salimans 2022 in the convention eps_u + w (eps_c - "
    "eps_u): w = 1 is the plain conditional model, w = 0 the unconditional one; Ho & Salimans' own w is this w - 1). "
    "The classifier-guidance line varies s at w = 1, the classifier-free line varies w at s = 0; both start from the "
    "unguided point (s = 0, w = 1), drawn once. Every point uses the same seeds and the same balanced labels. Class "
    "consistency is the accuracy of a clean classifier (trained on clean images, not the guiding one) against the "
    "intended labels, with a Wilson 95% interval; its accuracy on held-out real images is the ceiling. Within-class "
    "diversity is the mean perceptual distance between different samples of a class over the same for real images "
    "(1 = as varied as the data); per-class SWD compares each class's samples with real images of that class.")


def _accuracy(value: float | None, low: float | None, high: float | None) -> str:
    if value is None:
        return NOT_MEASURED
    return f"{value:.3f}" + (f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else "")


def _per_class(values: tuple[tuple[str, float | None], ...]) -> str:
    return ", ".join(f"{name} {number(value, 3)}" for name, value in values) or NOT_MEASURED


def _guidance_row(point: GuidancePoint) -> tuple[str, ...]:
    return (point.label, f"{point.classifier_scale:g}", f"{point.cfg_scale:g}",
            _accuracy(point.consistency, point.consistency_low, point.consistency_high),
            _per_class(point.per_class_consistency), number(point.class_swd), number(point.diversity_ratio, 3),
            number(point.precision, 3), number(point.recall, 3),
            NOT_MEASURED if point.swd is None else plus_minus(point.swd, point.swd_std),
            number(point.nfe), number(point.seconds_per_image, 3))


def _real_row(sweep: GuidanceSweep) -> tuple[str, ...]:
    """The real images beside the points: the judge's accuracy on them (the ceiling) and the real-vs-real floors."""
    return ("real images (ceiling; floor)", "—", "—", _accuracy(sweep.ceiling, sweep.ceiling_low, sweep.ceiling_high),
            _per_class(sweep.ceiling_per_class), number(sweep.class_swd_floor), "1", "—", "—",
            number(sweep.swd_floor), "—", "—")


GUIDANCE_HEADER = ("point", "s", "w", "class consistency [95% CI]", "per class", "class SWD", "diversity ratio",
                   "precision", "recall", "SWD", "NFE", "s/image")


def _guidance_notes(sweep: GuidanceSweep) -> str:
    ceiling = ("not measured" if sweep.ceiling is None else f"{sweep.ceiling:.3f}" + (
        f" [{sweep.ceiling_low:.3f}, {sweep.ceiling_high:.3f}]" if sweep.ceiling_low is not None
        and sweep.ceiling_high is not None else ""))
    parts = [f"{_text(sweep.n)} images per point (seeds {_text(sweep.seed)} onwards, classes balanced over "
             f"{', '.join(sweep.classes) or NOT_MEASURED}), {_text(sweep.sampler)} with {_text(sweep.steps)} steps",
             f"judge: {_text(sweep.judge)}; its accuracy on held-out real images (the ceiling, last row): {ceiling}",
             f"guiding classifier: {sweep.guide or 'none (no classifier-guidance line)'}",
             f"real-vs-real floor: class SWD {number(sweep.class_swd_floor)}, SWD {number(sweep.swd_floor)}",
             f"real images: {_text(sweep.reference)}"]
    parts += [f"not swept: {line}" for line in sweep.not_swept]
    if sweep.pr_unavailable:
        parts.append(f"precision/recall {sweep.pr_unavailable}")
    return "; ".join(parts) + "."


def guidance_section(runs: list[Run], add: Callable[[str, bytes], str]) -> list[Block]:
    """The guidance sweep of every run that has one (nothing at all when none has); ``add(name, png)``
    collects a PNG of the report and returns its name (``build.Assets.add``)."""
    swept = [(k, run, run.guidance) for k, run in enumerate(runs, start=1) if run.guidance is not None]
    if not swept:
        return []
    blocks: list[Block] = [Heading("Guidance", 2), Paragraph(GUIDANCE_TEXT)]
    for k, run, sweep in swept:
        blocks.append(Heading(f'"{run.label}": fidelity vs diversity', 3))
        png = guidance_png(sweep)
        if png is not None:
            blocks.append(Figure(add(f"guidance-{k}.png", png), f"{run.label}: guidance, fidelity vs diversity",
                                 "Class consistency vs within-class diversity ratio (and precision vs recall when "
                                 "measured), one line per kind of guidance, each point marked with its scale; dotted: "
                                 "the ceiling (the clean classifier on real images)."))
        blocks += [Table(GUIDANCE_HEADER, tuple(_guidance_row(p) for p in sweep.points) + (_real_row(sweep),)),
                   Paragraph(_guidance_notes(sweep))]
        if sweep.grids:
            tile = tile_size([grid.images[0] for grid in sweep.grids])
            figures = tuple(Figure(add(f"guidance-{k}-{j}.png", guidance_grid_png(grid, tile)),
                                   f"{run.label}: samples at {grid.label}", grid.label)
                            for j, grid in enumerate(sweep.grids, start=1))
            blocks += [Paragraph("Samples per class (one row per class: " + ", ".join(sweep.classes) +
                                 "), the same seeds at every scale:"), FigureRow(figures)]
    return blocks
