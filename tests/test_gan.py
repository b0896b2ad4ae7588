"""The DCGAN baseline: network shapes and init, CLI training, exact resume, per-seed sampling, conditioning."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from landiff.cli.main import main
from landiff.errors import UserError
from landiff.nets import DCGAN_SIZES, DCGANConfig, Discriminator, Generator, dcgan_layout, latents
from landiff.runs.checkpoint import list_checkpoints, load_checkpoint
from landiff.runs.run_dir import read_stats
from landiff.train import load_run, train
from tiny_runs import small_dcgan

# Tiny nets at 32 px so every test trains in about a second on 2 cores.
SMALL = ["--resolution", "32", "--ngf", "16", "--ndf", "16", "--batch", "8", "--preview-count", "4",
         "--precision", "fp32", "--synthetic-n", "32"]


small_config = small_dcgan


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A class-conditional run with an EMA of G, ~30 steps so batch norm's running statistics
    (used in eval mode, i.e. when sampling) have left their initial values."""
    run = tmp_path_factory.mktemp("gan") / "run"
    config = small_config(train_steps=30, synthetic_n=16, preview_count=0, class_cond=True, log_every=10,
                          gan=dataclasses.replace(small_config().gan, ema=True))
    train(config, run, log=quiet)
    return run


@pytest.mark.parametrize("size", [32, 64, 128, 48])
def test_generator_and_discriminator_shapes(size):
    config = DCGANConfig(resolution=size, z_dim=8, ngf=4, ndf=4, num_classes=3)
    g, d = Generator(config), Discriminator(config)
    y = torch.tensor([0, 2])
    x = g(torch.randn(2, 8), y)
    assert x.shape == (2, 3, size, size)
    assert x.abs().max() <= 1.0  # tanh output
    assert d(x, y).shape == (2,)


def test_layout_matches_the_paper_at_64_px():
    """64 px: 4×4 start, ngf·8 → ngf·4 → ngf·2 → ngf, four doublings (DCGAN fig. 1)."""
    assert dcgan_layout(64) == (4, 4) and dcgan_layout(48) == (6, 3) and dcgan_layout(256) == (4, 6)
    g = Generator(DCGANConfig(resolution=64, ngf=64))
    widths = [m.out_channels for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert widths == [512, 256, 128, 64, 3]
    # no BN on G's output layer nor D's input layer; BN everywhere else
    assert isinstance(g.main[-2], nn.ConvTranspose2d) and isinstance(g.main[-1], nn.Tanh)
    d = Discriminator(DCGANConfig(resolution=64, ndf=64))
    assert isinstance(d.features[1], nn.LeakyReLU) and isinstance(d.features[3], nn.BatchNorm2d)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == 3
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.modules()) == 4


@pytest.mark.parametrize("size", [16, 36, 50, 512])
def test_unsupported_sizes_name_the_valid_ones(size):
    with pytest.raises(UserError, match="32, 40, 48") as err:
        DCGANConfig(resolution=size)
    assert "--resolution" in str(err.value)
    assert 32 in DCGAN_SIZES and 256 in DCGAN_SIZES and 36 not in DCGAN_SIZES


def test_cli_refuses_an_unsupported_gan_resolution(tmp_path, capsys):
    assert main(["train", "--run", str(tmp_path / "r"), "--model", "gan", "--resolution", "100", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "96, 112" in err and len(err.splitlines()) == 1


def test_init_statistics():
    torch.manual_seed(0)
    g = Generator(DCGANConfig(resolution=64))
    d = Discriminator(DCGANConfig(resolution=64))
    conv_types = (nn.Conv2d, nn.ConvTranspose2d)
    convs = [m.weight.detach() for net in (g, d) for m in net.modules() if isinstance(m, conv_types)]
    big = [w for w in convs if w.numel() > 10_000]
    for w in big:
        assert abs(float(w.std()) - 0.02) < 0.002 and abs(float(w.mean())) < 0.002
    bn = torch.cat([m.weight.detach() for net in (g, d) for m in net.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(float(bn.mean()) - 1.0) < 0.005 and abs(float(bn.std()) - 0.02) < 0.005
    biases = [m.bias.detach() for net in (g, d) for m in net.modules() if getattr(m, "bias", None) is not None]
    assert all(float(b.abs().max()) == 0.0 for b in biases)


def test_latents_do_not_depend_on_the_batch():
    assert torch.equal(latents([3, 4, 5], 10)[1], latents([4], 10)[0])
    assert not torch.equal(latents([3], 10), latents([4], 10))


def test_cli_trains_a_gan_and_writes_the_run_directory(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--model", "gan", "--run", str(run), "--steps", "4", "--log-every", "2",
                 "--checkpoint-every", "2", "--sample-every", "4", "--z-dim", "16", "--beta1", "0.5", *SMALL]) == 0
    stats = read_stats(run / "stats.jsonl")
    assert [s["step"] for s in stats] == [2, 4]
    for key in ("images_seen", "loss_d", "loss_g", "d_real", "d_fake", "lr", "img_per_s", "seconds"):
        assert key in stats[-1], key
    assert stats[-1]["images_seen"] == 32 and stats[-1]["lr"] == pytest.approx(2e-4)
    assert 0 < stats[0]["d_real"] < 1 and 0 < stats[0]["d_fake"] < 1
    assert stats[0]["loss_d"] > 0 and stats[0]["loss_g"] > 0
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [2, 4]
    assert (run / "samples" / "step-4.png").exists()
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "gan" and config["gan"]["z_dim"] == 16 and config["optim"]["beta1"] == 0.5
    tensors, _ = load_checkpoint(list_checkpoints(run / "checkpoints")[-1][1])
    assert any(k.startswith("model.g.") for k in tensors) and any(k.startswith("model.d.") for k in tensors)
    assert any(k.startswith("optim.d.") for k in tensors) and not any(k.startswith("ema.") for k in tensors)


def test_cli_refuses_flags_of_the_other_family(tmp_path, capsys):
    assert main(["train", "--run", str(tmp_path / "r"), "--model", "gan", "--schedule", "linear", "--dry-run"]) == 2
    assert "--schedule only applies to --model diffusion" in capsys.readouterr().err
    assert main(["train", "--run", str(tmp_path / "r"), "--d-steps", "2", "--dry-run"]) == 2
    assert "--d-steps only applies to --model gan" in capsys.readouterr().err
    assert main(["train", "--run", str(tmp_path / "r"), "--preset", "dcgan", "--model", "diffusion", "--dry-run"]) == 2


def _checkpoint_tensors(run: Path) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, meta = load_checkpoint(list_checkpoints(run / "checkpoints")[-1][1])
    return {k: v for k, v in tensors.items() if not k.startswith("rng.")}, meta


def test_resume_equals_uninterrupted(tmp_path):
    """N steps + resume + N steps ends with identical G, D, EMA and both optimisers (bitwise)."""
    config = small_config(train_steps=6, log_every=3, class_cond=True,
                          gan=dataclasses.replace(small_config().gan, ema=True, d_steps=2))
    train(config, tmp_path / "straight", log=quiet)
    train(config, tmp_path / "resumed", stop_after=3, log=quiet)
    assert [s for s, _ in list_checkpoints(tmp_path / "resumed" / "checkpoints")] == [3]
    train(config, tmp_path / "resumed", log=quiet)
    (a, meta_a), (b, meta_b) = _checkpoint_tensors(tmp_path / "straight"), _checkpoint_tensors(tmp_path / "resumed")
    for prefix in ("model.g.", "model.d.", "ema.g.", "optim.g.", "optim.d."):
        assert any(k.startswith(prefix) for k in a), prefix
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert meta_a["optimizers"] == meta_b["optimizers"]
    assert meta_a["emas"] == meta_b["emas"] == {"g": {"num_updates": 6}}
    assert meta_a["state"]["images_seen"] == meta_b["state"]["images_seen"] == 6 * 2 * 8
    assert [s["step"] for s in read_stats(tmp_path / "resumed" / "stats.jsonl")] == [3, 6]
    # the weights did move: a run that did nothing would also "resume exactly"
    fresh = Generator(DCGANConfig(resolution=32, z_dim=16, ngf=16, ndf=16, num_classes=4))
    assert not torch.equal(a["model.g.main.0.weight"], fresh.main[0].weight.detach())


def test_conflicting_gan_config_is_refused(tmp_path):
    train(small_config(train_steps=1), tmp_path / "run", log=quiet)
    with pytest.raises(UserError, match=r"gan\.ndf"):
        train(small_config(train_steps=1, gan=dataclasses.replace(small_config().gan, ndf=8)), tmp_path / "run")


def test_sample_is_per_seed_across_batch_sizes(tmp_path, capsys, trained_run):
    run = trained_run
    for batch in ("1", "3"):
        assert main(["sample", "--run", str(run), "--n", "3", "--batch", batch, "--seed", "7", "--steps", "5",
                     "--out", str(tmp_path / f"b{batch}")]) == 0
    assert "--steps ignored" in capsys.readouterr().out
    one = np.load(tmp_path / "b1" / "samples.npz", allow_pickle=False)
    three = np.load(tmp_path / "b3" / "samples.npz", allow_pickle=False)
    assert one["images"].shape == (3, 32, 32, 3)
    assert np.abs(one["images"].astype(int) - three["images"].astype(int)).max() <= 1  # BLAS batch paths
    assert one["images"].std() > 1  # not a constant image
    assert not np.array_equal(one["images"][0], one["images"][1])  # seeds 7 and 8 differ
    meta = json.loads(str(one["meta"]))
    assert meta["seed"] == 7 and meta["model"] == "gan" and len(meta["checkpoint_sha256"]) == 64
    assert meta["class"] == "all" and meta["ema"] is True  # a conditional G cycles through the classes
    # image k is G_ema(z from seed 7 + k, class k mod 4) with the generator in eval mode
    loaded = load_run(run)
    with torch.no_grad():
        expected = loaded.ema_model(latents([8], 16), torch.tensor([1]))
    got = torch.from_numpy(one["images"][1]).permute(2, 0, 1).float() / 127.5 - 1
    assert (got - expected[0]).abs().max() <= 1.01 / 127.5


def test_load_run_returns_the_generator_and_its_ema(trained_run):
    loaded = load_run(trained_run)
    assert loaded.is_gan and loaded.diffusion is None and isinstance(loaded.model, Generator)
    assert not loaded.model.training and not loaded.ema_model.training
    raw, ema = loaded.model.main[0].weight, loaded.ema_model.main[0].weight
    assert not torch.equal(raw, ema)  # the EMA lags the raw weights


def test_class_conditional_labels_change_the_image(tmp_path, trained_run):
    loaded = load_run(trained_run)
    assert loaded.num_classes == 4 and loaded.classes == ["day", "sunset", "night", "snow"]
    z = latents([0, 0], 16)
    with torch.no_grad():
        x = loaded.model(z, torch.tensor([0, 2]))
        same = loaded.model(z, torch.tensor([0, 0]))
    assert (x[0] - x[1]).abs().mean() > 0.1 * x[0].abs().mean() > 0
    torch.testing.assert_close(same[0], same[1])
    d = Discriminator(DCGANConfig(resolution=32, ngf=8, ndf=8, num_classes=4))
    with torch.no_grad():  # the projection term makes D's logit depend on the label too
        nn.init.normal_(d.embed.weight, 0.0, 1.0)
        logits = d.eval()(x[:1].repeat(2, 1, 1, 1), torch.tensor([1, 3]))
    assert (logits[0] - logits[1]).abs() > 1e-4
    assert main(["sample", "--run", str(trained_run), "--n", "2", "--class", "night",
                 "--out", str(tmp_path / "night")]) == 0
    assert json.loads(str(np.load(tmp_path / "night" / "samples.npz")["meta"]))["class"] == "night"


def test_training_moves_the_discriminator(trained_run):
    """30 steps must move D(x) and D(G(z)) apart and lower L_D (fails if D never learns)."""
    stats = read_stats(trained_run / "stats.jsonl")
    assert [s["step"] for s in stats] == [10, 20, 30]
    assert stats[-1]["d_real"] - stats[-1]["d_fake"] > 0.1, stats[-1]
    assert stats[-1]["loss_d"] < stats[0]["loss_d"], (stats[0], stats[-1])
