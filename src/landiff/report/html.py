"""Renders document blocks as one self-contained HTML page.

No external URLs, fonts or scripts: the page opens from disk with the PNGs beside it (relative
``src``). A tiny inline script records, once the page has loaded, how many ``<img>`` elements decoded
(``document.body.dataset.imagesLoaded = "7/7"``), so a headless browser can check the images.
"""

from __future__ import annotations

from html import escape

from landiff.report.document import Block, Bullets, Figure, FigureRow, Heading, Paragraph, Table

_STYLE = """
body { font-family: sans-serif; max-width: 1400px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #eee; }
figure { margin: 0.8em 0; }
figure img { image-rendering: pixelated; max-width: 100%; }
figcaption { font-size: 0.85em; color: #444; }
.row { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
.row figure { margin: 0; flex: 1 1 300px; max-width: 520px; }
.row figure img { width: 100%; }
"""

# Counts decoded images after the load event (every <img> has either loaded or failed by then).
_SCRIPT = """
window.addEventListener("load", function () {
  var all = Array.prototype.slice.call(document.images);
  var ok = all.filter(function (img) { return img.complete && img.naturalWidth > 0; });
  document.body.dataset.imagesLoaded = ok.length + "/" + all.length;
});
"""


def _figure(figure: Figure) -> str:
    return (f'<figure><img src="{escape(figure.src)}" alt="{escape(figure.alt)}">'
            f"<figcaption>{escape(figure.caption)}</figcaption></figure>")


def _cell(text: str) -> str:
    """Escaped cell text; "31.2 ± 0.8" is kept on one line."""
    return escape(text).replace(" ± ", "&nbsp;±&nbsp;")


def _table(table: Table) -> str:
    head = "".join(f"<th>{escape(cell)}</th>" for cell in table.header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(cell)}</td>" for cell in row) + "</tr>" for row in table.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def block_html(block: Block) -> str:
    """One block as an HTML fragment (all text escaped)."""
    if isinstance(block, Heading):
        return f"<h{block.level}>{escape(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{escape(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{escape(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Figure):
        return _figure(block)
    if isinstance(block, FigureRow):
        return '<div class="row">' + "".join(_figure(f) for f in block.figures) + "</div>"
    raise TypeError(f"unknown block {type(block).__name__}")


def render_html(blocks: list[Block]) -> str:
    """The complete page; the title is the first level-1 heading."""
    title = next((b.text for b in blocks if isinstance(b, Heading) and b.level == 1), "landiff report")
    body = "\n".join(block_html(block) for block in blocks)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{escape(title)}</title>\n'
            f"<style>{_STYLE}</style>\n<script>{_SCRIPT}</script>\n</head>\n<body>\n{body}\n</body>\n</html>\n")
