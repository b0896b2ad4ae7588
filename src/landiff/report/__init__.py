"""The diffusion-vs-GAN comparison report: a pure function of run directories.

    landiff report runs/demo/diffusion runs/demo/gan --out runs/demo/report

reads what ``landiff train`` and ``landiff compare`` wrote into each run and writes
``report.html`` (self-contained, opens from disk) and ``report.md`` with the same PNGs:

* :mod:`.collect` reads run directories into typed records (missing pieces → "not measured");
* :mod:`.sections` builds the content as :mod:`.document` blocks and the PNGs (:mod:`.images`
  for sample grids, :mod:`.plots` for matplotlib figures);
* :mod:`.observations` writes the sentences from the numbers (:mod:`.differences`: noise test);
* :mod:`.html` and :mod:`.markdown` render the same blocks; :mod:`.build` writes the files.
"""

from landiff.report.build import ReportFiles, build_report

__all__ = ["ReportFiles", "build_report"]
