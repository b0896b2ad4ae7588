"""The class metrics, the guidance sweep of ``landiff compare --clean-classifier`` and its report section."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from landiff.cli.main import main
from landiff.errors import UserError
from landiff.metrics.class_metrics import (
    CleanClassifier,
    class_consistency,
    class_subsets,
    clean_classifier,
    evaluate_classes,
    per_class_swd,
    prepare_reference,
    real_accuracy,
)
from landiff.metrics.intervals import wilson
from landiff.metrics.io import LabelledImages
from landiff.metrics.swd import sliced_wasserstein
from landiff.report import build_report
from landiff.report.collect import load_runs
from landiff.report.guidance import guidance_section
from landiff.train import recipe, train
from landiff.workflows.guidance_sweep import parse_scales, sweep_points
from tiny_runs import tiny_diffusion, tiny_gan

pytestmark = pytest.mark.usefixtures("one_thread")

COLOURS = ("red", "green", "blue")


class MeanColour(torch.nn.Module):
    """A hand-made classifier: the logits are the mean of each colour channel, so a solid red image is 'red'."""

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        assert torch.all(sigma == 0) and x.min() >= -1 and x.max() <= 1  # clean images, scaled to [-1, 1]
        return x.mean(dim=(2, 3))


def solid(names: list[str], size: int = 16) -> np.ndarray:
    images = np.zeros((len(names), size, size, 3), dtype=np.uint8)
    for k, name in enumerate(names):
        images[k, ..., COLOURS.index(name)] = 255
    return images


def test_class_consistency_of_a_classifier_with_known_outputs_and_its_wilson_interval():
    judge = CleanClassifier(MeanColour(), COLOURS, "mean colour")
    drawn = ["red", "green", "green", "blue", "blue", "red", "green", "red"]  # what the images show
    intended = ["red", "red", "green", "blue", "blue", "blue", "green", "red"]  # what they were drawn for
    result = class_consistency(judge, solid(drawn), np.array([COLOURS.index(c) for c in intended]), COLOURS)
    assert (result.overall.k, result.overall.n) == (6, 8)
    assert {c: (p.k, p.n) for c, p in result.per_class.items()} == {"red": (2, 3), "green": (2, 2), "blue": (2, 3)}
    # Wilson by hand for 6 of 8 at z = 1.96 (z² = 3.8416): centre (0.75 + 3.8416/16) / (1 + 3.8416/8) = 0.99010 / 1.4802
    # = 0.66890, half 1.96·√(0.75·0.25/8 + 3.8416/256) / 1.4802 = 1.96·√0.038444 / 1.4802 = 0.25963.
    assert result.overall.low == pytest.approx(0.66890 - 0.25963, abs=1e-4)
    assert result.overall.high == pytest.approx(0.66890 + 0.25963, abs=1e-4)
    three_of_four = wilson(3, 4)  # the module docstring's example, also by hand
    assert (three_of_four.low, three_of_four.high) == pytest.approx((0.30064, 0.95441), abs=1e-4)
    assert result.to_dict()["per_class"]["green"]["value"] == 1.0
    # the ceiling: real images are judged against their true labels
    real = LabelledImages(solid(["blue", "red", "red", "green"]), np.array([2, 0, 1, 1]), COLOURS, "hand-made")
    ceiling = real_accuracy(judge, real, COLOURS)
    assert (ceiling.overall.k, ceiling.overall.n) == (3, 4) and ceiling.per_class["red"].n == 1


def _classifier_run(noise: str, classes: list[str]) -> SimpleNamespace:
    return SimpleNamespace(is_classifier=True, config=SimpleNamespace(classifier=SimpleNamespace(noise=noise)),
                           classes=classes, checkpoint=Path("runs/clf/checkpoints/step-1.safetensors"),
                           state=SimpleNamespace(step=1), checkpoint_sha256="ab" * 32, ema_model=MeanColour())


def test_the_clean_classifier_must_be_clean_and_know_the_models_classes():
    assert clean_classifier(_classifier_run("none", ["blue", "red", "green"]), COLOURS).classes == ("blue", "red", "green")
    with pytest.raises(UserError, match=r"--clean-classifier runs/clf is a noisy classifier \(noise 'schedule'\)"):
        clean_classifier(_classifier_run("schedule", list(COLOURS)), COLOURS)
    with pytest.raises(UserError, match="knows the classes red, green but the model's are red, green, blue"):
        clean_classifier(_classifier_run("none", ["red", "green"]), COLOURS)
    with pytest.raises(UserError, match="is not a classifier run"):
        clean_classifier(SimpleNamespace(is_classifier=False, checkpoint=Path("runs/d/checkpoints/x")), COLOURS)


def test_per_class_swd_is_swd_on_the_class_subsets_and_real_images_score_as_real():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (24, 16, 16, 3), dtype=np.uint8)
    labels = np.arange(24) % 3
    real_images = rng.integers(0, 256, (48, 16, 16, 3), dtype=np.uint8)
    real = LabelledImages(real_images, np.arange(48) % 3, COLOURS, "random")
    result = per_class_swd(class_subsets(images, labels, COLOURS), class_subsets(real.images, real.labels, COLOURS),
                           seed=3, repeats=2)
    for k, name in enumerate(COLOURS):
        expected = sliced_wasserstein(images[labels == k], real_images[real.labels == k], seed=3, repeats=2)
        assert result[name].mean == expected.mean and result[name].n == 8
    counts = {name: 8 for name in COLOURS}
    reference = prepare_reference(real, counts, classifier=None, extractor=None, seed=3)
    metrics = evaluate_classes(images, labels, reference, classifier=None, extractor=None, seed=3)
    assert metrics.class_swd_mean == pytest.approx(np.mean([sliced_wasserstein(images[labels == k], real.of_class(c)[:8],
                                                                               seed=3).mean for k, c in enumerate(COLOURS)]))
    assert all(r is not None and r.n == 8 for r in reference.floor.values())  # 16 real per class: a floor at n = 8
    # the reference images themselves: SWD exactly 0 (shared patches and directions), diversity ratio exactly 1
    again = evaluate_classes(reference.balanced, np.repeat(np.arange(3), 8), reference, classifier=None, extractor=None,
                             seed=3)
    assert again.class_swd_mean == 0.0 and again.mean_diversity_ratio == 1.0 and again.swd.mean == 0.0
    assert again.to_dict()["precision"] == {"unavailable": "unavailable: needs --inception weights"}


def test_scales_and_the_points_of_the_two_lines():
    assert parse_scales("8, 0,2") == (0.0, 2.0, 8.0)
    points = [(p.kind, p.classifier_scale, p.cfg_scale) for p in sweep_points((0.0, 1.0, 2.0), True, True)]
    assert points == [("unguided", 0.0, 1.0), ("classifier", 1.0, 1.0), ("classifier", 2.0, 1.0), ("cfg", 0.0, 0.0),
                      ("cfg", 0.0, 2.0)]
    for text in ("-1,2", "a,b", "1,,2", "nan", "1,1"):
        with pytest.raises(UserError, match="--guidance-scales"):
            parse_scales(text)


# ------------------------------------------------------------------------------ end to end, tiny runs
def classifier32(noise: str, **changes):
    """The classifier-32 recipe at 32 px (the tiny diffusion run's size; tiny_runs.tiny_classifier is 16 px), shrunk to a
    16-channel, two-level trunk without attention, trained 2 steps."""
    config = recipe("classifier-32")
    net = dataclasses.replace(config.net, base_channels=16, channel_mult=(1, 2), num_res_blocks=1,
                              attention_resolutions=(), head_channels=16)
    config = dataclasses.replace(config, net=net, synthetic_n=64, precision="fp32", train_steps=2,
                                 classifier=dataclasses.replace(config.classifier, noise=noise, holdout=8, eval_every=100))
    return dataclasses.replace(config, optim=dataclasses.replace(config.optim, batch=8, decay="none"), **changes)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A class-conditional diffusion run (label dropout 0.1), a noisy and a clean classifier, an
    unconditional diffusion run and a GAN run, each trained a step or two on the synthetic landscapes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("guidance")
    quiet = {"log": lambda _: None}
    train(tiny_diffusion(train_steps=2, class_cond=True), root / "cond", **quiet)
    train(tiny_diffusion(train_steps=1), root / "uncond", **quiet)
    train(tiny_gan(train_steps=1), root / "gan", **quiet)
    train(classifier32("schedule"), root / "noisy", **quiet)
    train(classifier32("none"), root / "clean", **quiet)
    shutil.copytree(root / "clean", root / "other-classes")
    (root / "other-classes" / "classes.json").write_text(json.dumps({"a": 0, "b": 1, "c": 2, "d": 3}))
    torch.set_num_threads(threads)
    return {name: root / name for name in ("cond", "uncond", "gan", "noisy", "clean", "other-classes")}


SWEEP = ["--guidance-n", "8", "--steps", "2", "--sampler", "ddim", "--repeats", "1"]


def test_the_sweep_writes_every_point_and_the_report_shows_it(runs, tmp_path, monkeypatch):
    monkeypatch.delenv("LANDIFF_INCEPTION", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no cached Inception weights
    run = tmp_path / "cond"
    shutil.copytree(runs["cond"], run)
    assert main(["compare", str(run), "--classifier", str(runs["noisy"]), "--clean-classifier", str(runs["clean"]),
                 "--n", "4", "--sweep", "", *SWEEP]) == 0
    assert (run / "compare" / "summary.json").is_file()  # the normal compare ran first
    record = json.loads((run / "compare" / "guidance.json").read_text())
    points = [(p["kind"], p["classifier_scale"], p["cfg_scale"]) for p in record["points"]]
    assert points == [("unguided", 0, 1), ("classifier", 1, 1), ("classifier", 2, 1), ("classifier", 4, 1),
                      ("classifier", 8, 1), ("cfg", 0, 0), ("cfg", 0, 2), ("cfg", 0, 4), ("cfg", 0, 8)]
    noisy_sha = record["axes"]["classifier"]["classifier"]["checkpoint_sha256"]
    for point in record["points"]:
        provenance, metrics = point["provenance"], point["metrics"]
        assert provenance["seed"] == 0 and provenance["class_protocol"] == "balanced"  # the same seeds and labels
        assert provenance["guidance"] == {"unguided": "none", "classifier": "classifier", "cfg": "cfg"}[point["kind"]]
        assert (provenance.get("guidance_model_sha256") == noisy_sha) == (point["kind"] == "classifier")
        assert metrics["class_consistency"]["n"] == 8 and set(metrics["class_consistency"]["per_class"]) == {
            "day", "sunset", "night", "snow"}
        assert metrics["class_swd"]["mean"] > 0 and metrics["diversity"]["ratio"] > 0 and metrics["swd"]["n"] == 8
        assert metrics["precision"] == {"unavailable": "unavailable: needs --inception weights"}
        assert point["nfe"] == (4 if point["kind"] == "cfg" else 2) and point["seconds_per_image"] > 0
    assert record["reference"]["ceiling"]["n"] == 16 and record["labels"]["counts"] == {c: 2 for c in record["labels"]["classes"]}
    with np.load(run / "compare" / "guidance-grids.npz") as grids:
        assert grids["images"].shape == (5, 4, 2, 32, 32, 3)  # unguided, s = 1, s = 8, w = 0, w = 8
        assert [p["label"] for p in json.loads(str(grids["meta"]))["points"]][1:] == [
            "classifier guidance s = 1", "classifier guidance s = 8", "classifier-free w = 0 (unconditional)",
            "classifier-free w = 8"]
    files = build_report([run], tmp_path / "report")
    html, md = files.html.read_text(), files.markdown.read_text().replace("\\", "")
    assert "<h2>Guidance</h2>" in html and 'src="guidance-1.png"' in html
    assert "| point | s | w | class consistency [95% CI] |" in md and "| classifier-free w = 8 | 0 | 8 |" in md
    assert all((files.html.parent / f"guidance-1-{j}.png").is_file() for j in range(1, 6))
    assert "precision/recall unavailable: needs --inception weights" in md
    assert "| real images (ceiling; floor) | — | — |" in md


def test_an_unconditional_run_is_guided_towards_the_classifiers_classes_alone(runs, tmp_path):
    run = tmp_path / "uncond"
    shutil.copytree(runs["uncond"], run)
    assert main(["compare", str(run), "--classifier", str(runs["noisy"]), "--clean-classifier", str(runs["clean"]),
                 "--guidance-only", "--guidance-scales", "0,4", *SWEEP]) == 0
    assert not (run / "compare" / "summary.json").exists()  # --guidance-only: no normal compare
    record = json.loads((run / "compare" / "guidance.json").read_text())
    assert [(p["kind"], p["classifier_scale"]) for p in record["points"]] == [("unguided", 0), ("classifier", 4)]
    assert record["axes"]["cfg"] == {**record["axes"]["cfg"], "swept": False, "why_not": "the run is unconditional"}
    guided = record["points"][1]["provenance"]
    assert guided["class_protocol"] == "balanced" and guided["classes"] == ["day", "sunset", "night", "snow"]
    assert record["points"][0]["provenance"]["class_protocol"] == "none"  # unguided: the unconditional model


@pytest.mark.parametrize("damage", [
    {"points": "x"}, {"points": [{"kind": "cfg"}, 3, None]}, {"points": [{"kind": "other", "classifier_scale": 0,
                                                                          "cfg_scale": 1}]},
    {"points": [{"kind": "cfg", "classifier_scale": 0, "cfg_scale": 2, "metrics": {"class_consistency": 7,
                                                                                   "diversity": []}}],
     "axes": {"cfg": 1, "classifier": {"swept": False, "why_not": 2}}, "reference": {"ceiling": [], "swd_floor": 1},
     "labels": {"classes": [1, None]}, "grids": "../../etc"},
])
def test_a_damaged_guidance_json_gives_a_report_not_a_crash(tmp_path, damage):
    run = tmp_path / "run"
    (run / "compare").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": "diffusion"}))
    provenance = {"checkpoint_sha256": "cd" * 32, "sampler": "ddim", "steps": 2}
    (run / "compare" / "guidance.json").write_text(json.dumps({"provenance": provenance, **damage}))
    (run / "compare" / "guidance-grids.npz").write_bytes(b"not a zip")
    files = build_report([run], tmp_path / "report")
    assert files.html.is_file()


def test_a_run_without_a_sweep_gets_no_guidance_section(runs):
    assert guidance_section(load_runs([runs["cond"]]), None) == []  # type: ignore[arg-type]


@pytest.mark.parametrize("argv, message", [
    (["{cond}", "--classifier", "{noisy}"], "--classifier belongs to the guidance sweep, which needs a judge"),
    (["{cond}", "--guidance-only"], "--guidance-only belongs to the guidance sweep"),
    (["{gan}", "--classifier", "{noisy}", "--clean-classifier", "{clean}"], "is a GAN run"),
    (["{noisy}", "--clean-classifier", "{clean}"], "is a noisy-classifier run"),
    (["{uncond}", "--clean-classifier", "{clean}"], "is unconditional: without --classifier there is nothing to guide"),
    (["{cond}", "{uncond}", "--clean-classifier", "{clean}"], "measures one diffusion RUN, got 2"),
    (["--train", "--clean-classifier", "{clean}"], "give the run directory instead of --train"),
    (["{cond}", "--clean-classifier", "{noisy}"], "is a noisy classifier (noise 'schedule')"),
    (["{cond}", "--classifier", "{clean}", "--clean-classifier", "{clean}"], "is a clean classifier (noise 'none')"),
    (["{cond}", "--clean-classifier", "{other-classes}"], "knows the classes a, b, c, d but the model's are day"),
    (["{cond}", "--clean-classifier", "{clean}", "--guidance-scales=-1,2"], "--guidance-scales '-1,2': every scale"),
    (["{cond}", "--clean-classifier", "{clean}", "--guidance-scales", "1,x"], "--guidance-scales '1,x': give comma"),
    (["{cond}", "--clean-classifier", "{clean}", "--guidance-scales", ",".join(map(str, range(14)))], "gives 14 points"),
    (["{cond}", "--clean-classifier", "{clean}", "--guidance-n", "6"], "at least 2 images of each of the 4 classes"),
])
def test_bad_guidance_options_are_one_line_refusals_before_any_work(runs, tmp_path, monkeypatch, capsys, argv, message):
    def stop(*_args, **_kwargs):
        pytest.fail("reached the computation despite a bad combination")

    monkeypatch.setattr("landiff.cli.compare.compare_runs", stop)
    monkeypatch.setattr("landiff.cli.compare.run_sweep", stop)
    monkeypatch.setattr("landiff.cli.compare.train_entrants", stop)
    names = {name: str(path) for name, path in runs.items()}
    assert main(["compare", *(arg.format(**names) for arg in argv), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("landiff: error:") and message in err, err
