"""The report as a list of blocks, rendered to HTML (:mod:`.html`) and Markdown (:mod:`.markdown`).

Building the content once and rendering it twice keeps the two files saying the same thing.
Text is plain (renderers escape it); figures name PNG files relative to the report folder.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Heading:
    text: str
    level: int  # 1 = title, 2 = section, 3 = subsection


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table of text cells; every row has ``len(header)`` cells."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Figure:
    """One PNG (``src`` relative to the report folder) with a caption under it."""

    src: str
    alt: str
    caption: str


@dataclass(frozen=True)
class FigureRow:
    """Figures shown side by side at the same size (e.g. real vs diffusion vs GAN grids)."""

    figures: tuple[Figure, ...]


Block = Heading | Paragraph | Bullets | Table | Figure | FigureRow


def figure_sources(blocks: list[Block]) -> list[str]:
    """Every PNG the blocks reference, in order of appearance."""
    sources: list[str] = []
    for block in blocks:
        if isinstance(block, Figure):
            sources.append(block.src)
        elif isinstance(block, FigureRow):
            sources.extend(f.src for f in block.figures)
    return sources
