"""``landiff.Pipeline``: one object per trained run, whose images are ``landiff sample``'s for the same seeds.

Four runs trained for two steps (an unconditional discrete and a class-conditional EDM diffusion run, a
class-conditional GAN and a noisy classifier, all 16–32 px) are shared by the module; the CLI runs in-process.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import landiff
from landiff.cli.main import main
from landiff.errors import UserError
from landiff.pipeline import Pipeline
from landiff.runs.config import DiffusionConfig, TrainConfig
from landiff.train import train
from tiny_runs import dcgan32, four_step_unet, tiny_classifier

pytestmark = pytest.mark.usefixtures("one_thread")

QUIET = {"log": lambda _: None}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pipeline-runs")
    configs = {
        "diffusion": four_step_unet(train_steps=2),  # 16 px, T = 50, the fixed-decay EMA
        "edm": four_step_unet(diffusion=DiffusionConfig(num_steps=100, formulation="edm"), train_steps=2, class_cond=True),
        "gan": dcgan32(8, batch=4, synthetic_n=16, preview_count=0, class_cond=True, train_steps=2),
        "classifier": tiny_classifier(train_steps=2),
    }
    for name, config in configs.items():
        train(config, root / name, **QUIET)
    return {name: root / name for name in configs}


@pytest.fixture(scope="module")
def pipes(runs: dict[str, Path]) -> dict[str, Pipeline]:
    return {"diffusion": Pipeline.from_run(runs["diffusion"]), "gan": Pipeline.from_run(runs["gan"]),
            "guided": Pipeline.from_run(runs["diffusion"], classifier=runs["classifier"])}


def _cli_images(run: Path, out: Path, *args: str) -> tuple[np.ndarray, dict]:
    """``landiff sample --run RUN ARGS``'s samples.npz images and meta; checks its PNGs hold the same images."""
    assert main(["sample", "--run", str(run), "--out", str(out), *args]) == 0
    with np.load(out / "samples.npz", allow_pickle=False) as data:
        images, meta = data["images"], json.loads(str(data["meta"]))
    assert np.array_equal(np.asarray(Image.open(out / "000000.png").convert("RGB")), images[0])
    return images, meta


@pytest.mark.parametrize("name, cli, kwargs", [("diffusion", (), {}), ("edm", ("--sampler", "heun", "--steps", "5"),
                                                                          {"sampler": "heun", "steps": 5})])
def test_diffusion_images_are_landiff_samples_at_any_batch_size(runs, tmp_path, capsys, name, cli, kwargs):
    """The defaults (dpm++sde, 20 steps, precision auto) are the CLI's, image for image, and image k is seed k's."""
    images, meta = _cli_images(runs[name], tmp_path / "cli", "--n", "2", "--seed", "5", *cli)
    pipe = Pipeline.from_run(runs[name])
    assert (meta["sampler"], meta["steps"]) == (kwargs.get("sampler", "dpm++sde"), kwargs.get("steps", 20))
    assert pipe.formulation == ("edm" if name == "edm" else "discrete")
    ours = pipe(seeds=range(5, 7), output="np", **kwargs)
    assert ours.dtype == np.uint8 and ours.shape == (2, 16, 16, 3) and ours.std() > 0
    assert np.array_equal(ours, images)
    assert np.array_equal(pipe(seeds=[6], batch_size=1, output="np", **kwargs), images[1:])  # per seed, any batch
    capsys.readouterr()


def test_a_class_conditional_diffusion_run_takes_its_classes_and_guidance_as_landiff_sample(runs, tmp_path, capsys):
    pipe, settings = Pipeline.from_run(runs["edm"]), dict(sampler="heun", steps=5)
    assert pipe.class_names == ["day", "sunset", "night", "snow"] and "classes day, sunset, night, snow" in repr(pipe)
    night, meta = _cli_images(runs["edm"], tmp_path / "night", "--n", "2", "--sampler", "heun", "--steps", "5",
                              "--class", "night", "--guidance", "2")
    assert (meta["class"], meta["guidance"]) == ("night", 2.0)
    ours = pipe(2, class_name="night", guidance=2, output="np", **settings)
    assert np.array_equal(ours, night) and not np.array_equal(ours, pipe(2, class_name="night", output="np", **settings))
    with pytest.raises(UserError, match="guidance needs class_name"):
        pipe(guidance=2, **settings)
    with pytest.raises(UserError, match="classifier guidance of a class-conditional run needs class_name"):
        Pipeline.from_run(runs["edm"], classifier=runs["classifier"])(**settings)
    capsys.readouterr()


def test_the_three_outputs_hold_the_same_pixels(pipes):
    pipe = pipes["diffusion"]
    array = pipe(seeds=[1, 2], sampler="ddim", steps=3, output="np")
    pil = pipe(seeds=[1, 2], sampler="ddim", steps=3)
    tensor = pipe(seeds=[1, 2], sampler="ddim", steps=3, output="pt")
    assert isinstance(pil, list) and all(isinstance(im, Image.Image) and im.mode == "RGB" and im.size == (16, 16)
                                         for im in pil)
    assert np.array_equal(np.stack([np.asarray(im) for im in pil]), array)
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32 and tuple(tensor.shape) == (2, 3, 16, 16)
    assert torch.equal(tensor, torch.from_numpy(array).permute(0, 3, 1, 2).float() / 255)
    assert len(pipe(batch_size=3, sampler="ddim", steps=2)) == 3  # diffusers' batch_size: the image count


def test_gan_images_are_landiff_samples_per_class(pipes, runs, tmp_path, capsys):
    pipe = pipes["gan"]
    assert (pipe.family, pipe.formulation, pipe.resolution) == ("gan", None, 32)
    assert pipe.class_names == ["day", "sunset", "night", "snow"]
    every, _ = _cli_images(runs["gan"], tmp_path / "all", "--n", "5")  # a conditional GAN cycles through its classes
    assert np.array_equal(pipe(5, output="np"), every)
    assert np.array_equal(pipe(seeds=range(5), batch_size=2, output="np"), every)
    night, meta = _cli_images(runs["gan"], tmp_path / "night", "--n", "3", "--seed", "4", "--class", "night")
    assert meta["class"] == "night" and not np.array_equal(night, every[:3])
    assert np.array_equal(pipe(seeds=[4, 5, 6], class_name="night", output="np"), night)
    capsys.readouterr()


def test_classifier_guidance_is_landiff_samples_and_zero_scale_is_unguided(pipes, runs, tmp_path, capsys):
    guided, plain = pipes["guided"], pipes["diffusion"]
    assert guided.class_names == ["day", "sunset", "night", "snow"] and plain.class_names == []  # the classifier's
    settings = dict(sampler="ddim", steps=4)
    images, meta = _cli_images(runs["diffusion"], tmp_path / "cli", "--n", "3", "--sampler", "ddim", "--steps", "4",
                               "--classifier", str(runs["classifier"]), "--classifier-scale", "50", "--class", "snow")
    assert meta["classifier_scale"] == 50.0
    ours = guided(3, class_name="snow", classifier_scale=50, **settings, output="np")
    assert np.array_equal(ours, images)
    assert np.array_equal(guided(seeds=[2, 0], class_name="snow", classifier_scale=50, batch_size=1, output="np", **settings),
                          images[[2, 0]])
    unguided = plain(3, **settings, output="np")
    assert not np.array_equal(ours, unguided)
    assert np.array_equal(guided(3, classifier_scale=0, **settings, output="np"), unguided)
    default, _ = _cli_images(runs["diffusion"], tmp_path / "default", "--n", "2", "--sampler", "ddim", "--steps", "4",
                             "--classifier", str(runs["classifier"]))  # scale 1 towards class k mod K
    assert np.array_equal(guided(2, **settings, output="np"), default)
    shared = Pipeline.from_run(runs["edm"], classifier=guided)  # a loaded classifier, shared
    assert shared.classifier is guided.classifier
    capsys.readouterr()


def test_properties_repr_to_and_the_diffusers_names(pipes, runs):
    pipe = pipes["diffusion"]
    assert isinstance(pipe.config, TrainConfig) and pipe.config.resolution == pipe.resolution == 16
    assert pipe.family == "diffusion" and pipe.run_dir == runs["diffusion"]
    assert pipe.to("cpu") is pipe and pipe.device == torch.device("cpu")
    text = repr(pipe)
    assert text.startswith(f"Pipeline({str(runs['diffusion'])!r}: discrete diffusion at step 2, 16 px, unconditional")
    assert "T=50" in text and "dpm++sde x 20" in text and text.endswith("; cpu)")
    assert "classifier " in repr(pipes["guided"]) and "EMA generator" not in repr(pipes["gan"])
    checkpoint = sorted((runs["diffusion"] / "checkpoints").glob("step-*.safetensors"))[-1]
    again = Pipeline.from_pretrained(checkpoint, device="cpu")
    assert again.run.checkpoint == checkpoint
    assert np.array_equal(again(seeds=[3], sampler="ddim", steps=2, output="np"),
                          pipe(seeds=[3], sampler="ddim", steps=2, output="np"))


def test_import_landiff_stays_light_and_resolves_pipeline_lazily():
    code = "import sys, landiff; print('torch' in sys.modules, 'landiff.pipeline' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    assert landiff.Pipeline is Pipeline and "Pipeline" in dir(landiff)
    with pytest.raises(AttributeError, match="no attribute 'Pipe'"):
        landiff.Pipe  # noqa: B018


REFUSALS = [
    ("load", "classifier", {}, "is a noisy-classifier run, which draws no images; pass it as classifier="),
    ("load", "gan", {"classifier": "@classifier"}, "is a GAN run: drop classifier"),
    ("load", "diffusion", {"classifier": "@edm"}, "is a diffusion run, not a classifier"),
    ("load", "nowhere", {}, "does not exist; give a run directory"),
    ("load", "diffusion", {"classifier": "@nowhere"}, "classifier '"),
    ("load", "diffusion", {"ema_length": 0.1}, "ema_length needs a diffusion run trained with --posthoc-ema"),
    ("load", "diffusion", {"device": "tpu"}, "device 'tpu'"),
    ("gan", None, {"sampler": "ddim"}, "sampler applies to diffusion runs only"),
    ("gan", None, {"steps": 4, "guidance": 2.0}, "steps, guidance apply to diffusion runs only"),
    ("gan", None, {"class_name": "zebra"}, "class_name 'zebra' is not a class of this run; choose one of: day, sunset"),
    ("diffusion", None, {"class_name": "night"}, "class_name needs a class-conditional run or a classifier"),
    ("diffusion", None, {"n": 3, "seeds": [1, 2]}, "n=3 disagrees with the 2 seeds given"),
    ("diffusion", None, {"seeds": [-1]}, "seeds must be an integer >= 0"),
    ("diffusion", None, {"seeds": 7}, "seeds must be a list of integers"),
    ("diffusion", None, {"seeds": []}, "seeds is empty"),
    ("diffusion", None, {"n": 0}, "n must be an integer >= 1"),
    ("diffusion", None, {"batch_size": 0}, "batch_size must be an integer >= 1"),
    ("diffusion", None, {"classifier_scale": 1.0}, "classifier_scale needs a classifier"),
    ("diffusion", None, {"guidance": 2.0}, "guidance (classifier-free) needs a class-conditional run"),
    ("diffusion", None, {"output": "jpg"}, "output 'jpg' is not an output type"),
    ("diffusion", None, {"steps": 51}, "cannot sample with 51 steps from a 50-step process; use steps 1..50"),
    ("diffusion", None, {"sampler": "euler"}, "unknown sampler 'euler'"),
    ("diffusion", None, {"sampler": "ddpm"}, "cannot sample with 250 steps from a 50-step process"),  # ddpm's default
    ("diffusion", None, {"precision": "fp16"}, "precision 'fp16' is not a precision"),
    ("guided", None, {"class_name": "zebra"}, "class_name 'zebra' is not a class of the classifier"),
    ("guided", None, {"classifier_scale": -1.0}, "classifier_scale must be a finite number >= 0"),
]


@pytest.mark.parametrize("pipe, run, kwargs, expected", REFUSALS, ids=[r[3][:40] for r in REFUSALS])
def test_refuses_each_mistake_in_one_line(pipes, runs, tmp_path, pipe, run, kwargs, expected):
    def path(value: object) -> object:
        return (runs.get(value[1:]) or tmp_path / value[1:]) if isinstance(value, str) and value.startswith("@") else value

    with pytest.raises(UserError) as caught:
        if pipe == "load":
            Pipeline.from_run(path("@" + run), **{k: path(v) for k, v in kwargs.items()})
        else:
            pipes[pipe](**kwargs)
    message = str(caught.value)
    assert expected in message and "\n" not in message, message


def test_a_loaded_run_of_the_wrong_kind_is_refused_by_the_constructor(pipes):
    with pytest.raises(UserError, match="is a diffusion run, not a classifier"):
        Pipeline(pipes["diffusion"].run, classifier=pipes["diffusion"].run)
    with pytest.raises(UserError, match="noisy-classifier run"):
        Pipeline(pipes["guided"].classifier)
    with pytest.raises(UserError, match="is a Pipeline without a classifier"):
        Pipeline.from_run(pipes["diffusion"].run_dir, classifier=pipes["diffusion"])
    small = dataclasses.replace(pipes["guided"].classifier.config, resolution=32)
    other = dataclasses.replace(pipes["guided"].classifier, config=small)
    with pytest.raises(UserError, match="takes 32 px images and the run draws 16 px"):
        Pipeline(pipes["diffusion"].run, classifier=other)
