"""The diffusion trainer end to end on tiny data: CLI, exact resume, rotation, sampling, NLL."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from landiff.cli.main import main
from landiff.errors import UserError
from landiff.runs.checkpoint import list_checkpoints, load_checkpoint
from landiff.runs.run_dir import read_stats
from landiff.samplers import classifier_free_guidance
from landiff.train import load_run, recipe, train
from tiny_runs import small_unet

# A very small net at 16 px so every test trains in seconds on 2 cores.
SMALL = ["--resolution", "16", "--channels", "16", "--channel-mult", "1,2", "--res-blocks", "1",
         "--attention", "8", "--batch", "8", "--preview-count", "4", "--preview-steps", "3", "--precision", "fp32",
         "--decay", "none"]


small_config = small_unet


@pytest.fixture()
def image_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    for k in range(8):
        folder = root / ("lake" if k % 2 else "peak")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / f"{k}.png")
    return root


def test_cli_train_on_synthetic_writes_the_run_directory(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--run", str(run), "--steps", "4", "--synthetic-n", "32", "--log-every", "2",
                 "--checkpoint-every", "2", "--sample-every", "4", *SMALL]) == 0
    stats = read_stats(run / "stats.jsonl")
    assert [s["step"] for s in stats] == [2, 4]
    for key in ("images_seen", "loss", "mse", "vb", "loss_q", "lr", "grad_norm", "img_per_s", "seconds"):
        assert key in stats[-1]
    assert stats[-1]["images_seen"] == 32
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [2, 4]
    assert (run / "samples" / "step-4.png").exists()
    assert json.loads((run / "config.json").read_text())["train_steps"] == 4


def test_cli_train_on_folder_class_conditional(tmp_path, image_folder):
    run = tmp_path / "run"
    assert main(["train", "--run", str(run), "--data", str(image_folder), "--class-cond", "--steps", "2", *SMALL]) == 0
    assert json.loads((run / "classes.json").read_text()) == {"lake": 0, "peak": 1}
    assert "# 8 readable, 0 skipped" in (run / "data-skipped.txt").read_text()
    loaded = load_run(run)
    assert loaded.config.net.num_classes == 2 and loaded.classes == ["lake", "peak"]


def test_dry_run_prints_resolved_config(capsys):
    assert main(["train", "--run", "/nonexistent/run", "--preset", "iddpm-cifar", "--lr", "3e-4", "--dry-run"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["optim"]["lr"] == 3e-4 and config["diffusion"]["loss"] == "hybrid"
    assert config["diffusion"]["num_steps"] == 4000 and not Path("/nonexistent/run").exists()


@pytest.mark.parametrize("argv,needle", [
    (["--batch", "0"], "--batch"), (["--lr", "abc"], "--lr"), (["--schedule", "quad"], "--schedule"),
    (["--preset", "huge"], "tiny"), (["--resolution", "30"], "multiple of"),
])
def test_bad_options_fail_with_one_line(tmp_path, capsys, argv, needle):
    assert main(["train", "--run", str(tmp_path / "r"), *argv, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def _all_tensors(run: Path) -> dict[str, torch.Tensor]:
    tensors, meta = load_checkpoint(list_checkpoints(run / "checkpoints")[-1][1])
    return {k: v for k, v in tensors.items() if not k.startswith("rng.")}, meta


def test_resume_equals_uninterrupted(tmp_path):
    """N steps + resume + N steps ends with identical weights, EMA, optimiser and sampler state."""
    config = small_config(train_steps=6, checkpoint_every=100, log_every=3,
                          diffusion=dataclasses.replace(recipe("tiny").diffusion, num_steps=4, variance="learned_range",
                                                        loss="hybrid", timestep_sampler="loss-aware"))
    train(config, tmp_path / "straight", log=lambda _: None)
    train(config, tmp_path / "resumed", stop_after=3, log=lambda _: None)
    assert [s for s, _ in list_checkpoints(tmp_path / "resumed" / "checkpoints")] == [3]
    train(config, tmp_path / "resumed", log=lambda _: None)
    (a, meta_a), (b, meta_b) = _all_tensors(tmp_path / "straight"), _all_tensors(tmp_path / "resumed")
    assert a.keys() == b.keys() and any(k.startswith("optim.") for k in a) and any(k.startswith("ema.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert meta_a["extra"] == meta_b["extra"]  # importance-sampler history
    assert meta_a["state"]["images_seen"] == meta_b["state"]["images_seen"] == 48
    stats = read_stats(tmp_path / "resumed" / "stats.jsonl")
    assert [s["step"] for s in stats] == [3, 6]


def test_conflicting_config_is_refused(tmp_path):
    train(small_config(train_steps=1), tmp_path / "run", log=lambda _: None)
    with pytest.raises(UserError, match=r"optim\.lr"):
        train(small_config(train_steps=1, optim=dataclasses.replace(small_config().optim, lr=0.5)), tmp_path / "run")
    # More steps is allowed: it extends the run.
    state = train(small_config(train_steps=2), tmp_path / "run", log=lambda _: None)
    assert state.step == 2


def test_restart_moves_the_old_run_aside(tmp_path):
    train(small_config(train_steps=1), tmp_path / "run", log=lambda _: None)
    state = train(small_config(train_steps=1, seed=5), tmp_path / "run", restart=True, log=lambda _: None)
    assert state.step == 1
    assert len(list(tmp_path.joinpath("run").glob("previous-*/checkpoints/*.safetensors"))) == 1


def test_rotation_keeps_the_last_k(tmp_path):
    train(small_config(train_steps=7, checkpoint_every=1, keep_checkpoints=3), tmp_path / "run", log=lambda _: None)
    assert [s for s, _ in list_checkpoints(tmp_path / "run" / "checkpoints")] == [5, 6, 7]
    assert not list((tmp_path / "run" / "checkpoints").glob(".*tmp"))


def test_sampling_is_per_seed_across_batch_sizes(tmp_path):
    run = tmp_path / "run"
    train(small_config(train_steps=2), run, log=lambda _: None)
    for batch in ("1", "3"):
        assert main(["sample", "--run", str(run), "--n", "3", "--batch", batch, "--steps", "4", "--seed", "7",
                     "--out", str(tmp_path / f"b{batch}")]) == 0
    one = np.load(tmp_path / "b1" / "samples.npz", allow_pickle=False)
    three = np.load(tmp_path / "b3" / "samples.npz", allow_pickle=False)
    assert one["images"].shape == (3, 16, 16, 3)
    assert np.abs(one["images"].astype(int) - three["images"].astype(int)).max() <= 1  # BLAS batch paths
    meta = json.loads(str(one["meta"]))
    assert meta["seed"] == 7 and len(meta["checkpoint_sha256"]) == 64
    assert (tmp_path / "b1" / "000002.png").exists() and (tmp_path / "b1" / "grid.png").exists()


def test_guidance_scale_one_is_conditional_and_zero_unconditional(tmp_path):
    config = small_config(train_steps=2, class_cond=True, data="synthetic")
    train(config, tmp_path / "run", log=lambda _: None)
    loaded = load_run(tmp_path / "run")
    model, null = loaded.model, loaded.config.net.num_classes
    with torch.no_grad():  # randomise the zero-initialised output so labels matter
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x, t, y = torch.randn(2, 3, 16, 16), torch.tensor([10, 500]), torch.tensor([0, 2])
    with torch.no_grad():
        cond, uncond = model(x, t, y=y), model(x, t, y=torch.full_like(y, null))
        assert not torch.allclose(cond, uncond)
        torch.testing.assert_close(classifier_free_guidance(model, 1.0, null)(x, t, y=y), cond, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(classifier_free_guidance(model, 0.0, null)(x, t, y=y), uncond, rtol=1e-5, atol=1e-5)


def test_eval_nll_reports_bits_per_dim(tmp_path, capsys):
    config = small_config(train_steps=1, diffusion=dataclasses.replace(recipe("tiny").diffusion, num_steps=8))
    train(config, tmp_path / "run", log=lambda _: None)
    assert main(["eval", "nll", "--run", str(tmp_path / "run"), "--n", "4", "--batch", "2"]) == 0
    assert "bits/dim" in capsys.readouterr().out
    record = json.loads((tmp_path / "run" / "metrics-nll.jsonl").read_text().splitlines()[-1])
    assert record["n"] == 4 and np.isfinite(record["bpd"]["mean"])
    # An untrained net on 8-bit images: several bits per dimension, far below the 8 of a uniform model... or not
    assert 0.5 < record["bpd"]["mean"] < 20
    assert record["bpd"]["mean"] == pytest.approx(
        record["prior_bpd"]["mean"] + record["decoder_bpd"]["mean"] + sum(v["mean"] for v in record["terms_bpd"].values()),
        rel=1e-6)


def test_training_reduces_the_loss(tmp_path):
    """~300 steps on 8 images must clearly beat step 0 (fails if training did nothing)."""
    config = small_config(train_steps=300, synthetic_n=8, log_every=20, checkpoint_every=1000, preview_count=0,
                          ema_decay=0.99, optim=dataclasses.replace(small_config().optim, lr=2e-3, warmup=20))
    train(config, tmp_path / "run", log=lambda _: None)
    stats = read_stats(tmp_path / "run" / "stats.jsonl")
    first, last = stats[0]["loss"], np.mean([s["loss"] for s in stats[-3:]])
    assert last < 0.6 * first, (first, last)


def test_double_dash_separator_is_accepted(capsys):
    """``torchrun … -m landiff -- train …`` may hand landiff the ``--`` separator."""
    assert main(["--", "train", "--run", "/nonexistent/run", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["preset"] == "tiny"


def test_folder_runs_reuse_the_automatic_cache(tmp_path, image_folder, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("LANDIFF_DATA_CACHE", str(cache))
    config = small_config(train_steps=1, data=str(image_folder))
    train(config, tmp_path / "a", log=lambda _: None)
    arrays = list(cache.rglob("images.npy"))
    assert len(arrays) == 1
    built = arrays[0].stat().st_mtime_ns
    logs: list[str] = []
    train(config, tmp_path / "b", log=logs.append)
    assert arrays[0].stat().st_mtime_ns == built  # the decoded images were reused, not rebuilt
    assert any("8 readable, 0 skipped" in line for line in logs)
    Image.fromarray(np.zeros((20, 24, 3), dtype=np.uint8)).save(image_folder / "peak" / "new.png")
    logs.clear()
    train(config, tmp_path / "c", log=logs.append)
    assert any("9 readable, 0 skipped" in line for line in logs)  # a changed folder rebuilds the cache
