"""Every benchmark script runs end to end in its quick configuration and prints a filled table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, *args: str, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _rows(text: str, first_cell: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith(f"| {first_cell}")]


def _number(cell: str) -> float:
    return float(re.match(r"[-\d.]+", cell.replace(",", "")).group())


@pytest.mark.slow  # about 18 s: landiff and two installed anchors trained and timed
def test_bench_train_quick_measures_landiff_and_installed_anchors(tmp_path):
    pytest.importorskip("diffusers")
    out = _run("bench_train.py", "--quick", cwd=tmp_path)
    assert "Machine peaks, same run: conv3x3 bf16" in out
    rows = _rows(out, "tiny@16")
    libraries = {r[2] for r in rows if len(r) == 10}
    assert {"landiff", "diffusers"} <= libraries
    for r in (r for r in rows if len(r) == 10):
        assert _number(r[5]) > 0 and _number(r[7]) > 0 and _number(r[8]) > 0 and _number(r[9]) > 100  # GFLOP, img/s, RSS
    landiff_flops = next(_number(r[5]) for r in rows if len(r) == 10 and r[2] == "landiff")
    diffusers_flops = next(_number(r[5]) for r in rows if len(r) == 10 and r[2] == "diffusers")
    assert 0.6 < diffusers_flops / landiff_flops < 1.6  # widths are matched on FLOPs per image
    assert any(len(r) == 4 and r[3].endswith("x") for r in rows)  # the ratio table


@pytest.mark.slow  # about 18 s: every GPU benchmark section once on the CPU
def test_gpu_bench_dry_path_on_cpu(tmp_path):
    pytest.importorskip("diffusers")
    out = _run("gpu_bench.py", "--device", "cpu", cwd=tmp_path)
    assert "bf16 matmul peak" in out
    (row,) = [r for r in _rows(out, "tiny@16") if len(r) == 8]
    assert row[2] == "eager" and _number(row[4]) > 0 and _number(row[5]) > 0


@pytest.mark.slow  # about 20 s on 2 cores: keeps the default run under 8 minutes (pytest -m slow runs it)
def test_budget_race_quick_prints_every_entrant_with_a_curve(tmp_path):
    pytest.importorskip("diffusers")
    out = _run("budget_race.py", "--quick", "--out", str(tmp_path / "race"), "--entrants", "landiff,dcgan,diffusers",
               cwd=tmp_path)
    for name in ("landiff", "dcgan", "diffusers"):
        (row,) = _rows(out, name + " ")
        swd = _number(row[1])
        assert 0 < swd < 10_000
        assert row[3].count("→") == 2  # two points on the curve
    assert (tmp_path / "race" / "curves.json").is_file()


def test_sampler_sweep_quick_reports_ratio_to_reference(tmp_path):
    out = _run("sampler_sweep.py", "--quick", "--run", str(tmp_path / "run"), cwd=tmp_path)
    rows = [r for r in (line.strip("|").split("|") for line in out.splitlines())
            if r[0].strip().startswith(("dpm++", "ddim", "ddpm", "heun"))]
    assert len(rows) == 6  # the reference and five sweep points
    assert rows[0][3].strip() == "1.00"
    assert all(_number(r[2].strip()) > 0 for r in rows)
    assert [r[1].strip() for r in rows if r[0].strip().startswith("heun")] == ["3"]  # 2 levels: 2·2 − 1 evaluations
    again = _run("sampler_sweep.py", "--quick", "--run", str(tmp_path / "run"), "--points",
                 "ddim:uniform:3,dpm++:logsnr:3:2nd,heun:karras:4:churn=2,dpm++sde:logsnr:3:eta=0.5:bf16,"
                 "heun:karras:4:churn=40:tmin=5:snoise=1,dpm++sde:karras:3:rho=5", cwd=tmp_path)
    labels = [line.split("|")[1].strip() for line in again.splitlines() if line.startswith(("| dpm++", "| ddim", "| heun"))]
    assert labels == ["ddim uniform", "dpm++ logsnr, 2nd-order final step", "heun karras, churn 2",
                      "dpm++sde logsnr, eta 0.5, bf16", "heun karras, churn 40 on σ ∈ [5, 50], S_noise 1",
                      "dpm++sde karras, ρ 5"]


def test_ema_length_sweep_quick_measures_each_length(tmp_path):
    out = _run("ema_length_sweep.py", "--quick", "--lengths", "0.05,0.2", cwd=tmp_path)
    rows = _rows(out, "post-hoc") + _rows(out, "run's EMA")
    assert sorted(r[0].replace(" (best)", "") for r in rows) == ["post-hoc σ_rel 0.05", "post-hoc σ_rel 0.2",
                                                                 "run's EMA (decay 0.999)"]
    assert all(_number(r[1]) > 0 for r in rows)
    assert sum("(best)" in r[0] for r in rows) == 1


def test_augment_small_quick_measures_with_and_without(tmp_path):
    out = _run("augment_small.py", "--quick", "--out", str(tmp_path / "aug"), cwd=tmp_path)
    rows = [r for r in (line.strip("|").split("|") for line in out.splitlines() if line.startswith("| 0"))]
    assert [r[0].strip() for r in rows] == ["0", "0.5"]
    assert rows[0][2].strip() == "1.00" and all(_number(r[1].strip()) > 0 for r in rows)
    assert all(_number(r[3].strip()) > 0 and int(r[4]) >= 0 for r in rows)  # memorisation ratio, flagged copies


@pytest.mark.slow  # about 17 s on 2 cores (pytest -m slow runs it)
def test_recipe_screen_quick_measures_each_variant(tmp_path):
    out = _run("recipe_screen.py", "--quick", "--variants", "tiny,edm,min-snr+log-normal", "--out", str(tmp_path / "r"),
               cwd=tmp_path)
    rows = [r for r in (line.strip("|").split("|") for line in out.splitlines()) if r[0].strip() in
            ("tiny", "edm", "min-snr+log-normal")]
    assert [r[0].strip() for r in rows] == ["tiny", "edm", "min-snr+log-normal"]
    assert all(_number(r[2].strip()) > 0 and r[3].strip() in ("0.05", "0.1", "0.2") for r in rows)
    assert "(3 configurations)" in out


@pytest.mark.slow  # about 47 s on 2 cores: keeps the default run under 8 minutes (pytest -m slow runs it)
def test_recipe_confirm_quick_measures_every_entrant_and_seed(tmp_path):
    out = _run("recipe_confirm.py", "--quick", "--seeds", "0,1", "--minutes", "3", "--gans", "dcgan,gan-strong",
               "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert "the budget race's 3 minutes" in out
    names = ("old", "old+ema", "new", "dcgan", "gan-strong")
    rows = {r[0]: r for r in (_rows(out, n + " |")[0] for n in names)}
    assert set(rows) == set(names)
    for row in rows.values():
        assert all(_number(cell) > 0 for cell in row[2:4])  # one SWD per seed
        assert "±" in row[4] and _number(row[5]) > 0
    assert rows["dcgan"][5] == "1.00"  # the first of --gans is the ratio's base
    from landiff.runs.config import recipe

    assert f"post-hoc EMA σ_rel {recipe('tiny').ema_length:g}" in rows["new"][1]  # the preset's own length
    curve = _run("recipe_confirm.py", "--quick", "--long", "2", "--seeds", "0", "--draws", "2", "--out",
                 str(tmp_path / "r"), cwd=tmp_path)
    points = [r for r in (line.strip("|").split("|") for line in curve.splitlines()) if r[0].strip() in ("10", "20")]
    assert [int(p[1]) for p in points] == [2, 4] and all(_number(c.strip()) > 0 for p in points for c in p[2:5])
    assert all("±" in c for p in points for c in p[2:5])  # mean ± s.d. over the two draws
    final = _run("recipe_confirm.py", "--quick", "--long", "2", "--seeds", "0", "--final-only", "--out",
                 str(tmp_path / "r"), cwd=tmp_path)  # the same run, measured again at its end only
    assert [r[0].strip() for r in (line.strip("|").split("|") for line in final.splitlines())
            if r[0].strip() in ("10", "20")] == ["20"]


def test_gan_screen_quick_measures_each_variant_with_and_without_ema(tmp_path):
    out = _run("gan_screen.py", "--quick", "--variants", "dcgan,sn-hinge-da,r1-da", "--out", str(tmp_path / "g"),
               cwd=tmp_path)
    rows = [r for r in (line.strip("|").split("|") for line in out.splitlines())
            if r[0].strip() in ("dcgan", "sn-hinge-da", "r1-da")]
    assert [r[0].strip() for r in rows] == ["dcgan", "sn-hinge-da", "r1-da"]
    for row in rows:
        raw, ema, best = _number(row[2].strip()), _number(row[3].strip()), _number(row[4].strip())
        assert raw > 0 and ema > 0 and best == min(raw, ema) and _number(row[5].strip()) > 0
    assert "(3 configurations)" in out


def test_draw_spread_quick_measures_real_and_run_draws(tmp_path):
    out = _run("draw_spread.py", "--quick", cwd=tmp_path)
    rows = _rows(out, "real vs real") + _rows(out, "quick-gan")
    assert len(rows) == 2
    for cells in rows:
        draws = cells[1:5]
        assert len(draws) == 4 and all(_number(c) > 0 for c in draws)
        assert "±" in cells[5] and _number(cells[5]) == pytest.approx(np.mean([_number(c) for c in draws]), abs=0.06)


@pytest.mark.slow  # about 40 s: three trainings and a four-point sweep; the sweep itself is in test_guidance_sweep.py
def test_guidance_bench_quick_fills_both_tables(tmp_path):
    out = _run("guidance_bench.py", "--quick", "--out", str(tmp_path / "g"), cwd=tmp_path)
    classifiers = _rows(out, "noisy") + _rows(out, "clean")
    assert len(classifiers) == 2 and all(_number(cells[1]) == 2 for cells in classifiers)  # both trained 2 steps
    points = _rows(out, "unguided") + _rows(out, "classifier guidance s = 2") + _rows(out, "classifier-free w = ")
    assert len(points) == 4  # unguided, s = 2, w = 0 and w = 2
    for cells in points:
        assert 0 <= _number(cells[1]) <= 1 and _number(cells[2]) > 0 and _number(cells[3]) > 0
    assert _rows(out, "real held-out images")


@pytest.mark.slow  # about 10 s
def test_class_shares_quick_gives_every_class_a_share_per_draw(tmp_path):
    out = _run("class_shares.py", "--quick", "--out", str(tmp_path / "c"), cwd=tmp_path)
    rows = _rows(out, "real held-out images") + _rows(out, "quick-run")
    assert len(rows) == 2
    for cells in rows:
        assert len(cells) == 5 and sum(_number(c) for c in cells[1:]) == pytest.approx(100, abs=0.3)


def test_learned_threshold_quick_places_noise_at_one_and_blur_below_the_line(tmp_path):
    from landiff.report.verdict import NOT_LEARNED_POSITION

    out = _run("learned_threshold.py", "--quick", cwd=tmp_path)
    positions = {cells[0]: _number(cells[4]) for cells in _rows(out, "") if len(cells) == 5 and cells[4][:1].isdigit()}
    assert positions["uniform noise"] == pytest.approx(1.0) and positions["real vs real (the floor)"] == 0
    assert positions["grey noise"] > NOT_LEARNED_POSITION and positions["mean colour"] > NOT_LEARNED_POSITION
    assert positions["4 px blur"] < NOT_LEARNED_POSITION and positions["8 px blur"] < positions["4 px blur"]
