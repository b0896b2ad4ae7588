"""``landiff report``: built from hand-written run directories (no training, no sampling)."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tempfile
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from browser import DESKTOP, dump_dom
from landiff.cli.main import main
from landiff.errors import UserError
from landiff.metrics.provenance import Provenance
from landiff.report import build_report
from landiff.report.build import (
    Assets,
    cost_section,
    memorization_section,
    metrics_section,
    observations_section,
    runs_section,
)
from landiff.report.collect import load_runs
from landiff.report.numbers import describe, difference
from landiff.report.records import Estimate
from landiff.report.render import render_html, render_markdown

pytest.importorskip("matplotlib")

FID_UNAVAILABLE = "unavailable: FID needs the Inception weights (run landiff weights import-inception FILE)"


def _estimate(value: float, std: float) -> dict:
    return {"value": value, "std": std, "repeats": 3, "spread": "std over 3 seeds"}


def _provenance(root: Path, family: str, seed: int) -> dict:
    """The provenance of compare's samples of the run's checkpoint (written by :func:`write_run`)."""
    sha = hashlib.sha256((root / "checkpoints" / "step-00000040.safetensors").read_bytes()).hexdigest()
    diffusion = family == "diffusion"
    return Provenance(sha, sampler="dpm++" if diffusion else "gan", steps=20 if diffusion else 1,
                      params={"spacing": "logsnr", "eta": 0.0, "clip_denoised": True} if diffusion else {},
                      seed=seed).to_dict()


def _summary(root: Path, family: str, swd: float, swd_std: float, *, n: int, seed: int) -> dict:
    """compare/summary.json as landiff compare writes it (values chosen so ratios are easy to check)."""
    diffusion = family == "diffusion"
    provenance = _provenance(root, family, seed)
    return {
        "run": str(root), "family": family, "preset": "tiny", "step": 40, "images_seen": 160,
        "checkpoint": str(root / "checkpoints" / "step-00000040.safetensors"),
        "checkpoint_sha256": provenance["checkpoint_sha256"], "provenance": provenance,
        "classes": {"protocol": "none", "names": [], "counts": []}, "guidance": 1.0,
        "n": n, "seed": seed, "sampler": "dpm++" if diffusion else "gan", "steps": 20 if diffusion else 1,
        "reference": "synthetic held-out split, seed 0, 8x8",
        "metrics": {"swd": _estimate(swd, swd_std), "swd_32": _estimate(swd * 1.1, swd_std),
                    "swd_16": _estimate(swd * 0.9, swd_std), "fid": {"unavailable": FID_UNAVAILABLE},
                    "kid": {"unavailable": FID_UNAVAILABLE}},
        "noise_floor": {"swd": _estimate(9.2, 0.1)}, "noise_ceiling": {"swd": _estimate(300.0, 4.0)},
        "memorization": {"n": n, "flagged": 0, "ratio_threshold": 0.333, "distance_threshold": 0.02,
                         "min_ratio": 0.85},
        "cost": {"params": 2.41e6 if diffusion else 3.5e6, "images_seen": 160, "train_seconds": 330.5 if diffusion else 110.0,
                 "flops_per_train_image": 1.2e9 if diffusion else 4e8, "flops_per_sample": 6e9 if diffusion else 2e8,
                 "nfe": 20 if diffusion else 1, "sample_seconds_per_image": 0.05 if diffusion else 0.001},
        "sweep": [{"sampler": s, "steps": k, "nfe": k, "swd": swd + 40 / k, "swd_std": 0.9, "n": n,
                   "seconds_per_image": 0.0025 * k} for s in ("ddim", "dpm++") for k in (5, 10, 20)]
        if diffusion else [],
    }


def write_run(root: Path, family: str, swd: float, swd_std: float = 0.8, *, n: int = 16, res: int = 8,
              seed: int = 0, compare: bool = True) -> Path:
    """A run directory as landiff train + landiff compare leave it, with random tiny images."""
    rng = np.random.default_rng(zlib.crc32(f"{family} {swd}".encode()))
    (root / "samples").mkdir(parents=True)
    (root / "checkpoints").mkdir()
    (root / "checkpoints" / "step-00000040.safetensors").write_bytes(f"{family} {swd} {seed}".encode())
    provenance = _provenance(root, family, seed)
    config = {"model": family, "preset": "tiny", "data": "synthetic", "resolution": res,
              "optim": {"batch": 4}, "train_steps": 40}
    (root / "config.json").write_text(json.dumps(config))
    lines = []
    for step in range(1, 9):
        record = {"step": step * 5, "images_seen": step * 20, "lr": 1e-3, "seconds": step * 1.5, "skipped_steps": 0}
        if family == "diffusion":
            record.update(loss=1.0 / step, mse=0.9 / step, vb=0.1 / step, loss_q=[0.1, 0.2, 0.3, None])
        else:
            record.update(loss_d=1.4 - step * 0.05, loss_g=0.7 + step * 0.05, d_real=0.6, d_fake=0.4)
        lines.append(json.dumps(record))
    (root / "stats.jsonl").write_text("\n".join(lines) + "\n")
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / "samples" / "step-40.png")
    if not compare:
        return root
    out = root / "compare"
    out.mkdir()
    images = lambda count: rng.integers(0, 256, (count, res, res, 3), dtype=np.uint8)  # noqa: E731
    np.savez(out / "samples.npz", images=images(n),
             meta=np.array(json.dumps({"seeds": [seed, seed + n - 1], "provenance": provenance})))
    np.savez(out / "real.npz", images=np.random.default_rng(7).integers(0, 256, (n, res, res, 3), dtype=np.uint8))
    np.savez(out / "memorization.npz", samples=images(4), nearest_train=images(4),
             ratio=np.array([0.9, 0.85, 1.1, 0.95]), d_train=np.array([0.05, 0.06, 0.07, 0.05]),
             meta=np.array(json.dumps({"provenance": provenance})))
    summary = _summary(root, family, swd, swd_std, n=n, seed=seed)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "curve.json").write_text(json.dumps([{"step": s, "images_seen": s * 4, "seconds": s * 1.5,
                                                 "swd": swd + 100 / s, "swd_std": 1.0} for s in (10, 20, 40)]))
    if family == "diffusion":
        nll = Provenance(provenance["checkpoint_sha256"]).to_dict()
        (root / "metrics-nll.jsonl").write_text(json.dumps({"metric": "nll_bpd", "n": 16, "bpd": {"mean": 5.1, "se": 0.2},
                                                            "provenance": nll}) + "\n")
    return root


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def html_images(path: Path) -> list[str]:
    parser = _Images()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.sources


def markdown_images(path: Path) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", path.read_text(encoding="utf-8"))


def observations_md(*runs: Path) -> str:
    """The Observations section alone, as Markdown (no plots: fast)."""
    return render_markdown(observations_section(load_runs(list(runs))))


def observation(md: str, prefix: str) -> str:
    """The Observations bullet starting with ``prefix`` (Markdown escapes removed)."""
    text = md.replace("\\", "")
    return next(line for line in text.splitlines() if line.startswith(f"- {prefix}"))


@pytest.fixture()
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return write_run(tmp_path / "run_a", "diffusion", 31.2), write_run(tmp_path / "run_b", "gan", 50.4)


def test_report_writes_html_markdown_and_every_png(pair, tmp_path):
    files = build_report(list(pair), tmp_path / "report")
    sources = html_images(files.html)
    # real + 2 sample grids, 2 previews, losses, curve, sweep, 2 memorisation panels
    assert len(sources) == 10 and len(set(sources)) == 10
    assert sorted(markdown_images(files.markdown)) == sorted(sources)
    for src in sources:
        assert not src.startswith(("http:", "https:", "/")), src
        with Image.open(files.html.parent / src) as image:
            image.load()
            assert image.width > 0
    sizes = {Image.open(files.html.parent / name).size for name in ("real.png", "samples-1.png", "samples-2.png")}
    assert len(sizes) == 1  # same count, layout and tile size side by side
    html, md = files.html.read_text(), files.markdown.read_text()
    assert "http" not in html and "<link" not in html
    assert FID_UNAVAILABLE in html and f"- Note 1 (FID, KID): {FID_UNAVAILABLE}" in md.replace("\\", "")
    assert html.count("unavailable (note 1)") == 4  # FID and KID cells of both runs
    assert "31.2&nbsp;±&nbsp;0.8" in html and "50.4 ± 0.8" in md and "9.2 ± 0.1" in md
    assert "noise floor (real vs real" in html
    assert "5.1 ± 0.2" in md  # latest NLL from metrics-nll.jsonl
    # params 2.41/3.5 M, images 160/160, 330.5/110 s, FLOPs/train image 1.2e9/4e8, NFE 20/1, FLOPs/sample 6e9/2e8
    assert "| ratio run\\_a / run\\_b | diffusion / GAN | 0.689× | 1× | 3× | 3× | 3× | 20× | 30× | 50× |" in md
    assert "seeds 0–15, the same for every run" in html


def test_observations_follow_the_numbers(tmp_path):
    a = write_run(tmp_path / "one" / "run_a", "diffusion", 31.2)
    b = write_run(tmp_path / "one" / "run_b", "gan", 50.4)
    md = observations_md(a, b)
    line = observation(md, "SWD:")
    assert line.startswith('- SWD: the diffusion run "run_a" is better than the GAN run "run_b"'), line
    assert "38.1% lower" in line and "beyond noise" in line  # (50.4−31.2)/50.4; 19.2 > √(0.8²+0.8²)
    assert "diffusion is better on SWD, SWD 32px, SWD 16px" in md

    c = write_run(tmp_path / "two" / "run_a", "diffusion", 50.4)
    d = write_run(tmp_path / "two" / "run_b", "gan", 31.2)
    line = observation(observations_md(c, d), "SWD:")
    assert line.startswith('- SWD: the GAN run "run_b" is better than the diffusion run "run_a"'), line

    e = write_run(tmp_path / "three" / "run_a", "diffusion", 31.2, swd_std=2.0)
    f = write_run(tmp_path / "three" / "run_b", "gan", 31.9, swd_std=2.0)
    line = observation(observations_md(e, f), "SWD:")
    assert "within noise" in line and "nominally better" in line, line


def test_difference_relative_and_noise(pair):
    a, b = load_runs(list(pair))
    est_a, est_b = a.metrics()["swd"], b.metrics()["swd"]
    diff = difference("swd", (b, est_b), (a, est_a), floor=None)
    assert diff.better is a and diff.delta == pytest.approx(19.2)
    assert diff.relative == pytest.approx(19.2 / 50.4) and diff.noise == pytest.approx(0.8 * 2**0.5)
    assert diff.within_noise is False
    # precision: higher is better, so the larger value wins
    assert difference("precision", (a, est_a), (b, est_b), None).better is b
    # a floor spread larger than the combined spread is the noise level
    assert difference("swd", (a, est_a), (b, est_b), Estimate(9.2, 30.0, 3, "")).within_noise is True
    no_spread = difference("swd", (a, Estimate(31.2, None, 1, "")), (b, est_b), None)
    assert no_spread.within_noise is None and "no spread was measured" in describe(no_spread)


def test_one_run_and_three_runs(tmp_path):
    a = write_run(tmp_path / "a", "diffusion", 31.2)
    files = build_report([a], tmp_path / "one")
    md = files.markdown.read_text()
    assert "SWD: only the diffusion run" in md.replace("\\", "")
    assert "| a | diffusion | 31.2 ± 0.8 | 3.39× | learned enough to rank |" in md  # 31.2 / 9.2
    b = write_run(tmp_path / "b", "diffusion", 40.0)
    c = write_run(tmp_path / "c", "gan", 45.0)
    md = observations_md(b, c, a)
    lines = [line for line in md.replace("\\", "").splitlines() if line.startswith("- SWD:")]
    assert len(lines) == 2 and all(line.startswith('- SWD: the diffusion run "a" is better') for line in lines)


def test_missing_pieces_show_not_measured(tmp_path):
    bare = write_run(tmp_path / "bare", "gan", 0.0, compare=False)
    (bare / "stats.jsonl").write_text('{"step": 1, "images_seen": 4, "loss_d": 1.3, "loss_g": 0.7}\n{"step": 2, "ima')
    broken = write_run(tmp_path / "broken", "diffusion", 31.2)
    (broken / "compare" / "samples.npz").write_bytes(b"not a zip file")
    (broken / "compare" / "memorization.npz").unlink()
    summary = json.loads((broken / "compare" / "summary.json").read_text())
    del summary["cost"], summary["sweep"], summary["noise_floor"]
    summary["metrics"]["swd"] = {"value": 31.2, "std": None, "repeats": 1, "spread": ""}
    (broken / "compare" / "summary.json").write_text(json.dumps(summary))
    files = build_report([bare, broken], tmp_path / "report")
    html, md = files.html.read_text(), files.markdown.read_text().replace("\\", "")
    assert "not measured" in html
    assert '"bare" has no compare/summary.json' in md
    assert "stats.jsonl: skipped 1 line(s) that are not JSON" in md
    assert "samples.npz: unreadable" in md
    assert "Not measured (no images): bare, broken." in md
    assert "SWD is measured but not the real-vs-real floor for \"broken\"" in md  # the verdict cannot judge it
    for src in html_images(files.html):
        assert (files.html.parent / src).is_file()
    assert observation(md, "SWD:") == '- SWD: only the diffusion run "broken" measured it (31.2).'


def test_rebuild_is_identical(pair, tmp_path):
    first = build_report(list(pair), tmp_path / "one")
    second = build_report(list(pair), tmp_path / "two")
    assert first.markdown.read_text() == second.markdown.read_text()
    assert first.html.read_text() == second.html.read_text()
    for image in first.images:
        assert image.read_bytes() == (second.html.parent / image.name).read_bytes(), image.name
    build_report(list(pair), tmp_path / "one")  # in place, over the old files
    assert (tmp_path / "one" / "report.md").read_text() == second.markdown.read_text()


def test_cli_prints_path_and_refuses_non_runs(pair, tmp_path, capsys):
    assert main(["report", *map(str, pair), "--out", str(tmp_path / "r")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "r" / "report.html")
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a run directory" in err
    with pytest.raises(UserError, match="is not a directory"):
        build_report([tmp_path / "missing"], tmp_path / "r3")


def test_missing_matplotlib_is_one_clear_error(pair, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import of it now raises ImportError
    with pytest.raises(UserError, match=r"needs matplotlib .*pip install 'landiff\[report\]'"):
        build_report(list(pair), tmp_path / "report")


def test_html_images_load_in_headless_chromium(pair, tmp_path):
    files = build_report(list(pair), tmp_path / "report")
    dom = dump_dom(files.html, DESKTOP, tmp_path / "profile")
    match = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    assert match, f"no image count in the DOM: {dom[-500:]!r}"
    loaded, total = map(int, match.groups())
    assert total == len(html_images(files.html)) == 10 and loaded == total


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
_metric = _json | st.fixed_dictionaries({"value": _json, "std": _json, "repeats": _json, "spread": _json})
_summaries = st.fixed_dictionaries({}, optional={
    "family": st.sampled_from(["diffusion", "gan", "vae"]) | _json, "n": _json, "seed": _json, "reference": _json,
    "metrics": st.dictionaries(st.sampled_from(["swd", "fid", "precision", "other"]), _metric, max_size=4) | _json,
    "noise_floor": st.dictionaries(st.just("swd"), _metric, max_size=1) | _json,
    "memorization": st.fixed_dictionaries({}, optional={k: _json for k in ("n", "flagged", "unavailable")}) | _json,
    "cost": st.fixed_dictionaries({}, optional={k: _json for k in ("params", "train_seconds", "nfe")}) | _json,
    "sweep": st.lists(st.fixed_dictionaries({"sampler": _json, "nfe": _json, "swd": _json, "swd_std": _json,
                                              "n": _json}), max_size=3) | _json,
    "provenance": st.just(Provenance("cd" * 32, sampler="gan", steps=1).to_dict()) | _json,
    "classes": st.fixed_dictionaries({}, optional={"protocol": _json, "names": _json}) | _json,
    "guidance": _json,
})


@settings(max_examples=40, deadline=None)
@given(first=_summaries, second=_summaries)
def test_any_summary_json_gives_a_report_not_a_crash(first, second):
    """Whatever compare/summary.json holds, the text sections build (plots are covered above)."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, summary in (("x", first), ("y", second)):
            (Path(tmp) / name / "compare").mkdir(parents=True)
            (Path(tmp) / name / "compare" / "summary.json").write_text(json.dumps(summary))
        runs = load_runs([Path(tmp) / "x", Path(tmp) / "y"])
        blocks = (observations_section(runs) + runs_section(runs) + metrics_section(runs) + cost_section(runs)
                  + memorization_section(runs, Assets()))
        assert '"x"' in render_markdown(blocks) and "y" in render_html(blocks)


def test_costs_compare_diffusion_with_each_gan_and_show_the_tuning_budget(tmp_path):
    runs = [write_run(tmp_path / name, family, swd) for name, family, swd in
            (("diffusion", "diffusion", 31.2), ("dcgan", "gan", 50.4), ("gan-strong", "gan", 40.0))]
    for run, tried in zip(runs, (10, 1, 8), strict=True):
        path = run / "compare" / "summary.json"
        summary = json.loads(path.read_text())
        summary["cost"]["configurations_tried"] = tried
        path.write_text(json.dumps(summary))
    md = build_report(runs, tmp_path / "report").markdown.read_text().replace("\\", "")
    cost_lines = [line for line in md.splitlines() if line.startswith('- The diffusion run "diffusion" vs')]
    assert len(cost_lines) == 2 and '"dcgan"' in cost_lines[0] and '"gan-strong"' in cost_lines[1]
    assert "10× the configurations tried to choose the recipe (10 vs 1)" in cost_lines[0]
    assert "1.25× the configurations tried to choose the recipe (10 vs 8)" in cost_lines[1]
    assert "configs tried" in md
