"""``OUT/study.html`` and ``OUT/study.md`` (+ ``OUT/figures/*.png``): the study's report.

A pure function of the study folder — plan.json, the data layout, the stored measurements and the
runs' samples — built with landiff.report's document model and renderers, so rebuilding it never
trains or samples. Order: overview, Observations (the four claims, each against every GAN of the
study), one section per experiment, every run, how to reproduce.
"""

from __future__ import annotations

import math
from pathlib import Path

from landiff.report.numbers import duration
from landiff.report.render import Block, Bullets, Heading, Paragraph, Table, figure_sources, render_html, render_markdown
from landiff.runs.files import atomic_write_bytes, atomic_write_text
from landiff.workflows.study.datasets import read_layout
from landiff.workflows.study.experiments import StudyResults, compute_results
from landiff.workflows.study.sections import (
    budget_text,
    cost_section,
    hparam_section,
    quality_section,
    seed_section,
    sensitivity_section,
)
from landiff.workflows.study.verdict import CLAIMS, Claim, observations

TITLE = "landiff study: diffusion vs GAN, four claims measured"


def overview(results: StudyResults, out: Path) -> list[Block]:
    o, layout = results.options, read_layout(out)
    finished = sum(e.status == "finished" for e in results.evaluations.values())
    diverged = sum(e.status == "diverged" for e in results.evaluations.values())
    data = layout.source if layout else o.data
    return [
        Heading(TITLE, 1),
        Paragraph(f"Data: {data}; {o.resolution} px. {budget_text(results)} {finished} runs measured"
                  f"{f', {diverged} diverged' if diverged else ''}."),
    ]


def _summary(claims: list[Claim], gans: tuple[str, ...]) -> Table:
    """One row per claim, one column per GAN it was tested against: the verdicts at a glance."""
    verdicts = {(c.number, c.against): c.verdict for c in claims}
    rows = tuple((f"{k}. {statement}", *(verdicts.get((k, g), "") for g in gans))
                 for k, statement in enumerate(CLAIMS, 1))
    return Table(("claim", *(f"against {g}" for g in gans)), rows)


def observations_blocks(results: StudyResults) -> list[Block]:
    claims, gans = observations(results), results.options.gans
    items = []
    for claim in claims:
        how = f"; {claim.strength}" if claim.strength else ""
        items.append(f"Claim {claim.number}, '{claim.statement}', against {claim.against}: {claim.verdict.upper()}{how}. "
                     f"{claim.evidence}.")
    return [Heading("Observations", 2),
            Paragraph(f"Each of the study's four original impressions, tested against each GAN of the study "
                      f"({', '.join(gans)}) by the rule stated in its section (and in landiff.workflows.study.verdict): "
                      "the rule compares diffusion with that GAN alone, as a study of the two would."),
            _summary(claims, gans), Bullets(tuple(items))]


def runs_table(results: StudyResults) -> list[Block]:
    rows = []
    for name, e in sorted(results.evaluations.items()):
        rows.append((name, e.status, str(e.step), f"{e.images_seen:,}",
                     duration(e.train_seconds) if math.isfinite(e.train_seconds) else "",
                     f"{e.swd:.3g} ± {e.swd_std:.2g}" if math.isfinite(e.swd) else "",
                     f"{e.diversity:.2f}" if math.isfinite(e.diversity) else ""))
    return [Heading("Runs", 2),
            Paragraph("Every training is an ordinary landiff train run directory under runs/ (config.json, stats.jsonl, "
                      "checkpoints/): landiff sample, eval, compare and report work on any of them. The samples measured "
                      "here are in samples/<run>.npz, the measurements in results/."),
            Table(("run", "status", "steps", "images seen", "train time", "SWD", "diversity"), tuple(rows))]


def reproduce(results: StudyResults, out: Path) -> list[Block]:
    o = results.options
    budget = "tiny" if o.budget is None else f"{o.budget:g}"
    command = (f"landiff study --data {o.data} --budget {budget} --resolution {o.resolution} --images {o.images} "
               f"--fraction {o.fraction:g} --seeds {o.seeds} --n {o.n} --gans {','.join(o.gans)} --out {out}")
    return [Heading("Reproduce", 2), Paragraph(f"{command} (re-running continues a killed study; finished runs are "
                                                "reused). Each experiment alone: landiff study quality|cost|"
                                                "data-sensitivity|hparam-stability|seed-stability with the same options.")]


def build_blocks(results: StudyResults, out: Path) -> tuple[list[Block], dict[str, bytes]]:
    """The whole report as blocks, and the PNGs it references (paths relative to ``out``)."""
    blocks = overview(results, out) + observations_blocks(results)
    assets: dict[str, bytes] = {}
    for part in (quality_section(results, out), cost_section(results), sensitivity_section(results, out),
                 hparam_section(results), seed_section(results)):
        blocks += part[0]
        assets.update(part[1])
    blocks += runs_table(results) + reproduce(results, out)
    missing = [src for src in figure_sources(blocks) if src not in assets]
    if missing:  # a section referenced a PNG it did not make: a bug, not a user mistake
        raise RuntimeError(f"study report references PNGs that were not produced: {missing}")
    return blocks, assets


def write_report(out: Path, results: StudyResults | None = None) -> Path:
    """Writes ``out/study.html``, ``out/study.md`` and ``out/figures/``; returns the HTML path."""
    results = results if results is not None else compute_results(out)
    blocks, assets = build_blocks(results, out)
    for name, data in sorted(assets.items()):
        atomic_write_bytes(out / name, data)
    atomic_write_text(out / "study.md", render_markdown(blocks))
    atomic_write_text(out / "study.html", render_html(blocks))
    return out / "study.html"
