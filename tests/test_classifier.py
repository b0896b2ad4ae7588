"""ADM's noisy classifier (arXiv 2105.05233 §4): the network's contract, its trainer on tiny data (loss,
held-out split, exact resume, clean variant), loading the run, and the refusals."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image

from landiff.cli.main import main
from landiff.data import CLASSES, SyntheticLandscapes
from landiff.errors import UserError
from landiff.nets import NoisyClassifier, UNetConfig
from landiff.nets.classifier import noise_conditioning
from landiff.runs.checkpoint import list_checkpoints, load_checkpoint, unprefixed
from landiff.runs.config import recipe, validate
from landiff.runs.load import refuse_classifier
from landiff.runs.run_dir import read_stats
from landiff.train import load_run, train, train_classifier
from landiff.train.classifier_heldout import NoiseLevels, TrainSubset, evaluate_heldout, holdout_split
from landiff.train.classifier_stats import noise_quartile, quartile_range
from landiff.train.data_stream import batch_stream
from landiff.train.distributed import SINGLE
from landiff.train.precision import Precision
from tiny_runs import tiny_classifier

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = UNetConfig(resolution=16, base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,),
                  head_channels=8, num_classes=3)
# The CLI flags of tiny_classifier() (tests/tiny_runs.py).
SMALL = ["--model", "classifier", "--resolution", "16", "--channels", "16", "--channel-mult", "1,2", "--res-blocks", "1",
         "--attention", "8", "--head-channels", "16", "--batch", "8", "--synthetic-n", "64", "--precision", "fp32",
         "--warmup", "1", "--decay", "none", "--holdout", "8"]


def quiet(_: str) -> None:
    pass


def _randomised(config: UNetConfig = TINY) -> NoisyClassifier:
    """A classifier whose zero-initialised output convs are random too, so the embedding reaches the logits, with
    embedding projections strong enough that AdaGN's scale and shift are O(1), as after training."""
    torch.manual_seed(0)
    net = NoisyClassifier(config)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if not param.any():
                param.normal_(0, 0.2)
            if "emb_proj" in name:
                param.mul_(20)
    return net.eval()


def _weights(run: Path) -> tuple[dict[str, torch.Tensor], dict]:
    return load_checkpoint(list_checkpoints(run / "checkpoints")[-1][1])


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Any]:
    """A 6-step run, the same run stopped after 3 steps and resumed, and a clean (σ = 0) classifier."""
    root = tmp_path_factory.mktemp("classifier")
    config = tiny_classifier()
    train(config, root / "straight", log=quiet)
    train(config, root / "resumed", stop_after=3, log=quiet)
    assert [s for s, _ in list_checkpoints(root / "resumed" / "checkpoints")] == [3]
    train(config, root / "resumed", log=quiet)
    clean = tiny_classifier(classifier=dataclasses.replace(config.classifier, noise="none"))
    seen: list[torch.Tensor] = []
    original = NoisyClassifier.forward

    def record(self, x_t, sigma):
        seen.append(sigma.detach().clone())
        return original(self, x_t, sigma)

    with mock.patch.object(NoisyClassifier, "forward", record):
        train_classifier(clean, root / "clean", log=quiet)
    return {"straight": root / "straight", "resumed": root / "resumed", "clean": root / "clean",
            "clean_sigmas": torch.cat(seen)}


# ----------------------------------------------------------------- the network's contract
def test_forward_shape_and_per_sample_input_gradient():
    net = _randomised()
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    sigma = torch.tensor([0.0, 0.5, 2.0, 80.0])
    y = torch.tensor([0, 1, 2, 1])
    logits = net(x, sigma)
    assert logits.shape == (4, 3) and logits.dtype == torch.float32
    log_p = torch.log_softmax(logits, dim=1)[torch.arange(4), y].sum()
    (grad,) = torch.autograd.grad(log_p, x)
    assert grad.abs().sum(dim=(1, 2, 3)).min() > 0
    for i in range(4):  # each image alone: the same logits and the same gradient as inside the batch
        xi = x[i : i + 1].detach().requires_grad_(True)
        alone = torch.log_softmax(net(xi, sigma[i : i + 1]), dim=1)[0, y[i]]
        (gi,) = torch.autograd.grad(alone, xi)
        torch.testing.assert_close(gi[0], grad[i], rtol=1e-4, atol=1e-6)
    # a change to image 1 leaves the logits of the others untouched
    changed = x.detach().clone()
    changed[1] += 1.0
    with torch.no_grad():
        before, after = net(x.detach(), sigma), net(changed, sigma)
    assert torch.equal(before[[0, 2, 3]], after[[0, 2, 3]]) and not torch.equal(before[1], after[1])


def test_noise_conditioning_changes_the_logits():
    assert float(noise_conditioning(torch.tensor([0.0]))) == pytest.approx(250 * math.log(0.002) / 4, rel=1e-6)
    assert float(noise_conditioning(torch.tensor([1.0]))) == 0.0
    net = _randomised()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        outputs = [net(x, torch.full((2,), s)) for s in (0.0, 0.001, 0.002, 0.5, 0.51, 5.0)]
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[0], outputs[2])  # below σ_min: σ_min
    def change(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).abs().max())

    # the same σ gives bitwise the same logits, so any difference is the conditioning's
    assert change(outputs[2], outputs[3]) > 1e-4 and change(outputs[3], outputs[5]) > 1e-4
    with torch.no_grad():  # a 0-d σ is broadcast
        assert torch.equal(net(x, torch.tensor(0.5)), outputs[3])


def test_bad_inputs_and_shapes_are_refused():
    net = NoisyClassifier(TINY)
    with pytest.raises(UserError, match=r"\(B, 3, 16, 16\)"):
        net(torch.zeros(1, 3, 32, 32), torch.zeros(1))
    with pytest.raises(UserError, match="one noise level per image"):
        net(torch.zeros(2, 3, 16, 16), torch.zeros(3))
    with pytest.raises(UserError, match="num_classes >= 2"):
        NoisyClassifier(dataclasses.replace(TINY, num_classes=1))


def test_quartiles_and_noise_levels():
    for steps in (4, 10, 1000, 4001):
        ranges = [quartile_range(q, steps) for q in range(4)]
        assert ranges[0][0] == 0 and ranges[-1][1] == steps
        for q, (low, high) in enumerate(ranges):
            assert noise_quartile(torch.arange(low, high), steps).eq(q).all()
    levels = NoiseLevels.of(recipe("classifier-32").classifier)
    assert levels is not None and levels.num_steps == 1000
    alphas = torch.from_numpy(levels.process.alphas_cumprod)
    torch.testing.assert_close(levels.sigmas.double(), ((1 - alphas) / alphas).sqrt(), rtol=1e-6, atol=0)
    x0, noise, t = torch.rand(3, 3, 4, 4) * 2 - 1, torch.randn(3, 3, 4, 4), torch.tensor([0, 500, 999])
    x_t, sigma = levels.noisy(x0, t, noise)
    a = alphas[t].float().reshape(-1, 1, 1, 1)
    torch.testing.assert_close(x_t, a.sqrt() * x0 + (1 - a).sqrt() * noise)
    assert torch.equal(sigma, levels.sigmas[t])


# ----------------------------------------------------------------- training
def test_training_reduces_the_loss_and_records_heldout_accuracy_per_quartile(tmp_path):
    config = tiny_classifier(train_steps=36, log_every=12, synthetic_n=128, optim=dataclasses.replace(
        tiny_classifier().optim, batch=16, lr=3e-3), classifier=dataclasses.replace(tiny_classifier().classifier,
                                                                                    eval_every=36, holdout=16))
    train(config, tmp_path / "run", log=quiet)
    stats = read_stats(tmp_path / "run" / "stats.jsonl")
    assert [s["step"] for s in stats] == [12, 24, 36]
    assert stats[-1]["loss"] < 0.8 * stats[0]["loss"], [s["loss"] for s in stats]
    for key in ("loss", "acc", "loss_q", "acc_q", "lr", "grad_norm", "img_per_s", "seconds", "images_seen"):
        assert key in stats[-1], key
    assert len(stats[-1]["acc_q"]) == 4 and "heldout_acc" not in stats[0]
    last = stats[-1]
    assert last["heldout_n"] == 16 and len(last["heldout_acc_q"]) == 4 and 0 <= last["heldout_acc"] <= 1
    summary = json.loads((tmp_path / "run" / "classifier-summary.json").read_text())
    assert summary["step"] == 36 and summary["heldout_acc"] == last["heldout_acc"]
    assert summary["train_n"] + summary["heldout_n"] == 128 and summary["classes"] == list(CLASSES)
    assert summary["quartiles"]["t"] == [[0, 249], [250, 499], [500, 749], [750, 999]]


def test_the_heldout_split_is_seeded_disjoint_and_never_streamed():
    split = holdout_split(24, 6, seed=3)
    train_set, held = set(split.train.tolist()), set(split.heldout.tolist())
    assert len(held) == 6 and not train_set & held and train_set | held == set(range(24))
    assert torch.equal(holdout_split(24, 6, seed=3).heldout, split.heldout)
    assert not torch.equal(holdout_split(24, 6, seed=4).heldout, split.heldout)
    data = SyntheticLandscapes(n=24, resolution=16, seed=0)
    held_images = {data[i][0].numpy().tobytes() for i in held}
    stream = batch_stream(TrainSubset(data, split.train), 6, seed=0, start=0)
    for _ in range(2 * 18 // 6):  # two epochs of the 18 training images
        batch = next(stream)
        assert not {image.numpy().tobytes() for image in batch.images} & held_images
    assert tiny_classifier().classifier.holdout_count(64) == 8
    assert dataclasses.replace(tiny_classifier().classifier, holdout=0.05).holdout_count(64) == 3


def test_resume_equals_uninterrupted_bit_for_bit(runs):
    (a, meta_a), (b, meta_b) = _weights(runs["straight"]), _weights(runs["resumed"])
    assert a.keys() == b.keys() and any(k.startswith("ema.net.") for k in a) and any(k.startswith("optim.net") for k in a)
    assert {k for k in a if k.startswith("rng.")}
    for key in a:  # weights, EMA, optimiser and RNG states
        assert torch.equal(a[key], b[key]), key
    assert meta_a["state"]["images_seen"] == meta_b["state"]["images_seen"] == 48
    straight, resumed = read_stats(runs["straight"] / "stats.jsonl"), read_stats(runs["resumed"] / "stats.jsonl")
    assert [s["step"] for s in resumed] == [3, 6]
    for key in ("loss", "acc", "heldout_acc", "heldout_acc_q"):
        assert [s[key] for s in straight] == [s[key] for s in resumed], key


def test_load_run_round_trip_gives_the_same_logits(runs):
    loaded = load_run(runs["straight"])
    assert loaded.is_classifier and not loaded.is_gan and loaded.diffusion is None
    assert isinstance(loaded.model, NoisyClassifier) and isinstance(loaded.ema_model, NoisyClassifier)
    assert not loaded.model.training and not loaded.ema_model.training
    assert loaded.classes == list(CLASSES) and loaded.num_classes == 4
    tensors, _ = _weights(runs["straight"])
    direct = NoisyClassifier(loaded.config.net)
    direct.load_state_dict(unprefixed("ema.net", tensors))
    x, sigma = torch.randn(3, 3, 16, 16), torch.tensor([0.0, 1.0, 30.0])
    with torch.no_grad():
        assert torch.equal(loaded.ema_model(x, sigma), direct.eval()(x, sigma))
        assert not torch.equal(loaded.model(x, sigma), loaded.ema_model(x, sigma))  # the EMA lags the weights
    # the held-out accuracy recomputed from the loaded EMA equals the trainer's summary
    config, summary = loaded.config, json.loads((runs["straight"] / "classifier-summary.json").read_text())
    data = SyntheticLandscapes(n=config.synthetic_n, resolution=16, seed=config.seed)
    split = holdout_split(len(data), config.classifier.holdout_count(len(data)), config.seed)
    result = evaluate_heldout(loaded.ema_model, data, split.heldout, NoiseLevels.of(config.classifier), seed=config.seed,
                              batch=5, device=torch.device("cpu"), dist=SINGLE, precision=Precision.create("fp32", "cpu"))
    assert result.record() == {k: summary[k] for k in ("heldout_acc", "heldout_acc_q", "heldout_n")}
    assert summary["checkpoint"] == "checkpoints/step-00000006.safetensors"


def test_a_classifier_run_is_refused_where_a_generative_model_is_needed(runs, capsys):
    loaded = load_run(runs["straight"])
    with pytest.raises(UserError, match="noisy-classifier run") as err:
        refuse_classifier(loaded, "compare")
    assert "landiff sample --classifier" in str(err.value) and "\n" not in str(err.value)
    assert main(["eval", "nll", "--run", str(runs["straight"]), "--n", "2"]) == 2
    message = capsys.readouterr().err.strip()
    assert "noisy-classifier run (--model classifier)" in message and len(message.splitlines()) == 1
    for argv in (["compare", str(runs["straight"]), "--n", "2"], ["report", str(runs["straight"]), "--out", "unused"]):
        assert main(argv) == 2
        message = capsys.readouterr().err.strip()
        assert "noisy-classifier run" in message and "--classifier" in message and len(message.splitlines()) == 1


def test_a_clean_classifier_trains_on_clean_images(runs):
    sigmas = runs["clean_sigmas"]  # every σ the network saw: 6 training batches of 8, two held-out evaluations of 8
    assert sigmas.numel() == 6 * 8 + 2 * 8 and torch.equal(sigmas, torch.zeros_like(sigmas))
    stats = read_stats(runs["clean"] / "stats.jsonl")
    assert stats[-1]["loss_q"] is None and stats[-1]["heldout_acc_q"] is None and stats[-1]["heldout_n"] == 8
    summary = json.loads((runs["clean"] / "classifier-summary.json").read_text())
    assert summary["noise"] == "none" and summary["quartiles"] is None
    assert load_run(runs["clean"]).config.classifier.noise == "none"


# ----------------------------------------------------------------- refusals and the CLI
def _folder(root: Path, layout: dict[str, int]) -> Path:
    rng = np.random.default_rng(0)
    for sub, count in layout.items():
        (root / sub).mkdir(parents=True, exist_ok=True)
        for k in range(count):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / sub / f"{k}.png")
    return root


def test_unlabelled_or_single_class_data_is_refused_in_one_line(tmp_path):
    loose = _folder(tmp_path / "loose", {"": 4})
    with pytest.raises(UserError) as err:
        train(tiny_classifier(data=str(loose)), tmp_path / "r1", log=quiet)
    assert "--model classifier needs labelled data" in str(err.value) and "subfolder" in str(err.value)
    assert "\n" not in str(err.value) and "drop --class-cond" not in str(err.value)
    single = _folder(tmp_path / "single", {"lake": 4})
    with pytest.raises(UserError, match="at least 2 classes"):
        train(tiny_classifier(data=str(single)), tmp_path / "r2", log=quiet)
    with pytest.raises(UserError, match="leaving none to train on"):
        train(tiny_classifier(classifier=dataclasses.replace(tiny_classifier().classifier, holdout=64)), tmp_path / "r3")
    assert not (tmp_path / "r3").exists()  # refused before the run directory is made
    with pytest.raises(UserError, match="needs class labels"):
        validate(tiny_classifier(class_cond=False))


@pytest.mark.parametrize("argv,needles", [
    (["--model", "classifier", "--schedule", "linear"], ["--schedule only applies to --model diffusion"]),
    (["--model", "classifier", "--preview-count", "4"], ["--preview-count", "no preview"]),
    (["--model", "classifier", "--z-dim", "8"], ["--z-dim only applies to --model gan"]),
    (["--model", "classifier", "--posthoc-ema"], ["--posthoc-ema only applies to --model diffusion"]),
    (["--model", "classifier", "--accum", "2"], ["--accum"]),
    (["--model", "classifier", "--noise", "none", "--noise-steps", "10"], ["--noise none", "drop them"]),
    (["--noise-steps", "10"], ["--noise-steps only applies to --model classifier"]),
    (["--model", "gan", "--holdout", "0.1"], ["--holdout only applies to --model classifier"]),
    (["--model", "classifier", "--holdout", "1.5"], ["--holdout must be a fraction"]),
    (["--model", "classifier", "--holdout", "lots"], ["--holdout must be a fraction"]),
    (["--model", "classifier", "--noise", "some"], ["--noise", "schedule, none"]),
    (["--preset", "classifier-32", "--model", "gan"], ["classifier recipe", "dcgan"]),
])
def test_bad_option_combinations_give_one_line(tmp_path, capsys, argv, needles):
    assert main(["train", "--run", str(tmp_path / "r"), *argv, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(needle in err for needle in needles), err


def test_cli_picks_the_preset_by_resolution_and_trains_in_process(tmp_path, capsys):
    assert main(["train", "--run", str(tmp_path / "r"), "--model", "classifier", "--dry-run"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["preset"] == "classifier-32" and config["class_cond"] and config["preview_count"] == 0
    assert main(["train", "--run", str(tmp_path / "r"), "--model", "classifier", "--resolution", "64", "--dry-run"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["preset"] == "classifier-64" and config["net"]["resolution"] == 64
    assert main(["train", "--run", str(tmp_path / "r"), "--model", "classifier", "--holdout", "5%", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["classifier"]["holdout"] == 0.05
    run = tmp_path / "run"
    assert main(["train", "--run", str(run), *SMALL, "--steps", "2", "--log-every", "1", "--eval-every", "2",
                 "--noise-schedule", "linear", "--noise-steps", "100"]) == 0
    out = capsys.readouterr().out
    assert "noisy classifier" in out and "done: step 2" in out
    stored = json.loads((run / "config.json").read_text())
    assert stored["model"] == "classifier" and stored["classifier"]["schedule"] == "linear"
    assert stored["classifier"]["holdout"] == 8 and stored["net"]["num_classes"] == 4
    assert [s["step"] for s in read_stats(run / "stats.jsonl")] == [1, 2] and not (run / "samples").exists()
    assert json.loads((run / "classifier-summary.json").read_text())["quartiles"]["t"][-1] == [75, 99]


def test_a_non_finite_loss_skips_the_step(tmp_path):
    original, calls = NoisyClassifier.forward, {"n": 0}

    def poisoned(self, x_t, sigma):
        calls["n"] += 1
        logits = original(self, x_t, sigma)
        return logits * float("nan") if calls["n"] == 2 else logits

    with mock.patch.object(NoisyClassifier, "forward", poisoned):
        state = train(tiny_classifier(train_steps=3, log_every=1), tmp_path / "run", log=quiet)
    assert state.step == 3 and state.skipped_steps == 1
    tensors, _ = _weights(tmp_path / "run")
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if k.startswith(("model.", "ema.")))
    assert [s["skipped_steps"] for s in read_stats(tmp_path / "run" / "stats.jsonl")] == [0, 1, 1]
