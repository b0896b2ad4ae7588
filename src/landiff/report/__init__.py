"""The diffusion-vs-GAN comparison report: a pure function of run directories.

    landiff report runs/demo/diffusion runs/demo/gan --out runs/demo/report

reads what ``landiff train`` and ``landiff compare`` wrote into each run and writes
``report.html`` (self-contained, opens from disk) and ``report.md`` with the same PNGs:

* :mod:`.collect` reads run directories into typed records (:mod:`.records`; missing pieces →
  "not measured");
* :mod:`.build` decides what the report contains, as :mod:`.render` blocks plus PNGs
  (:mod:`.figures`: sample grids with Pillow, plots with matplotlib), and writes the files;
* :mod:`.observations` writes the sentences from the numbers (:mod:`.numbers`: how numbers are
  written and whether a difference exceeds the noise);
* :mod:`.render` holds the block model and renders the same blocks as HTML and as Markdown.
"""

from landiff.report.build import ReportFiles, build_report

__all__ = ["ReportFiles", "build_report"]
