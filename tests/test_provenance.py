"""Provenance of derived records: the key, what carries it, the report's check, --restart, class protocol."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from landiff.cli.main import main
from landiff.report.build import metrics_section, observations_section
from landiff.report.collect import load_runs
from landiff.report.render import render_markdown
from landiff.runs import run_dir as run_dir_module
from landiff.runs.checkpoint import latest_checkpoint
from landiff.runs.load import load_run
from landiff.train import train
from tiny_runs import tiny_diffusion, tiny_gan

pytest.importorskip("matplotlib")

QUIET = {"log": lambda _: None}
COMPARE = ["--n", "8", "--sweep", "", "--repeats", "2"]


def _tiny_diffusion(**changes):
    return tiny_diffusion(num_steps=20, **changes)



@pytest.fixture(autouse=True)
def _no_inception(tmp_path, monkeypatch):
    monkeypatch.delenv("LANDIFF_INCEPTION", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no cached Inception weights: FID is "unavailable"


def _report_md(*runs: Path) -> str:
    loaded = load_runs(list(runs))
    return render_markdown(observations_section(loaded) + metrics_section(loaded)).replace("\\", "")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_key_changes_with_every_component_and_is_stable():
    from landiff.metrics.provenance import Provenance, provenance_for

    base = Provenance("a" * 64, sampler="ddim", steps=10, params={"eta": 0.0, "spacing": "uniform"},
                      precision="fp32", class_protocol="balanced", classes=("day", "night"), seed=0)
    same = Provenance("a" * 64, sampler="ddim", steps=10, params={"spacing": "uniform", "eta": 0.0},
                      precision="fp32", class_protocol="balanced", classes=["day", "night"], seed=0)
    assert base == same and base.digest() == same.digest() and len(base.digest()) == 16
    assert Provenance.from_dict(json.loads(json.dumps(base.to_dict()))) == base
    assert base.to_dict()["digest"] == base.digest()
    changes = {
        "checkpoint_sha256": "b" * 64, "source": "external", "weights": "raw", "sampler": "dpm++", "steps": 20,
        "params": {"eta": 0.5, "spacing": "uniform"}, "precision": "fp32+tf32", "guidance": "cfg",
        "guidance_scale": 2.0, "guidance_model_sha256": "c" * 64, "class_protocol": "fixed", "classes": ("day",),
        "seed": 1, "classifier_scale": 2.0,
    }
    assert set(changes) == {f.name for f in dataclasses.fields(Provenance)}
    digests = {name: dataclasses.replace(base, **{name: value}).digest() for name, value in changes.items()}
    assert base.digest() not in digests.values() and len(set(digests.values())) == len(changes)
    assert Provenance.from_dict({"no": "sha"}) is None and Provenance.from_dict(None) is None

    def run(*, gan=False, ema=True, classes=0):
        config = SimpleNamespace(gan=SimpleNamespace(ema=ema))
        return SimpleNamespace(diffusion=None if gan else object(), config=config, checkpoint_sha256="d" * 64,
                               num_classes=classes, classes=["day", "sunset", "night"][:classes], ema_length=None)

    drawn = dict(sampler="dpm++", steps=20, seed=0)
    conditional = provenance_for(run(classes=3), labels=[0, 1, 2, 0], **drawn)
    assert conditional.class_protocol == "balanced" and conditional.classes == ("day", "sunset", "night")
    assert provenance_for(run(classes=3), labels=[1, 1], **drawn).classes == ("sunset",)
    assert provenance_for(run(classes=3), labels=None, **drawn).class_protocol == "null"
    guided = provenance_for(run(classes=3), labels=[0, 1, 2], guidance_scale=3.0, **drawn)
    assert (guided.guidance, guided.guidance_scale) == ("cfg", 3.0) and guided.digest() != conditional.digest()
    assert provenance_for(run(), use_ema=False, **drawn).weights == "raw"
    gan = provenance_for(run(gan=True, ema=False), **drawn)  # a GAN without EMA samples its raw generator
    assert (gan.weights, gan.sampler, gan.steps) == ("raw", "gan", 1)
    nll = provenance_for(run())
    assert nll.sampler is None and nll.seed is None and nll.checkpoint_sha256 == "d" * 64


def test_report_ignores_records_of_an_older_checkpoint(tmp_path):
    run = tmp_path / "run"
    train(_tiny_diffusion(train_steps=2), run, **QUIET)
    assert main(["compare", str(run), *COMPARE]) == 0
    assert main(["eval", "nll", "--run", str(run), "--n", "2", "--batch", "2", "--device", "cpu"]) == 0
    old = _sha(latest_checkpoint(run / "checkpoints"))
    summary = json.loads((run / "compare" / "summary.json").read_text())
    assert summary["provenance"]["checkpoint_sha256"] == old
    for path in run.glob("metrics-*.jsonl"):
        for line in path.read_text().splitlines():
            assert json.loads(line)["provenance"]["checkpoint_sha256"] == old, path.name
    assert load_runs([run])[0].nll is not None and "ignored" not in _report_md(run)

    train(_tiny_diffusion(train_steps=3), run, **QUIET)  # resumes: a newer checkpoint of the same run
    loaded = load_runs([run])[0]
    assert loaded.summary is None and loaded.samples is None and loaded.nll is None and loaded.metrics() == {}
    md = _report_md(run)
    line = next(line for line in md.splitlines() if "ignored" in line)
    assert "compare/summary.json and 3 metric records from another checkpoint" in line, line
    assert old[:12] in line and "re-run landiff compare" in line
    assert f'"{run.name}" has no compare/summary.json' not in md  # the ignored line says why instead

    assert main(["compare", str(run), *COMPARE]) == 0  # measuring the new checkpoint replaces the numbers
    loaded = load_runs([run])[0]
    assert loaded.summary is not None and loaded.summary.step == 3 and loaded.samples is not None
    assert "older evaluations" in loaded.ignored and "re-run" not in loaded.ignored

    (run / "metrics-swd.jsonl").write_text(json.dumps({"metric": "swd", "estimates": {}}) + "\n")  # older landiff
    assert "1 metric record without provenance" in load_runs([run])[0].ignored


def test_restart_moves_evaluations_aside_and_the_report_forgets_them(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    train(_tiny_diffusion(train_steps=2), run, **QUIET)
    assert main(["compare", str(run), *COMPARE]) == 0
    assert main(["sample", "--run", str(run), "--n", "2", "--steps", "2", "--device", "cpu"]) == 0
    (run / "memorization-pairs.png").write_bytes(b"png")
    old_swd = json.loads((run / "compare" / "summary.json").read_text())["metrics"]["swd"]["value"]
    before = sorted(p.name for p in run.iterdir() if p.name != ".lock")
    assert {"compare", "metrics-swd.jsonl", "metrics-memorization.jsonl", "samples"} <= set(before)

    train(_tiny_diffusion(train_steps=2, seed=3), run, restart=True, **QUIET)
    previous = list(run.glob("previous-*"))
    assert len(previous) == 1
    assert sorted(p.name for p in previous[0].iterdir()) == before
    assert not (run / "compare").exists() and not list(run.glob("metrics-*.jsonl"))
    assert not (run / "memorization-pairs.png").exists() and not list(run.glob("samples/*/samples.npz"))
    md = _report_md(run)
    assert f"{old_swd:.3g}" not in md and "has no compare/summary.json" in md

    # two restarts within one second get a folder each
    monkeypatch.setattr(run_dir_module, "time", SimpleNamespace(strftime=lambda _: "20260101-000000"))
    (run / "compare").mkdir()
    train(_tiny_diffusion(train_steps=1, seed=4), run, restart=True, **QUIET)
    train(_tiny_diffusion(train_steps=1, seed=5), run, restart=True, **QUIET)
    assert sorted(p.name for p in run.glob("previous-20260101*")) == ["previous-20260101-000000",
                                                                  "previous-20260101-000000-2"]
    assert (run / "previous-20260101-000000" / "compare").is_dir() and not (run / "compare").exists()


def test_samples_carry_provenance_into_eval(tmp_path, capsys):
    run = tmp_path / "run"
    train(_tiny_diffusion(train_steps=2), run, **QUIET)
    assert main(["sample", "--run", str(run), "--n", "4", "--steps", "2", "--eta", "0.5", "--sampler", "ddim",
                 "--device", "cpu"]) == 0
    with np.load(run / "samples" / "ddim-2" / "samples.npz") as data:
        meta = json.loads(str(data["meta"]))
    assert "provenance" in meta, sorted(meta)
    from landiff.metrics.provenance import Provenance

    provenance = Provenance.from_dict(meta["provenance"])
    assert provenance.checkpoint_sha256 == _sha(latest_checkpoint(run / "checkpoints"))
    length = load_run(run).config.ema_length  # the tiny recipe samples its post-hoc EMA
    assert length > 0
    assert (provenance.sampler, provenance.steps, provenance.params["eta"], provenance.weights) == (
        "ddim", 2, 0.5, f"ema-{length:g}")
    assert main(["eval", "swd", "--run", str(run), "--n", "4", "--repeats", "2"]) == 0
    record = json.loads((run / "metrics-swd.jsonl").read_text().splitlines()[-1])
    assert record["provenance"] == meta["provenance"]

    external = tmp_path / "external.npz"
    np.savez(external, images=np.zeros((4, 32, 32, 3), np.uint8))
    assert main(["eval", "swd", "--run", str(run), "--samples", str(external), "--n", "4", "--repeats", "2"]) == 0
    record = json.loads((run / "metrics-swd.jsonl").read_text().splitlines()[-1])
    assert record["provenance"]["source"] == "external"
    assert record["provenance"]["checkpoint_sha256"] == _sha(external)
    assert "1 metric record computed on sample files landiff did not draw" in _report_md(run)


@pytest.mark.parametrize("native", [True, False])
def test_sampling_precision_auto_follows_the_hardware_and_is_in_the_key(tmp_path, capsys, monkeypatch, native):
    """`sample` and `compare` default to bf16 autocast exactly where the device has native bf16, and say so."""
    import landiff.samplers.denoiser as denoiser_module
    from landiff.generate import generate

    monkeypatch.setattr(denoiser_module, "native_bf16", lambda device: native)
    run = tmp_path / "run"
    train(_tiny_diffusion(train_steps=2), run, **QUIET)
    assert main(["sample", "--run", str(run), "--n", "2", "--steps", "3", "--device", "cpu", "--out", str(tmp_path / "a")]) == 0
    with np.load(tmp_path / "a" / "samples.npz") as data:
        meta = json.loads(str(data["meta"]))
    assert meta["precision"] == ("bf16" if native else "fp32")
    assert meta["provenance"]["precision"] == ("bf16-autocast" if native else "fp32")
    loaded = load_run(run)
    auto, fp32 = generate(loaded, [0, 1], steps=3), generate(loaded, [0, 1], steps=3, precision="fp32")
    assert (auto.provenance.digest() == fp32.provenance.digest()) == (not native)
    assert np.array_equal(auto.images, fp32.images) or native  # fp32 either way when the hardware has no bf16
    capsys.readouterr()


def test_compare_class_conditional_runs_with_balanced_labels(tmp_path, capsys):
    from landiff.generate import generate
    from landiff.runs.load import load_run

    gan, diffusion = tmp_path / "gan", tmp_path / "diffusion"
    train(tiny_gan(train_steps=2, class_cond=True), gan, **QUIET)
    train(_tiny_diffusion(train_steps=2, class_cond=True), diffusion, **QUIET)
    assert main(["compare", str(gan), str(diffusion), *COMPARE, "--steps", "2"]) == 0
    g, d = (json.loads((r / "compare" / "summary.json").read_text()) for r in (gan, diffusion))
    names = ["day", "sunset", "night", "snow"]
    for summary in (g, d):
        assert summary["classes"]["protocol"] == "balanced" and summary["classes"]["names"] == names
        assert summary["classes"]["counts"] == [2, 2, 2, 2]
        assert summary["provenance"]["class_protocol"] == "balanced" and summary["provenance"]["classes"] == names
        assert (summary["guidance"], summary["provenance"]["guidance"]) == (1.0, "none")  # plain conditional
    md = _report_md(gan, diffusion)
    assert md.count("classes balanced over day, sunset, night, snow") == 2 and "ignored" not in md

    # the labels reach the network: image k gets class k mod 4, never the null label 4
    compared = np.load(diffusion / "compare" / "samples.npz")["images"]
    loaded = load_run(diffusion, device="cpu")
    seen: list[list[int]] = []
    loaded.ema_model.class_emb.register_forward_hook(lambda _m, args, _out: seen.append(args[0].tolist()))
    assert np.array_equal(compared, generate(loaded, list(range(8)), steps=2).images)  # compare's defaults are generate's
    assert seen and all(labels == [0, 1, 2, 3, 0, 1, 2, 3] for labels in seen)

    # the guidance scale is a recorded option; it does not apply to the GAN
    assert main(["compare", str(gan), str(diffusion), *COMPARE, "--steps", "2", "--guidance", "2"]) == 0
    assert "--guidance 2 does not apply" in capsys.readouterr().out
    g, d = (json.loads((r / "compare" / "summary.json").read_text()) for r in (gan, diffusion))
    assert (g["guidance"], g["provenance"]["guidance"]) == (1.0, "none")
    assert (d["guidance"], d["provenance"]["guidance"], d["provenance"]["guidance_scale"]) == (2.0, "cfg", 2.0)
    assert "guidance scale 2" in _report_md(gan, diffusion)
