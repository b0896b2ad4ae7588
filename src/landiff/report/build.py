"""What the report says, section by section, and :func:`build_report`, which writes it.

``build_report`` reads run directories and writes ``report.html`` + ``report.md`` + the PNGs both
reference. It is a pure function of the run directories: it reads config.json, stats.jsonl and
compare/ files and never trains, samples or evaluates, so rebuilding gives the same report (no
timestamps are added).

The content is built once as :mod:`.render` blocks: each ``*_section`` function takes the runs (and
an :class:`Assets` collector for the PNG bytes it references, not yet written) and returns blocks;
a piece no run holds becomes a "not measured" line, never an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from landiff.errors import UserError
from landiff.report.collect import load_runs
from landiff.report.figures import (
    curve_png,
    grid_count,
    grid_png,
    losses_png,
    memorization_png,
    sweep_png,
    tile_size,
)
from landiff.report.guidance import guidance_section
from landiff.report.numbers import (
    NOT_MEASURED,
    estimate,
    metric_title,
    number,
    ordered_metrics,
    plus_minus,
    ratio,
    si,
)
from landiff.report.observations import COST_FIELDS, cost_pairs, groups, measured_cost
from landiff.report.records import Estimate, MetricValue, Run, Summary, Unavailable
from landiff.report.render import (
    Block,
    Bullets,
    Figure,
    FigureRow,
    Heading,
    Paragraph,
    Table,
    figure_sources,
    render_html,
    render_markdown,
)
from landiff.report.verdict import summary_section, verdict
from landiff.runs.files import atomic_write_bytes, atomic_write_text

# The PNG names the report sections below produce: a rebuild removes the ones it did not produce this
# time, so a run whose samples are now left out cannot keep showing an old grid.
REPORT_PNG = re.compile(r"(real|losses|curve|sweep|(samples|preview|memorization|guidance)-\d+|guidance-\d+-\d+)\.png")

FAMILY_NAMES = {"diffusion": "diffusion", "gan": "GAN", None: "unknown"}


# ------------------------------------------------------------------------------ writing the files
@dataclass(frozen=True)
class ReportFiles:
    """What :func:`build_report` wrote."""

    html: Path
    markdown: Path
    images: tuple[Path, ...]


def build_report(runs: list[str | Path], out: str | Path) -> ReportFiles:
    """Writes ``out/report.html``, ``out/report.md`` and the PNGs both reference.

    Args:
        runs: run directories (each with config.json and/or compare/summary.json); any other piece
            may be missing and is then shown as "not measured".
        out: the report folder (created if needed); existing report files in it are replaced, and
            report PNGs of an earlier build that this one did not produce are removed.

    Raises:
        UserError: no runs, a path that is not a run directory, or ``out`` is a file.
    """
    if not runs:
        raise UserError("landiff report needs at least one run directory")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; pass a folder for the report")
    blocks, assets = build_blocks(load_runs(list(runs)))
    missing = [src for src in figure_sources(blocks) if src not in assets.files]
    if missing:  # a section referenced a PNG it did not produce: a bug, not a user mistake
        raise RuntimeError(f"report references PNGs that were not produced: {missing}")
    out.mkdir(parents=True, exist_ok=True)
    images = []
    for name, data in sorted(assets.files.items()):
        _publish(out / name, partial(atomic_write_bytes, data=data))
        images.append(out / name)
    _publish(out / "report.md", lambda path: atomic_write_text(path, render_markdown(blocks)))
    _publish(out / "report.html", lambda path: atomic_write_text(path, render_html(blocks)))
    for stale in out.iterdir():
        if REPORT_PNG.fullmatch(stale.name) and stale.name not in assets.files and stale.is_file():
            stale.unlink()
    return ReportFiles(html=out / "report.html", markdown=out / "report.md", images=tuple(images))


def _publish(path: Path, write: Callable[[Path], None]) -> None:
    """Writes atomically, then makes the file world-readable like any other written file (the
    temporary file behind the atomic rename is created owner-only), so the folder can be served."""
    write(path)
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)


# ------------------------------------------------------------------------ the sections, as blocks
@dataclass
class Assets:
    """PNG files of the report, by file name relative to the report folder."""

    files: dict[str, bytes] = field(default_factory=dict)

    def add(self, name: str, data: bytes) -> str:
        self.files[name] = data
        return name


def title_section(runs: list[Run]) -> list[Block]:
    """The title and the one-sentence verdict: the first thing on the page."""
    families = list(dict.fromkeys(FAMILY_NAMES[run.family] for run in runs))
    return [Heading("landiff report: " + " vs ".join(families), 1), Paragraph(verdict(runs))]


def runs_section(runs: list[Run]) -> list[Block]:
    names = ", ".join(f'"{run.label}" ({FAMILY_NAMES[run.family]}, {run.path})' for run in runs)
    rows = []
    for run in runs:
        c, s = run.config, run.summary
        sha = s.checkpoint_sha256[:12] if s and s.checkpoint_sha256 else NOT_MEASURED
        rows.append((run.label, FAMILY_NAMES[run.family], _text(c and c.preset), _text(c and c.data),
                     _text(c and c.resolution), _text(c and c.batch), _text(c and c.train_steps),
                     _text(s and s.step), si(s.images_seen) if s else NOT_MEASURED, sha))
    header = ("run", "family", "preset", "data", "resolution", "batch", "train steps", "evaluated step",
              "images seen", "checkpoint sha256")
    return [Heading("Runs", 2),
            Paragraph(f"{len(runs)} run(s): {names}. Every number in this report is read from the run directories "
                      "(config.json, stats.jsonl, compare/); rebuilding it computes nothing new."),
            Table(header, tuple(rows))]


def _sampler(summary: Summary) -> str:
    if summary.sampler == "gan":
        text = "generator, 1 forward pass"
    elif summary.sampler and summary.steps:
        text = f"{summary.sampler}, {summary.steps} steps"
    else:
        text = _text(summary.sampler)
    return text + class_text(summary)


def class_text(summary: Summary) -> str:
    """How the compare samples were labelled, e.g. ", classes balanced over day, sunset, night"."""
    text = ""
    if summary.class_protocol == "balanced" and summary.classes:
        text = ", classes balanced over " + ", ".join(summary.classes)
    if summary.guidance is not None and summary.guidance != 1.0:
        text += f", guidance scale {summary.guidance:g}"
    return text


def _text(value: object) -> str:
    return NOT_MEASURED if value is None or value == "" else str(value)


def observations_section(runs: list[Run]) -> list[Block]:
    blocks: list[Block] = [Heading("Observations", 2)]
    for group in groups(runs):
        blocks += [Heading(group.title, 3), Bullets(group.items)]
    return blocks


def samples_section(runs: list[Run], assets: Assets) -> list[Block]:
    """Real images and every run's samples: same count, layout and tile size, side by side."""
    sets = _image_sets(runs)
    present = [images_ for _, images_ in sets if images_ is not None]
    if not present:
        return [Paragraph("No compare/samples.npz or compare/real.npz in any run: samples not measured.")]
    count, tile = grid_count(present), tile_size(present)
    figures = []
    for k, (name, images_) in enumerate(sets):
        if images_ is not None:
            src = assets.add("real.png" if k == 0 else f"samples-{k}.png", grid_png(images_, count, tile))
            family = FAMILY_NAMES[runs[k - 1].family] if k else ""
            caption = "real (reference)" if k == 0 else name if name.lower() == family.lower() else f"{name} ({family})"
            figures.append(Figure(src, f"{caption}: {count} images", caption))
    return [FigureRow(tuple(figures))]


def _image_sets(runs: list[Run]) -> list[tuple[str, np.ndarray | None]]:
    real = next((run.real for run in runs if run.real is not None), None)
    return [("real", real)] + [(run.label, run.samples) for run in runs]


def samples_note(runs: list[Run]) -> list[Block]:
    """What the pictures above are: which images, which seeds, at what scale."""
    sets = _image_sets(runs)
    present = [images_ for _, images_ in sets if images_ is not None]
    if not present:
        return []
    count, tile = grid_count(present), tile_size(present)
    seeds = sorted({run.summary.seed for run in runs if run.summary and run.summary.seed is not None
                    and run.samples is not None})
    seed_text = (f"seeds {seeds[0]}–{seeds[0] + count - 1}, the same for every run" if len(seeds) == 1 else
                 f"seeds differ between runs (starting at {', '.join(map(str, seeds))})" if seeds else
                 "seeds not recorded")
    text = (f"Pictures: the first {count} images of each set ({seed_text}), upscaled with nearest-neighbour to "
            f"{tile[1]}×{tile[0]} px tiles; real images from compare/real.npz of the first run that has one.")
    missing = [name for name, images_ in sets if images_ is None]
    if missing:
        text += " Not measured (no images): " + ", ".join(missing) + "."
    return [Paragraph(text)]


def _previews(runs: list[Run], assets: Assets) -> list[Block]:
    """The newest samples/step-N.png of each run (copied as is; damaged files are skipped)."""
    figures = []
    for k, run in enumerate(runs, start=1):
        if run.preview is None:
            continue
        try:
            with Image.open(run.preview) as image:
                image.verify()
            data = run.preview.read_bytes()
        except (OSError, SyntaxError):
            continue
        src = assets.add(f"preview-{k}.png", data)
        figures.append(Figure(src, f"{run.label} training preview", f"{run.label}: {run.preview.name}"))
    if not figures:
        return []
    return [Paragraph("Latest preview grids written during training (training-time sampler settings, not "
                      "the compare protocol):"), FigureRow(tuple(figures))]


def metrics_section(runs: list[Run]) -> list[Block]:
    """Value ± std per metric and run, the noise floor rows, how the spreads were obtained, and the
    reason of every unavailable metric verbatim (once, as a numbered note)."""
    names = ordered_metrics({name for run in runs for name in run.metrics()})
    blocks: list[Block] = [Heading("Metrics", 2)]
    if not names:
        return blocks + [Paragraph("No compare/summary.json metrics or metrics-*.jsonl in any run: not measured.")]
    notes: dict[str, list[str]] = {}  # reason → metric titles, in order of first appearance

    def cell(value: MetricValue | None, name: str) -> str:
        if not isinstance(value, Unavailable):
            return estimate(value)
        titles = notes.setdefault(value.reason, [])
        titles.extend([metric_title(name)] if metric_title(name) not in titles else [])
        return f"unavailable (note {list(notes).index(value.reason) + 1})"

    rows = []
    for run in runs:
        s, metrics = run.summary, run.metrics()
        rows.append((run.label, FAMILY_NAMES[run.family], _text(s and s.n), _text(s and s.seed),
                     _sampler(s) if s else NOT_MEASURED, _text(s and s.reference))
                    + tuple(cell(metrics.get(name), name) for name in names))
    for run, s in _distinct_floors(runs):
        rows.append((f"noise floor (real vs real, {run.label})", "—", _text(s.n), _text(s.seed), "—",
                     _text(s.reference)) + tuple(cell(s.noise_floor[n], n) if n in s.noise_floor else "—" for n in names))
    header = ("run", "family", "n", "seed", "sampler", "reference") + tuple(metric_title(n) for n in names)
    blocks.append(Table(header, tuple(rows)))
    if notes:
        blocks.append(Bullets(tuple(f"Note {k} ({', '.join(titles)}): {reason}"
                                    for k, (reason, titles) in enumerate(notes.items(), start=1))))
    spreads: dict[str, list[str]] = {}
    for run in runs:
        for name, value in run.metrics().items():
            if isinstance(value, Estimate) and value.spread and metric_title(name) not in spreads.get(value.spread, []):
                spreads.setdefault(value.spread, []).append(metric_title(name))
    text = ("Lower is better except for precision and recall. The noise floor is the same metric between two "
            "real image sets under the same protocol: what a model that matches the data would get at this n.")
    if spreads:
        text += " ± is the " + "; ".join(f"{spread} ({', '.join(titles)})" for spread, titles in spreads.items()) + "."
    return blocks + [Paragraph(text)]


def _distinct_floors(runs: list[Run]) -> list[tuple[Run, Summary]]:
    """One run (and its summary) per distinct noise floor (runs of one compare share theirs)."""
    seen: dict[tuple, tuple[Run, Summary]] = {}
    for run in runs:
        summary = run.summary
        if summary and summary.noise_floor:
            key = tuple(sorted((name, estimate(value)) for name, value in summary.noise_floor.items()))
            seen.setdefault(key, (run, summary))
    return list(seen.values())


def curves_section(runs: list[Run], assets: Assets) -> list[Block]:
    blocks: list[Block] = [Heading("Training curves", 2)] + _previews(runs, assets)
    losses = losses_png(runs)
    if losses is None:
        blocks.append(Paragraph("No stats.jsonl in any run: training losses not measured."))
    else:
        blocks.append(Figure(assets.add("losses.png", losses), "training losses vs images seen",
                             "Training losses vs images seen (diffusion: training objective; GAN: discriminator "
                             "loss_d solid, generator loss_g dashed)."))
    curve = curve_png(runs)
    if curve is None:
        blocks.append(Paragraph("No compare/curve.json in any run: metric vs images seen not measured."))
    else:
        blocks.append(Figure(assets.add("curve.png", curve), "SWD vs images seen",
                             "SWD of checkpoints along training (± std band); dotted: real-vs-real noise floor."))
    return blocks


def sweep_section(runs: list[Run], assets: Assets) -> list[Block]:
    blocks: list[Block] = [Heading("Quality vs sampling steps", 2)]
    png = sweep_png(runs)
    if png is None:
        return blocks + [Paragraph("No sampler sweep in any run (compare/summary.json 'sweep'): not measured.")]
    blocks.append(Figure(assets.add("sweep.png", png), "SWD vs NFE per sampler",
                         "SWD vs network evaluations per sample, one line per sampler (log x-axis); stars: GAN "
                         "runs (one evaluation per sample); dotted: noise floor."))
    rows = tuple((run.label, p.sampler, str(p.steps), f"{p.nfe:g}", plus_minus(p.swd, p.swd_std),
                  number(p.seconds_per_image, 3))
                 for run in runs if run.summary for p in sorted(run.summary.sweep, key=lambda p: (p.sampler, p.nfe)))
    return blocks + [Table(("run", "sampler", "steps", "NFE", "SWD", "s/image"), rows)]


def cost_section(runs: list[Run]) -> list[Block]:
    """Training and sampling cost per run, then ratio rows between the families."""
    rows = []
    for run in runs:
        cost = run.summary.cost if run.summary else None
        rows.append((run.label, FAMILY_NAMES[run.family]) + tuple(
            NOT_MEASURED if cost is None or (v := f.read(cost)) is None else f.write(v) for f in COST_FIELDS))
    for a, b in cost_pairs(runs):
        rows.append((f"ratio {a.label} / {b.label}", f"{FAMILY_NAMES[a.family]} / {FAMILY_NAMES[b.family]}") +
                    tuple(ratio(f.read(measured_cost(a)), f.read(measured_cost(b))) for f in COST_FIELDS))
    header = ("run", "family") + tuple(f.column for f in COST_FIELDS)
    return [Heading("Training and sampling cost", 2), Table(header, tuple(rows)),
            Paragraph("FLOPs are counted by torch on one image (convolutions, matmuls, attention); train FLOPs = "
                      "images seen × FLOPs per training image; times are wall-clock on the machine that ran each step.")]


def _memorization_row(run: Run) -> tuple[str, ...]:
    memo = run.summary.memorization if run.summary else None
    start = (run.label, FAMILY_NAMES[run.family])
    if memo is None:
        return start + (NOT_MEASURED,) * 4
    if memo.unavailable is not None:
        return start + (memo.unavailable, "—", "—", "—")
    flagged = NOT_MEASURED if memo.flagged is None else f"{memo.flagged} / {_text(memo.n)}"
    return start + (flagged, number(memo.ratio_threshold, 3), number(memo.distance_threshold, 3),
                    number(memo.min_ratio, 3))


def memorization_section(runs: list[Run], assets: Assets) -> list[Block]:
    rows = tuple(_memorization_row(run) for run in runs)
    blocks: list[Block] = [
        Heading("Memorisation", 2),
        Paragraph("A sample is flagged as a likely copy when its distance to the nearest training image is much "
                  "smaller than to the nearest held-out image (ratio below the threshold) and small in absolute "
                  "terms (d_train below the threshold; RMS at 16×16, intensities in [0, 1])."),
        Table(("run", "family", "flagged / n", "ratio threshold", "distance threshold", "lowest ratio"), rows),
    ]
    for k, run in enumerate(runs, start=1):
        if run.memorization is None:
            blocks.append(Paragraph(f'"{run.label}": no compare/memorization.npz, pairs not shown.'))
            continue
        src = assets.add(f"memorization-{k}.png", memorization_png(run.memorization))
        blocks.append(Figure(src, f"{run.label}: closest samples and their nearest training images",
                             f'"{run.label}": samples closest to a training image (top) above that training image '
                             "(bottom), lowest ratio first; ratio and d_train under each pair."))
    return blocks


def build_blocks(runs: list[Run]) -> tuple[list[Block], Assets]:
    """The whole report, in reading order, with the PNGs it references."""
    assets = Assets()
    blocks = (title_section(runs) + samples_section(runs, assets) + summary_section(runs) + samples_note(runs)
              + observations_section(runs) + runs_section(runs) + metrics_section(runs)
              + curves_section(runs, assets) + sweep_section(runs, assets)
              + guidance_section(runs, assets.add) + cost_section(runs) + memorization_section(runs, assets))
    return blocks, assets
