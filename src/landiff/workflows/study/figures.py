"""The study report's PNGs: the quality-vs-compute curve, the grid heat-maps, the calibration
histogram (matplotlib's Agg canvas, no pyplot state) and the side-by-side sample rows (numpy + Pillow).
Each function returns PNG bytes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from landiff.grid import make_grid, png_bytes
from landiff.report.figures import colour, figure_png, new_figure, tile_size, upscale
from landiff.workflows.study.experiments import CostResult, FamilyCost, FamilyGrid
from landiff.workflows.study.options import FAMILIES
from landiff.workflows.study.plan import DEFAULT_SETTING

_LOWER = {"x1/4", "x1/2"}


def curve_png(costs: Sequence[CostResult], floor: float) -> bytes:
    """SWD vs training FLOPs, images seen and wall-clock, every family of ``costs`` (diffusion against each GAN):
    mean ± s.d. over its seed runs at each stage (error bars, at the seeds' mean x), each seed's own curve as a
    thin line; each pair's target (dashed, in the GAN's colour) and the floor."""
    figure = new_figure(14.0, 3.8)
    panels = (("train_flops", "training FLOPs"), ("images_seen", "training images seen"),
              ("train_seconds", "training wall-clock (s)"))
    families: dict[str, FamilyCost] = {}  # a family's curve is the same in every pair it is in
    for c in costs:
        for f in c.families:
            families.setdefault(f.family, f)
    for axes, (field, label) in zip(figure.subplots(1, 3), panels, strict=True):
        for family in families.values():
            k = FAMILIES.index(family.family)
            for seed in family.seeds:
                axes.plot([getattr(p, field) for p in seed.curve], [p.swd for p in seed.curve], color=colour(k),
                          alpha=0.3, linewidth=0.8)
            sd = [s.swd_sd if math.isfinite(s.swd_sd) else 0.0 for s in family.curve]
            axes.errorbar([getattr(s, field) for s in family.curve], [s.swd for s in family.curve], yerr=sd, marker="o",
                          color=colour(k), capsize=2, label=f"{family.family} ({len(family.seeds)} seeds, mean ± s.d.)")
        for c in costs:
            axes.axhline(c.target_swd, color=colour(FAMILIES.index(c.gan.family)), linestyle="--", linewidth=0.8,
                         label=f"target vs {c.gan.family} {c.target_swd:.3g}")
        if math.isfinite(floor):
            axes.axhline(floor, color="grey", linestyle=":", label=f"real vs real {floor:.3g}")
        axes.set_xscale("log")
        axes.set_xlabel(label)
        axes.set_ylabel("SWD x1e3 (lower is better)")
        axes.grid(alpha=0.3, which="both")
        axes.legend(fontsize=7)
    return figure_png(figure)


def _column(setting: str) -> int:
    return 0 if setting in _LOWER else 2


def _rows(grid: FamilyGrid) -> list[tuple[str, str]]:
    """The heat-map's rows: (factor, match) in grid order; a factor with cells at equal images and at equal
    steps gets a row for each."""
    return list(dict.fromkeys((c.factor, c.match) for c in grid.cells))


def _row_label(row: tuple[str, str], rows: list[tuple[str, str]]) -> str:
    factor, match = row
    both = len({m for f, m in rows if f == factor}) > 1
    return f"{factor} (equal {match})" if both or match != "images" else factor


def heatmap_png(grid: FamilyGrid) -> bytes:
    """Rows: factors (batch twice: at equal training images and at equal optimiser steps); columns: lower /
    default / higher-or-alternative. Colour: log2(SWD / default SWD)."""
    rows = _rows(grid)
    base = grid.default.summary.mean
    values = np.full((len(rows), 3), np.nan)
    labels = [["" for _ in range(3)] for _ in rows]
    for row, (factor, _) in enumerate(rows):
        values[row, 1] = 0.0
        labels[row][1] = f"{DEFAULT_SETTING[factor]}\n{base:.3g}"
    for cell in grid.cells:
        setting = cell.value or cell.setting
        row, col = rows.index((cell.factor, cell.match)), _column(setting)
        values[row, col] = math.log2(cell.swd / base) if math.isfinite(cell.swd) and base > 0 else np.nan
        labels[row][col] = f"{setting}\n{'diverged' if cell.outcome == 'diverged' else f'{cell.swd:.3g}'}"
        if cell.outcome in ("collapsed", "worse", "better"):
            labels[row][col] += f"\n{cell.outcome}"
    figure = new_figure(5.8, 0.75 * len(rows) + 1.2)
    axes = figure.subplots()
    from matplotlib import colormaps  # the optional ``report`` extra (new_figure checked it is installed)

    cmap = colormaps["RdYlGn_r"].with_extremes(bad="#bbbbbb")  # grey: diverged or not measured
    image = axes.imshow(np.clip(values, -1, 1), cmap=cmap, vmin=-1, vmax=1, aspect="auto")
    for row, texts in enumerate(labels):
        for col, text in enumerate(texts):
            axes.text(col, row, text, ha="center", va="center", fontsize=7)
    axes.set_xticks(range(3), labels=["lower", "default", "higher / other"])
    axes.set_yticks(range(len(rows)), labels=[_row_label(r, rows) for r in rows])
    axes.set_title(f"{grid.family}: final SWD (colour: log2 vs default)", fontsize=9)
    figure.colorbar(image, ax=axes, shrink=0.8)
    return figure_png(figure)


def calibration_png(same: np.ndarray, different: np.ndarray, threshold: float) -> bytes:
    """Histograms of same-picture and different-picture distances with the threshold."""
    figure = new_figure(6.0, 3.2)
    axes = figure.subplots()
    top = float(max(same.max(), different.max()))
    bins = np.linspace(0.0, top * 1.02, 40)
    axes.hist(same, bins=bins, alpha=0.6, color=colour(2), label="image vs mildly altered copy")
    axes.hist(different, bins=bins, alpha=0.6, color=colour(1), label="two different real images")
    axes.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3g}")
    axes.set_xlabel("perceptual distance (16 px Laplacian pyramid, [0, 1] units)")
    axes.set_ylabel("pairs")
    axes.legend(fontsize=7)
    return figure_png(figure)


def rows_png(rows: Sequence[np.ndarray], count: int = 8) -> bytes:
    """The first ``count`` images of each (N, H, W, 3) array as one row each, same tile size."""
    count = min([count] + [len(r) for r in rows])
    tile = tile_size(list(rows))
    stacked = np.concatenate([upscale(r[:count], tile) for r in rows])
    return png_bytes(make_grid(stacked, columns=count, pad=2))
