"""The report as a list of blocks, and its two renderings: one HTML page and one Markdown file.

Building the content once and rendering it twice keeps the two files saying the same thing.
Block text is plain (each renderer escapes it); figures name PNG files relative to the report
folder, and both files show the same PNGs.

The HTML page is self-contained: no external URLs, fonts or scripts, so it opens from disk with the
PNGs beside it (relative ``src``). A tiny inline script records, once the page has loaded, how many
``<img>`` elements decoded (``document.body.dataset.imagesLoaded = "7/7"``), so a headless browser
can check the images. The Markdown is CommonMark with pipe tables.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass


# ------------------------------------------------------------------------------------ the blocks
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


# ------------------------------------------------------------------------------------------ HTML
# Readable from a 390 px phone to a desktop: the page never scrolls sideways (long words and paths
# wrap, pictures scale down, a wide table scrolls inside its own box), and it prints dark on light.
_STYLE = """
*, *::before, *::after { box-sizing: border-box; }
body { font-family: sans-serif; max-width: 1400px; margin: 1.5em auto; padding: 0 1em; line-height: 1.45;
       color: #1a1a1a; background: #fff; }
h1 { font-size: 1.6em; line-height: 1.2; }
p, li, figcaption, h1, h2, h3 { overflow-wrap: anywhere; }
.table { max-width: 100%; overflow-x: auto; margin: 0.8em 0; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #eee; }
figure { margin: 0.8em 0; max-width: 100%; }
figure img { image-rendering: pixelated; max-width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #444; }
.row { display: flex; flex-wrap: wrap; gap: 1.2em; align-items: flex-start; }
.row figure { margin: 0; flex: 1 1 0; min-width: 84px; max-width: 480px; }
.row figure img { width: 100%; }
@media (max-width: 600px) {
  body { margin: 0.6em auto; padding: 0 0.5em; font-size: 15px; }
  h1 { font-size: 1.3em; }
  .row { gap: 0.5em; }
  .row figcaption { font-size: 0.75em; }
  th, td { white-space: nowrap; }
  td:first-child { white-space: normal; min-width: 7em; max-width: 11em; overflow-wrap: anywhere; }
}
@media print {
  body { color: #000; background: #fff; max-width: none; margin: 0; font-size: 10pt; }
  th { background: #ddd; }
  figcaption { color: #000; }
  .table { overflow: visible; }
  figure, tr { break-inside: avoid; }
}
"""

# Counts decoded images after the load event (every <img> has either loaded or failed by then).
_SCRIPT = """
window.addEventListener("load", function () {
  var all = Array.prototype.slice.call(document.images);
  var ok = all.filter(function (img) { return img.complete && img.naturalWidth > 0; });
  document.body.dataset.imagesLoaded = ok.length + "/" + all.length;
});
"""


def _html_figure(figure: Figure) -> str:
    return (f'<figure><img src="{html.escape(figure.src)}" alt="{html.escape(figure.alt)}">'
            f"<figcaption>{html.escape(figure.caption)}</figcaption></figure>")


def _html_cell(text: str) -> str:
    """Escaped cell text; "31.2 ± 0.8" is kept on one line."""
    return html.escape(text).replace(" ± ", "&nbsp;±&nbsp;")


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in table.header)
    body = "".join("<tr>" + "".join(f"<td>{_html_cell(cell)}</td>" for cell in row) + "</tr>" for row in table.rows)
    return f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def block_html(block: Block) -> str:
    """One block as an HTML fragment (all text escaped)."""
    if isinstance(block, Heading):
        return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{html.escape(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, Figure):
        return _html_figure(block)
    if isinstance(block, FigureRow):
        return '<div class="row">' + "".join(_html_figure(f) for f in block.figures) + "</div>"
    raise TypeError(f"unknown block {type(block).__name__}")


def render_html(blocks: list[Block]) -> str:
    """The complete page; the title is the first level-1 heading."""
    title = next((b.text for b in blocks if isinstance(b, Heading) and b.level == 1), "landiff report")
    body = "\n".join(block_html(block) for block in blocks)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n"
            f"<style>{_STYLE}</style>\n<script>{_SCRIPT}</script>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


# -------------------------------------------------------------------------------------- Markdown
_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def escape(text: str) -> str:
    """Backslash-escapes Markdown syntax characters; newlines become spaces (cells stay on one line)."""
    return _SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _markdown_image(figure: Figure) -> str:
    return f"![{escape(figure.alt)}]({figure.src})"


def _markdown_table(header: tuple[str, ...], rows: tuple[tuple[str, ...], ...]) -> str:
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
        return _markdown_table(tuple(escape(c) for c in block.header),
                               tuple(tuple(escape(c) for c in r) for r in block.rows))
    if isinstance(block, Figure):
        return f"{_markdown_image(block)}\n\n*{escape(block.caption)}*"
    if isinstance(block, FigureRow):
        # A one-row table puts the grids side by side in renderers that show images in cells.
        return _markdown_table(tuple(escape(f.caption) for f in block.figures),
                               (tuple(_markdown_image(f) for f in block.figures),))
    raise TypeError(f"unknown block {type(block).__name__}")


def render_markdown(blocks: list[Block]) -> str:
    return "\n\n".join(block_markdown(block) for block in blocks) + "\n"
