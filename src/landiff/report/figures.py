"""The report's pictures as PNG bytes: sample grids drawn with Pillow, and plots drawn with matplotlib.

Sample grids use numpy and Pillow only, so 32 px images keep hard pixel edges: every set gets the
same count, layout and tile size, each image resized with ``Image.NEAREST`` to a common tile of at
least :data:`MIN_TILE` pixels, which for an integer ratio is exact pixel replication.

Plots use matplotlib's Agg canvas (headless; no pyplot, so no global backend state). matplotlib is
an optional dependency (the ``report`` extra): it is imported only inside the functions that draw,
on first use, and a missing install is one :class:`UserError` line saying what to install. Each
plot function returns PNG bytes, or None when the runs hold nothing to plot.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
from PIL import Image

from landiff.errors import UserError
from landiff.grid import make_grid, png_bytes
from landiff.report.numbers import metric_or_none
from landiff.report.records import GuidanceGrid, GuidancePoint, GuidanceSweep, MemorizationPairs, Run

MIN_TILE = 96  # px: a 32 px image is shown at 3×, a 64 px image at 2×
MAX_GRID_IMAGES = 36  # 6 × 6 per set keeps three grids side by side readable

DPI = 100
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


# ------------------------------------------------------------------------------ sample grids (Pillow)
def grid_count(sets: list[np.ndarray], limit: int = MAX_GRID_IMAGES) -> int:
    """The largest square number of images every set can show, at most ``limit`` (full rows)."""
    available = max(1, min([limit] + [len(images) for images in sets]))
    return math.isqrt(available) ** 2


def tile_size(sets: list[np.ndarray]) -> tuple[int, int]:
    """(height, width) of one tile: the largest image among ``sets`` times the smallest integer
    factor that reaches :data:`MIN_TILE` pixels on its longer side."""
    height = max(images.shape[1] for images in sets)
    width = max(images.shape[2] for images in sets)
    factor = max(1, math.ceil(MIN_TILE / max(height, width)))
    return height * factor, width * factor


def upscale(images: np.ndarray, tile: tuple[int, int]) -> np.ndarray:
    """(N, H, W, 3) uint8 → (N, tile_h, tile_w, 3) uint8 by nearest-neighbour resampling."""
    height, width = tile
    if images.shape[1:3] == (height, width):
        return images
    return np.stack([np.asarray(Image.fromarray(img).resize((width, height), Image.Resampling.NEAREST)) for img in images])


def grid_png(images: np.ndarray, count: int, tile: tuple[int, int]) -> bytes:
    """The first ``count`` images as a square-ish grid of ``tile``-sized cells, PNG-encoded."""
    chosen = upscale(images[:count], tile)
    columns = max(1, math.ceil(math.sqrt(count)))
    return png_bytes(make_grid(chosen, columns=columns, pad=2))


def guidance_grid_png(grid: GuidanceGrid, tile: tuple[int, int]) -> bytes:
    """One row per class (class order), the same G samples of each class at every point."""
    classes, count = grid.images.shape[:2]
    chosen = upscale(grid.images.reshape(classes * count, *grid.images.shape[2:]), tile)
    return png_bytes(make_grid(chosen, columns=count, pad=2))


# ---------------------------------------------------------------------------------- plots (matplotlib)
def new_figure(width: float, height: float) -> Any:
    """A Figure attached to an Agg canvas (inches)."""
    try:  # matplotlib is the optional ``report`` extra: imported here, on first use
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError("the report (landiff report, landiff study) needs matplotlib for its plots: "
                        "pip install 'landiff[report]' (or pip install 'matplotlib>=3.7')") from None
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def figure_png(figure: Any) -> bytes:
    """The figure as PNG bytes that depend only on its content."""
    buffer = io.BytesIO()
    # No "Software" metadata: the PNG bytes then depend only on the data, not the matplotlib version.
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def colour(index: int) -> str:
    return COLOURS[index % len(COLOURS)]


def losses_png(runs: list[Run]) -> bytes | None:
    """Training losses vs images seen: one panel for diffusion (loss), one for GAN (loss_d, loss_g)."""
    panels = [(family, [(k, r) for k, r in enumerate(runs) if r.family == family and r.stats is not None])
              for family in ("diffusion", "gan")]
    panels = [(family, members) for family, members in panels if members]
    if not panels:
        return None
    figure = new_figure(5.0 * len(panels), 3.6)
    for axes, (family, members) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels, strict=True):
        for k, run in members:
            stats = run.stats
            if stats is None:  # never: members all have a training log
                continue
            names = ("loss",) if family == "diffusion" else ("loss_d", "loss_g")
            # strict=False: a diffusion run has one loss series, a GAN two; the styles cover the longer.
            for name, style in zip(names, ("-", "--"), strict=False):
                series = stats.losses.get(name)
                if series is not None:
                    axes.plot(stats.images_seen, series, style, color=colour(k), label=f"{run.label} {name}")
        if family == "diffusion" and _spans_decade(members):
            axes.set_yscale("log")
        axes.set_title("diffusion training loss" if family == "diffusion" else "GAN losses (nats)")
        axes.set_xlabel("images seen")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    return figure_png(figure)


def _spans_decade(members: list[tuple[int, Run]]) -> bool:
    """Whether the diffusion losses cover more than a factor 10 (then a log axis reads better)."""
    values = np.concatenate([run.stats.losses.get("loss", np.array([])) for _, run in members if run.stats is not None])
    values = values[np.isfinite(values) & (values > 0)]
    return values.size > 1 and values.max() > 10 * values.min()


def _noise_floor_line(axes: Any, runs: list[Run]) -> None:
    for run in runs:
        floor = metric_or_none(run.summary.noise_floor.get("swd")) if run.summary else None
        if floor is not None:
            axes.axhline(floor.value, color="grey", linestyle=":", label=f"noise floor {floor.value:.3g}")
            return


def curve_png(runs: list[Run]) -> bytes | None:
    """SWD vs images seen for every run with ``compare/curve.json``, with a ±std band."""
    members = [(k, r) for k, r in enumerate(runs) if r.curve]
    if not members:
        return None
    figure = new_figure(6.0, 3.6)
    axes = figure.subplots()
    for k, run in members:
        x = np.array([p.images_seen for p in run.curve])
        y = np.array([p.swd for p in run.curve])
        std = np.array([p.swd_std if p.swd_std is not None else 0.0 for p in run.curve])
        axes.plot(x, y, "o-", color=colour(k), label=run.label)
        axes.fill_between(x, y - std, y + std, color=colour(k), alpha=0.2)
    _noise_floor_line(axes, runs)
    axes.set_xlabel("images seen")
    axes.set_ylabel("SWD (lower is better)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    return figure_png(figure)


def sweep_png(runs: list[Run]) -> bytes | None:
    """SWD vs network evaluations per sample, one line per (diffusion run, sampler), log x-axis;
    GAN runs are one point at their NFE (1)."""
    lines = [(r, r.summary) for r in runs if r.summary is not None and r.summary.sweep]
    if not lines:
        return None
    figure = new_figure(6.0, 3.8)
    axes = figure.subplots()
    markers = ("o", "s", "^", "D", "v", "P")
    gan_nfe: set[float] = set()
    line = 0  # one colour per (run, sampler) line, so samplers of one run are told apart
    for run, summary in lines:
        for s, sampler in enumerate(sorted({p.sampler for p in summary.sweep})):
            points = sorted((p for p in summary.sweep if p.sampler == sampler), key=lambda p: p.nfe)
            axes.errorbar([p.nfe for p in points], [p.swd for p in points],
                          yerr=[p.swd_std or 0.0 for p in points], marker=markers[s % len(markers)],
                          color=colour(line), capsize=2, label=f"{run.label}: {sampler}")
            line += 1
    for run in runs:
        swd = metric_or_none(run.summary.metrics.get("swd")) if run.summary else None
        nfe = run.summary.cost.nfe if run.summary and run.summary.cost else None
        if run.family == "gan" and swd is not None:
            axes.errorbar([nfe or 1.0], [swd.value], yerr=[swd.std or 0.0], marker="*", markersize=12,
                          color=colour(line), linestyle="none", capsize=2, label=f"{run.label} (GAN)")
            gan_nfe.add(nfe or 1.0)
            line += 1
    _noise_floor_line(axes, runs)
    axes.set_xscale("log")
    from matplotlib.ticker import NullLocator  # the optional ``report`` extra (new_figure checked it is installed)

    # Label the NFE values measured (1, 5, 10, 20 …) instead of powers of ten.
    ticks = sorted({p.nfe for _, summary in lines for p in summary.sweep} | gan_nfe)
    axes.set_xticks(ticks, labels=[f"{t:g}" for t in ticks])
    axes.xaxis.set_minor_locator(NullLocator())
    axes.set_xlabel("network evaluations per sample (NFE)")
    axes.set_ylabel("SWD (lower is better)")
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=7)
    return figure_png(figure)


def memorization_png(pairs: MemorizationPairs, limit: int = 8) -> bytes:
    """Up to ``limit`` samples (top row) above their nearest training images (bottom row), lowest
    ratio first, with ratio and d_train under each pair."""
    order = np.argsort(pairs.ratio, kind="stable")[:limit]
    figure = new_figure(1.3 * len(order) + 0.4, 3.2)
    grid = figure.subplots(2, len(order), squeeze=False)
    for column, index in enumerate(order):
        for row, images in enumerate((pairs.samples, pairs.nearest_train)):
            axes = grid[row][column]
            axes.imshow(images[index], interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
        grid[1][column].set_xlabel(f"ratio {pairs.ratio[index]:.3f}\nd_train {pairs.d_train[index]:.3f}", fontsize=8)
    grid[0][0].set_ylabel("sample", fontsize=8)
    grid[1][0].set_ylabel("nearest train", fontsize=8)
    return figure_png(figure)


# The two lines of a guidance sweep: which points each holds, the scale along it, and its letter.
GUIDANCE_LINES = (("classifier", "classifier guidance (s; w = 1)", "classifier_scale", "s"),
                  ("cfg", "classifier-free (w; s = 0)", "cfg_scale", "w"))


def guidance_line(sweep: GuidanceSweep, kind: str) -> list[GuidancePoint]:
    """The points of one line, in order of its scale: the unguided point (s = 0 = w = 1) and the ``kind`` ones."""
    scale = next(attr for name, _, attr, _ in GUIDANCE_LINES if name == kind)
    members = [p for p in sweep.points if p.kind in ("unguided", kind)]
    return sorted(members, key=lambda p: getattr(p, scale)) if any(p.kind == kind for p in members) else []


def _guidance_panel(axes: Any, sweep: GuidanceSweep, x_of: str, y_of: str) -> bool:
    """One fidelity-vs-diversity panel: a line per kind of guidance, each point labelled s = … or w = …."""
    drawn = False
    for index, (kind, title, scale, letter) in enumerate(GUIDANCE_LINES):
        points = [p for p in guidance_line(sweep, kind) if getattr(p, x_of) is not None and getattr(p, y_of) is not None]
        if not points:
            continue
        xs, ys = [getattr(p, x_of) for p in points], [getattr(p, y_of) for p in points]
        axes.plot(xs, ys, "o-" if index == 0 else "s--", color=colour(index), label=title)
        for point, x, y in zip(points, xs, ys, strict=True):  # the unguided point is the star (both lines pass it)
            if point.kind != "unguided":  # labels above the first line's points, below the second's
                axes.annotate(f"{letter}={getattr(point, scale):g}", (x, y), textcoords="offset points",
                              xytext=(4, 4 if index == 0 else -10), fontsize=7, color=colour(index))
        drawn = True
    unguided = next((p for p in sweep.points if p.kind == "unguided"), None)
    if unguided is not None and getattr(unguided, x_of) is not None and getattr(unguided, y_of) is not None:
        axes.plot([getattr(unguided, x_of)], [getattr(unguided, y_of)], "*", color="black", markersize=12,
                  label="unguided (s = 0, w = 1)")
    return drawn


def guidance_png(sweep: GuidanceSweep) -> bytes | None:
    """Fidelity against diversity for each kind of guidance (ADM Fig. 3 / Table 4): class consistency
    vs within-class diversity ratio, and precision vs recall when they were measured."""
    panels = [("diversity_ratio", "consistency", "within-class diversity / real (1 = as varied as the data)",
               "class consistency (clean classifier accuracy)")]
    if any(p.precision is not None and p.recall is not None for p in sweep.points):
        panels.append(("recall", "precision", "recall (diversity)", "precision (fidelity)"))
    figure = new_figure(5.2 * len(panels), 4.0)
    drawn = False
    for k, (axes, (x_of, y_of, x_label, y_label)) in enumerate(zip(figure.subplots(1, len(panels), squeeze=False)[0],
                                                                    panels, strict=True)):
        drawn |= _guidance_panel(axes, sweep, x_of, y_of)
        if k == 0 and sweep.ceiling is not None:
            axes.axhline(sweep.ceiling, color="grey", linestyle=":", label=f"ceiling: real images {sweep.ceiling:.3g}")
        if k == 0:
            axes.axvline(1.0, color="grey", linestyle="-.", linewidth=0.8, label="diversity of the real images")
        axes.set_ylim(-0.02, 1.02)  # an accuracy or a precision: the whole [0, 1] range, so panels compare
        axes.set_xlabel(x_label)
        axes.set_ylabel(y_label)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    return figure_png(figure) if drawn else None
