"""Non-leaking augmentation (EDM App. C.4): the transforms, the label as a conditioning input (a zero
label is exactly the plain network, so samples are un-augmented), seeding and bit-exact resume."""

from __future__ import annotations

import math

import pytest
import torch

from landiff.errors import UserError
from landiff.generate import generate
from landiff.nets import UNet, UNetConfig
from landiff.runs.checkpoint import list_checkpoints, load_checkpoint
from landiff.runs.config import finalize, validate
from landiff.runs.load import load_run
from landiff.train import train
from landiff.train.augment import AUGMENT_DIM, _matrix, apply_augmentations, draw_augmentations
from tiny_runs import four_step_unet, tiny_gan


def _images(batch: int = 4, size: int = 8) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_probability_zero_changes_nothing():
    images = _images()
    labels, matrices = draw_augmentations(4, 0.0, torch.Generator().manual_seed(1))
    assert torch.equal(labels, torch.zeros(4, AUGMENT_DIM))
    assert apply_augmentations(images, matrices) is images


def test_draws_are_seeded_and_independent_of_p():
    a = draw_augmentations(64, 0.3, torch.Generator().manual_seed(5))
    b = draw_augmentations(64, 0.3, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    draw_augmentations(64, 0.3, g1), draw_augmentations(64, 0.9, g2)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))  # same stream after any p
    labels, _ = draw_augmentations(4000, 0.5, torch.Generator().manual_seed(0))
    assert 0.22 < (labels[:, 0] != 0).float().mean().item() < 0.28  # p · ½: x-flip is a coin flip when it applies
    assert 0.45 < (labels[:, 2] != 0).float().mean().item() < 0.55  # scale applies with probability p


def _one(flip_x=0.0, flip_y=0.0, log_scale=0.0, theta=0.0, log_aniso=0.0, phi=0.0, shift=(0.0, 0.0)) -> torch.Tensor:
    t = lambda v: torch.tensor([float(v)], dtype=torch.float64)  # noqa: E731
    return _matrix(t(flip_x), t(flip_y), t(log_scale), t(theta), t(log_aniso), t(phi),
                   torch.tensor([shift], dtype=torch.float64))


def test_flips_rotations_and_translations_move_pixels_as_labelled():
    images = _images(1)
    torch.testing.assert_close(apply_augmentations(images, _one(flip_x=1)), images.flip(3))
    torch.testing.assert_close(apply_augmentations(images, _one(flip_y=1)), images.flip(2))
    # +90° in (x right, y down) coordinates: clockwise on screen, torch.rot90 with k = −1
    torch.testing.assert_close(apply_augmentations(images, _one(theta=math.pi / 2)), images.rot90(-1, dims=(2, 3)),
                               atol=1e-5, rtol=0)
    moved = apply_augmentations(images, _one(shift=(1 / 8, 0.0)))  # 2·shift = one pixel of 8 in [−1, 1] units
    torch.testing.assert_close(moved[..., 1:], images[..., :-1], atol=1e-5, rtol=0)
    assert torch.equal(apply_augmentations(images, _one()), images)


def test_the_label_conditions_the_net_and_zero_is_the_plain_net():
    torch.manual_seed(0)
    net = UNet(UNetConfig(resolution=8, base_channels=16, channel_mult=(1, 2), num_res_blocks=1,
                          attention_resolutions=(), augment_dim=AUGMENT_DIM)).eval()
    with torch.no_grad():
        for p in net.parameters():  # the output conv starts at zero; make the output depend on its inputs
            p.add_(torch.randn_like(p) * 0.05)
        x, t = torch.randn(2, 3, 8, 8), torch.tensor([10, 500])
        plain = net(x, t)
        assert torch.equal(net(x, t, augment_labels=torch.zeros(2, AUGMENT_DIM)), plain)
        labels, _ = draw_augmentations(2, 1.0, torch.Generator().manual_seed(3))
        assert not torch.allclose(net(x, t, augment_labels=labels), plain)
    with pytest.raises(UserError, match="augment_dim=0"):
        UNet(UNetConfig(resolution=8, base_channels=16, channel_mult=(1, 2)))(x, t, augment_labels=labels)


def test_gan_runs_refuse_augment_and_diffusion_nets_get_the_label():
    with pytest.raises(UserError, match="--augment"):
        validate(tiny_gan(augment=0.1))
    assert finalize(four_step_unet(augment=0.12), 0).net.augment_dim == AUGMENT_DIM
    assert finalize(four_step_unet(), 0).net.augment_dim == 0


def test_an_augmented_run_resumes_exactly_and_samples_without_labels(tmp_path):
    config = four_step_unet(augment=0.5, checkpoint_every=100)
    train(config, tmp_path / "straight", log=lambda _: None)
    train(config, tmp_path / "resumed", stop_after=2, log=lambda _: None)
    train(config, tmp_path / "resumed", log=lambda _: None)
    a, _ = load_checkpoint(list_checkpoints(tmp_path / "straight" / "checkpoints")[-1][1])
    b, _ = load_checkpoint(list_checkpoints(tmp_path / "resumed" / "checkpoints")[-1][1])
    assert "model.net.augment_emb.weight" in a
    for key in a:
        if not key.startswith("rng."):
            assert torch.equal(a[key], b[key]), key
    plain = four_step_unet(checkpoint_every=100)
    train(plain, tmp_path / "plain", log=lambda _: None)
    c, _ = load_checkpoint(list_checkpoints(tmp_path / "plain" / "checkpoints")[-1][1])
    assert not torch.equal(a["model.net.in_conv.weight"], c["model.net.in_conv.weight"])  # augmentation was applied
    images = generate(load_run(tmp_path / "straight"), [0, 1], steps=3).images
    assert images.shape == (2, 16, 16, 3)
