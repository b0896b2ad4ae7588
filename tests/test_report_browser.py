"""The HTML report in a real browser (the system's headless Chromium) at a phone and a desktop width:
nothing scrolls sideways but a wide table inside its own box, pictures scale, the pictures and the
summary table are on the first screen, and the page prints dark on light. The screenshots are kept
in the test's folder (or in $LANDIFF_SCREENSHOTS) for a person to look at."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from browser import DESKTOP, PHONE, chromium, measure, screenshot
from landiff.report import build_report
from test_report import html_images, write_run

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A three-run report at 32 px with long names, a path that does not break and every table."""
    root = tmp_path_factory.mktemp("browser")
    runs = [write_run(root / "diffusion-with-a-rather-long-run-name-seed0", "diffusion", 31.2, n=64, res=32),
            write_run(root / "dcgan", "gan", 50.4, n=64, res=32),
            write_run(root / "gan-strong", "gan", 44.0, n=64, res=32)]
    return build_report(runs, root / "report").html


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chromium-profile")


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone-390", "desktop-1366"])
def test_the_page_fits_the_window_and_shows_pictures_and_table_first(report, profile, size):
    found = measure(report, size, profile)
    width, height = size
    assert found["innerWidth"] == width, found["innerWidth"]
    assert found["scrollWidth"] <= width and found["bodyScrollWidth"] <= width, (found["scrollWidth"], width)
    for table in found["tables"]:  # every table stays inside the page; a wider one scrolls in its box
        assert table["box"]["right"] <= width + 0.5 and table["overflowX"] == "auto", table
    wide = [t for t in found["tables"] if t["scrollWidth"] > t["clientWidth"]]
    if width == PHONE[0]:
        assert wide, "at 390 px the metrics table is wider than the screen and must scroll inside its box"
    images = found["images"]
    assert len(images) == len(html_images(report)) and all(img["natural"] > 0 for img in images)
    assert all(img["box"]["right"] <= width + 0.5 for img in images), [i for i in images if i["box"]["right"] > width]
    first_row, table = found["rows"][0], found["firstTable"]
    assert first_row["bottom"] <= height, f"the side-by-side pictures end at {first_row['bottom']} px of {height}"
    assert table["top"] < height, f"the summary table starts at {table['top']} px, below the first screen of {height}"
    row_images = [img for img in images if img["src"] in ("real.png", "samples-1.png", "samples-2.png", "samples-3.png")]
    tops = {round(img["box"]["top"]) for img in row_images}
    assert len(row_images) == 4 and len(tops) == 1, "real and the three runs side by side, in one row"
    assert found["print"] is not None and re.sub(r"\s", "", found["print"]["color"]) in ("rgb(0,0,0)", "#000")


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone-390", "desktop-1366"])
def test_screenshots_at_both_widths(report, profile, size):
    out = screenshot(report, size, report.with_name(f"screenshot-{size[0]}.png"), profile)
    with Image.open(out) as image:
        assert image.size == size
        grey = image.convert("L")
        assert grey.getextrema()[1] - grey.getextrema()[0] > 100, "a blank screenshot"
    keep = os.environ.get("LANDIFF_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(keep) / out.name)


def test_the_browser_is_there():
    """Under ./dev test (CI) Chromium is installed, so the checks above run instead of skipping."""
    assert Path(chromium()).exists()
