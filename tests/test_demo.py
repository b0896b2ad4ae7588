"""``landiff demo`` end to end within CI time (one minute of budget)."""

from __future__ import annotations

import json

from landiff.cli.main import main
from landiff.workflows.demo import plan


def test_plan_splits_the_budget():
    p = plan(10)
    assert p.train_minutes == 8 and abs(p.diffusion_minutes - 5.6) < 1e-9 and p.n == 256
    short = plan(1)
    assert short.train_minutes == 0.8 and short.n == 64 and len(short.sweep) == 1


def test_demo_one_minute_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no cached Inception weights: FID reported unavailable
    monkeypatch.delenv("LANDIFF_INCEPTION", raising=False)
    assert main(["demo", "--minutes", "1", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "real vs real" in out and "report:" in out
    assert "[4/4] writing the report" in out
    html = (tmp_path / "demo" / "report" / "report.html").read_text()
    assert "Observations" in html
    for run in ("diffusion", "gan"):
        summary = json.loads((tmp_path / "demo" / run / "compare" / "summary.json").read_text())
        assert summary["cost"]["train_seconds"] > 0 and summary["metrics"]["swd"]["value"] > 0
