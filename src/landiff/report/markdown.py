"""Renders document blocks as Markdown (CommonMark + pipe tables), with the same PNGs as the HTML."""

from __future__ import annotations

import re

from landiff.report.document import Block, Bullets, Figure, FigureRow, Heading, Paragraph, Table

_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def escape(text: str) -> str:
    """Backslash-escapes Markdown syntax characters; newlines become spaces (cells stay on one line)."""
    return _SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _image(figure: Figure) -> str:
    return f"![{escape(figure.alt)}]({figure.src})"


def _table(header: tuple[str, ...], rows: tuple[tuple[str, ...], ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def block_markdown(block: Block) -> str:
    """One block as Markdown (all text escaped)."""
    if isinstance(block, Heading):
        return "#" * block.level + " " + escape(block.text)
    if isinstance(block, Paragraph):
        return escape(block.text)
    if isinstance(block, Bullets):
        return "\n".join(f"- {escape(item)}" for item in block.items)
    if isinstance(block, Table):
        return _table(tuple(escape(c) for c in block.header), tuple(tuple(escape(c) for c in r) for r in block.rows))
    if isinstance(block, Figure):
        return f"{_image(block)}\n\n*{escape(block.caption)}*"
    if isinstance(block, FigureRow):
        # A one-row table puts the grids side by side in renderers that show images in cells.
        return _table(tuple(escape(f.caption) for f in block.figures), (tuple(_image(f) for f in block.figures),))
    raise TypeError(f"unknown block {type(block).__name__}")


def render_markdown(blocks: list[Block]) -> str:
    return "\n\n".join(block_markdown(block) for block in blocks) + "\n"
