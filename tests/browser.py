"""Opening a report in the system's headless Chromium: measuring its layout and taking screenshots.

The tests use it through :func:`measure` and :func:`screenshot`; it also runs on its own, to look at any
report at a phone and a desktop width:

    python tests/browser.py runs/demo/report/report.html --out shots/    # shots/report-390.png, -1366.png

Chromium is driven through its command line (``--dump-dom`` after a measuring script has written its
findings into the DOM, ``--screenshot``), so nothing beyond the browser is needed. Headless Chromium
will not make a window narrower than 500 px, so the report is opened in an ``<iframe>`` of exactly the
width asked for: the frame is the page's viewport (its media queries, ``innerWidth`` and layout are
those of a 390 px screen), and the measuring script inside it posts what it found to the outer page.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from PIL import Image

PHONE, DESKTOP = (390, 844), (1366, 900)

# Runs once every image has loaded or failed; writes what the layout test checks into the DOM as JSON.
MEASURE = """
window.addEventListener("load", function () {
  var box = function (el) { var r = el.getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top,
    bottom: r.bottom, width: r.width}; };
  var printRule = null;
  Array.prototype.forEach.call(document.styleSheets, function (sheet) {
    Array.prototype.forEach.call(sheet.cssRules, function (rule) {
      if (rule.media && rule.media.mediaText === "print") {
        Array.prototype.forEach.call(rule.cssRules, function (inner) {
          if (inner.selectorText === "body") { printRule = {color: inner.style.color, background: inner.style.background}; }
        });
      }
    });
  });
  var found = {
    innerWidth: window.innerWidth, innerHeight: window.innerHeight,
    scrollWidth: document.documentElement.scrollWidth, bodyScrollWidth: document.body.scrollWidth,
    tables: Array.prototype.map.call(document.querySelectorAll(".table"), function (el) {
      return {box: box(el), clientWidth: el.clientWidth, scrollWidth: el.scrollWidth,
              overflowX: getComputedStyle(el).overflowX}; }),
    images: Array.prototype.map.call(document.images, function (img) {
      return {box: box(img), natural: img.naturalWidth, src: img.getAttribute("src")}; }),
    rows: Array.prototype.map.call(document.querySelectorAll(".row"), box),
    firstTable: document.querySelector(".table") ? box(document.querySelector(".table")) : null,
    print: printRule
  };
  parent.postMessage(JSON.stringify(found), "*");
});
"""

# The outer page: one frame of the asked size at the top left; what the frame posts goes into the DOM.
FRAME = """<!DOCTYPE html><html><head><meta charset="utf-8"><style>html, body {{ margin: 0; }}
iframe {{ border: 0; display: block; }}</style></head><body>
<iframe src="{src}" width="{width}" height="{height}"></iframe>
<script>window.addEventListener("message", function (e) {{ document.body.setAttribute("data-measure", e.data); }});</script>
</body></html>
"""
MIN_WINDOW = 500  # headless Chromium's narrowest window


def chromium() -> str:
    """The browser's path; fails (not skips) when it is missing, unless LANDIFF_SKIP_BROWSER=1 says so."""
    found = next((p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
                  if p and Path(p).exists()), None)
    if found is None:
        if os.environ.get("LANDIFF_SKIP_BROWSER") == "1":
            pytest.skip("LANDIFF_SKIP_BROWSER=1: the headless-browser checks are skipped")
        pytest.fail("chromium is not installed: ./dev test installs it (apt-get install -y chromium), "
                    "or set LANDIFF_SKIP_BROWSER=1 to skip the browser checks")
    return found


def _run(args: list[str], page: Path, size: tuple[int, int], profile: Path) -> subprocess.CompletedProcess:
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", "--force-device-scale-factor=1", f"--user-data-dir={profile}",
               f"--window-size={max(size[0], MIN_WINDOW)},{size[1]}", "--virtual-time-budget=5000", *args,
               page.resolve().as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=90)


def dump_dom(page: Path, size: tuple[int, int], profile: Path) -> str:
    """The DOM of ``page`` after load, as the browser serialises it (the window is at least 500 px wide)."""
    return _run(["--dump-dom"], page, size, profile).stdout


def _framed(report: Path, size: tuple[int, int], script: str = "") -> tuple[Path, Path]:
    """Beside ``report``: a copy with ``script`` added, and an outer page showing it in a frame of ``size``."""
    copy = report.with_name(f".framed-{size[0]}.html")
    copy.write_text(report.read_text(encoding="utf-8").replace("</body>", f"<script>{script}</script></body>"),
                    encoding="utf-8")
    outer = report.with_name(f".frame-{size[0]}.html")
    outer.write_text(FRAME.format(src=copy.name, width=size[0], height=size[1]), encoding="utf-8")
    return copy, outer


def measure(report: Path, size: tuple[int, int], profile: Path) -> dict:
    """Layout facts of ``report`` in a viewport of ``size`` (width, height) px (the report itself is not
    changed: a copy with the measuring script is framed)."""
    copy, outer = _framed(report, size, MEASURE)
    try:
        dom = dump_dom(outer, size, profile)
    finally:
        copy.unlink()
        outer.unlink()
    match = re.search(r'data-measure="([^"]*)"', dom)
    assert match, f"the measuring script left nothing in the DOM at {size}: {dom[-300:]!r}"
    return json.loads(html.unescape(match.group(1)))


def screenshot(report: Path, size: tuple[int, int], out: Path, profile: Path) -> Path:
    """A PNG of the first ``size`` pixels of the page, as a viewport of that size shows it."""
    copy, outer = _framed(report, size)
    try:
        result = _run([f"--screenshot={out.resolve()}"], outer, size, profile)
    finally:
        copy.unlink()
        outer.unlink()
    assert out.is_file(), f"no screenshot at {size} (chromium rc {result.returncode}): {result.stderr[-300:]}"
    with Image.open(out) as image:
        cropped = image.crop((0, 0, size[0], size[1]))
    cropped.save(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Screenshots of a landiff report at a phone and a desktop width.")
    parser.add_argument("report", type=Path)
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--height", type=int, default=0, help="window height (default: one screen)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        for width, height in (PHONE, DESKTOP):
            path = screenshot(args.report, (width, args.height or height), args.out / f"report-{width}.png", Path(profile))
            print(path)


if __name__ == "__main__":
    main()
