"""The stronger GAN flavours: hinge and relativistic losses, spectral normalisation, lazy R1,
DiffAugment, standing batch-norm statistics; each recorded in the config, resumable bit for bit."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landiff.cli.main import main
from landiff.errors import UserError
from landiff.nets import DCGANConfig, Discriminator, Generator, latents
from landiff.nets.dcgan import standing_statistics
from landiff.nets.diffaugment import DiffAugment, parse_policy
from landiff.runs.checkpoint import list_checkpoints, load_checkpoint
from landiff.runs.config import validate
from landiff.runs.run_dir import read_stats
from landiff.train import load_run, train
from landiff.train.gan_trainer import d_loss, g_loss
from tiny_runs import small_dcgan, tiny_gan


def quiet(_: str) -> None:
    pass


def strong(**gan_changes) -> dict:
    """GANConfig changes of a run with every flavour on."""
    base = dict(loss="hinge", spectral_norm=True, r1_gamma=0.5, r1_every=2, diffaugment="color,translation,cutout",
                ema=True)
    return {**base, **gan_changes}


def test_the_losses_are_the_papers():
    real, fake = torch.tensor([2.0, -0.5]), torch.tensor([0.3, -3.0])
    assert d_loss("ns", real, fake) == pytest.approx(float(F.softplus(-real).mean() + F.softplus(fake).mean()))
    assert d_loss("hinge", real, fake) == pytest.approx(((0.0 + 1.5) / 2) + ((1.3 + 0.0) / 2))
    assert d_loss("rsgan", real, fake) == pytest.approx(float(F.softplus(fake - real).mean()))
    assert g_loss("ns", fake, None) == pytest.approx(float(F.softplus(-fake).mean()))
    assert g_loss("hinge", fake, None) == pytest.approx(1.35)
    assert g_loss("rsgan", fake, real) == pytest.approx(float(F.softplus(real - fake).mean()))


def test_spectral_norm_bounds_every_layer_and_drops_batch_norm():
    d = Discriminator(DCGANConfig(resolution=32, ngf=8, ndf=8, z_dim=8, num_classes=3, spectral_norm=True))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    x = torch.randn(4, 3, 32, 32)
    for _ in range(30):  # the power iteration converges over forward passes
        d(x, torch.tensor([0, 1, 2, 0]))
    d.eval()
    for m in d.modules():
        if isinstance(m, nn.Conv2d):
            sigma = float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2))
            assert sigma == pytest.approx(1.0, abs=0.05)
    plain = Discriminator(DCGANConfig(resolution=32, ngf=8, ndf=8, z_dim=8))
    assert any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())


def test_diffaugment_is_differentiable_seeded_and_changes_images():
    augment = DiffAugment("color,translation,cutout")
    x = (torch.rand(6, 3, 32, 32) * 2 - 1).requires_grad_(True)
    u = augment.draw(6, torch.Generator().manual_seed(3))
    y = augment(x, u)
    assert torch.equal(y, augment(x, augment.draw(6, torch.Generator().manual_seed(3))))
    assert not torch.allclose(y, x)
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    cut = DiffAugment("cutout")(torch.ones(1, 3, 32, 32), torch.tensor([[0.5, 0.5]]))
    assert (cut == 0).sum() == 3 * 16 * 16  # a square of half the side, inside the image
    shifted = DiffAugment("translation")(torch.ones(1, 1, 32, 32), torch.tensor([[0.0, 0.5]]))
    assert (shifted[0, 0, -4:] == 0).all() and (shifted[0, 0, :-4] == 1).all()  # 4 rows (⅛ of 32) up
    assert parse_policy("cutout, color") == ("color", "cutout") and parse_policy("") == ()
    with pytest.raises(ValueError):
        parse_policy("colour")


def test_standing_statistics_depend_only_on_the_weights():
    g = Generator(DCGANConfig(resolution=32, ngf=8, ndf=8, z_dim=8))
    g.train()
    for _ in range(3):  # running statistics of some other weights
        g(torch.randn(16, 8) * 5 + 2)
    first = {k: v.clone() for k, v in standing_statistics(g).state_dict().items()}
    g.train()
    g(torch.randn(16, 8) * 3)
    second = standing_statistics(g).state_dict()
    assert not g.training
    norm = next(m for m in g.modules() if isinstance(m, nn.BatchNorm2d))
    assert norm.momentum == 0.1  # restored
    for key, value in first.items():
        if key.endswith(("running_mean", "running_var")):
            torch.testing.assert_close(second[key], value)
    with torch.no_grad():
        h = g.main[0](latents(range(2**31 - 1, 2**31 - 1 + 64), 8)[:, :, None, None])
    assert first["main.1.running_mean"] != pytest.approx(torch.zeros(h.shape[1]))


def test_every_flavour_trains_and_resumes_bit_exactly(tmp_path):
    config = small_dcgan(train_steps=6, log_every=3, gan=dataclasses.replace(small_dcgan().gan, **strong(d_steps=2)))
    validate(config)
    train(config, tmp_path / "straight", log=quiet)
    train(config, tmp_path / "resumed", stop_after=3, log=quiet)
    train(config, tmp_path / "resumed", log=quiet)
    a, _ = load_checkpoint(list_checkpoints(tmp_path / "straight" / "checkpoints")[-1][1])
    b, _ = load_checkpoint(list_checkpoints(tmp_path / "resumed" / "checkpoints")[-1][1])
    assert any("parametrizations.weight.original" in k for k in a) and any(k.endswith("_u") for k in a)
    for key in a:
        if not key.startswith("rng."):
            assert torch.equal(a[key], b[key]), key
    records = read_stats(tmp_path / "straight" / "stats.jsonl")
    assert all(r["r1"] > 0 for r in records)  # the penalty ran (every 2nd of 2 D updates per step)
    loaded = load_run(tmp_path / "straight")
    assert loaded.config.gan.loss == "hinge" and loaded.config.gan.diffaugment == "color,translation,cutout"
    images = loaded.ema_model(latents(range(4), loaded.config.gan.z_dim), None)
    assert images.std() > 0.05  # standing statistics: not the grey of mismatched batch norm


@pytest.mark.parametrize("changes", [dict(loss="rsgan"), dict(diffaugment="translation"), dict(r1_gamma=1.0)])
def test_each_flavour_changes_what_trains(tmp_path, changes):
    base = small_dcgan(train_steps=2, preview_count=0)
    train(base, tmp_path / "base", log=quiet)
    train(dataclasses.replace(base, gan=dataclasses.replace(base.gan, **changes)), tmp_path / "other", log=quiet)
    a, _ = load_checkpoint(list_checkpoints(tmp_path / "base" / "checkpoints")[-1][1])
    b, _ = load_checkpoint(list_checkpoints(tmp_path / "other" / "checkpoints")[-1][1])
    assert not torch.equal(a["model.d.features.0.weight"], b["model.d.features.0.weight"])


def test_flavour_flags_are_recorded_and_bad_values_refused(tmp_path, capsys):
    base = ["train", "--run", str(tmp_path / "g"), "--model", "gan", "--resolution", "32", "--ngf", "8", "--ndf", "8",
            "--batch", "4", "--steps", "1", "--synthetic-n", "8", "--preview-count", "0"]
    assert main([*base, "--gan-loss", "hinge", "--spectral-norm", "--r1-gamma", "0.1", "--r1-every", "4",
                 "--diffaugment", "translation,color", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for text in ('"loss": "hinge"', '"spectral_norm": true', '"r1_gamma": 0.1', '"r1_every": 4',
                 '"diffaugment": "translation,color"'):
        assert text in out
    for flags, message in ((["--diffaugment", "colour"], "--diffaugment"), (["--r1-every", "4"], "--r1-gamma"),
                           (["--gan-loss", "wgan"], "--gan-loss")):
        assert main([*base, *flags]) == 2, flags
        assert message in capsys.readouterr().err
    assert main(["train", "--run", str(tmp_path / "d"), "--spectral-norm", "--dry-run"]) == 2
    assert "--model gan" in capsys.readouterr().err
    with pytest.raises(UserError, match="no effect on a diffusion run"):
        from tiny_runs import unet16

        base_diffusion = unet16()
        validate(dataclasses.replace(base_diffusion, gan=dataclasses.replace(base_diffusion.gan, loss="hinge")))
    assert tiny_gan().gan.loss == "ns" and not tiny_gan().gan.spectral_norm  # DCGAN stays the paper's


def test_gan_strong_is_the_screens_winner_and_trains(tmp_path, monkeypatch):
    """The preset is the configuration benchmarks/gan_screen.py measured as ``sn-hinge-da``, and a
    run of it trains and samples its EMA of G."""
    import sys
    from pathlib import Path

    from landiff.runs.config import TUNING, recipe

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    sys.modules.pop("gan_screen", None)
    from gan_screen import ROUNDS, variant_config

    screened = variant_config("sn-hinge-da", "synthetic", 32, 503, 0, None)
    preset = recipe("gan-strong")
    assert preset.gan == screened.gan and preset.optim == screened.optim and preset.ema_decay == screened.ema_decay
    assert (preset.gan.loss, preset.gan.spectral_norm, preset.gan.ema) == ("hinge", True, True)
    assert preset.resolution == 32 and TUNING["gan-strong"] == sum(len(names) for names in ROUNDS.values())
    config = dataclasses.replace(preset, synthetic_n=64, preview_count=0, train_steps=2, checkpoint_every=2,
                                 optim=dataclasses.replace(preset.optim, batch=8),
                                 gan=dataclasses.replace(preset.gan, ngf=8, ndf=8))
    train(config, tmp_path / "run", log=quiet)
    loaded = load_run(tmp_path / "run", device="cpu")
    assert loaded.config.gan.diffaugment == "color,translation,cutout" and loaded.state.step == 2
