"""The ADM UNet: shapes for every option, zero init, class conditioning, presets, errors, layouts."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from landiff.cli.main import main as cli_main
from landiff.cli.presets import meta_parameter_count
from landiff.errors import UserError
from landiff.nets import PAPER_COUNTS, PRESETS, UNet, UNetConfig, count_parameters, get_preset, with_overrides
from landiff.nets.layers import Downsample, ResBlock, group_norm, timestep_embedding

# A net small enough to run every combination in milliseconds: 8 channels, levels 16/8/4 px.
TINY = UNetConfig(
    resolution=16,
    base_channels=8,
    channel_mult=(1, 2, 2),
    num_res_blocks=1,
    attention_resolutions=(8,),
    num_heads=2,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These nets are so small that thread hand-offs cost more than the maths, badly so on a busy
    2-core machine (measured under load: this file in 13 s with one thread, 21 s with two)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Overwrites every parameter with seeded noise so the (zero-initialised) output is not trivial."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 0.2)
    return model.eval()


def _inputs(config: UNetConfig, batch: int = 2, height: int = 16, width: int = 16, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, config.in_channels, height, width, generator=gen)
    t = torch.randint(0, 1000, (batch,), generator=gen)
    return x, t


@pytest.mark.parametrize(
    "learn_sigma, updown, scale_shift, head_channels",
    [(ls, ud, ss, hc) for ls, ud, ss in itertools.product([False, True], repeat=3) for hc in (None, 4)],
)
def test_output_shape_for_each_option(learn_sigma, updown, scale_shift, head_channels):
    config = with_overrides(
        TINY,
        learn_sigma=learn_sigma,
        resblock_updown=updown,
        use_scale_shift_norm=scale_shift,
        head_channels=head_channels,
    )
    model = UNet(config)
    x, t = _inputs(config)
    out = model(x, t)
    assert out.shape == (2, 6 if learn_sigma else 3, 16, 16)
    assert config.out_channels == (6 if learn_sigma else 3)
    # The options change the structure they claim to change.
    res_blocks = [m for m in model.modules() if isinstance(m, ResBlock)]
    assert any(isinstance(m, Downsample) for m in model.modules()) == (not updown)
    assert sum(b.resample == "down" for b in res_blocks) == (2 if updown else 0)
    assert all(b.emb_proj.out_features == (2 if scale_shift else 1) * b.out_conv.out_channels for b in res_blocks)


def test_head_channels_wins_over_num_heads():
    config = with_overrides(TINY, num_heads=2, head_channels=4)
    model = UNet(config)
    heads = [m.num_heads for m in model.modules() if hasattr(m, "num_heads")]
    # Attention at 8 px (16 channels) in the encoder/decoder and in the 4 px middle (16 channels).
    assert heads and all(h == 16 // 4 for h in heads)
    assert all(h == 2 for h in (m.num_heads for m in UNet(TINY).modules() if hasattr(m, "num_heads")))


def test_non_square_input_and_float_timesteps():
    model = _randomise(UNet(with_overrides(TINY, resblock_updown=True)))
    x, _ = _inputs(model.config, height=32, width=48)
    out = model(x, torch.tensor([0.5, 999.0]))
    assert out.shape == (2, 3, 32, 48)
    assert torch.isfinite(out).all()
    rounded = model(x, torch.tensor([0, 999]))  # a fractional t is not truncated to an integer
    assert (out[0] - rounded[0]).abs().max() > 1e-6
    torch.testing.assert_close(out[1], rounded[1], rtol=0, atol=1e-6)


def test_output_is_exactly_zero_at_init_then_nonzero_after_perturbing():
    model = UNet(with_overrides(TINY, num_classes=3, learn_sigma=True, resblock_updown=True))
    x, t = _inputs(model.config)
    assert torch.equal(model(x, t), torch.zeros(2, 6, 16, 16))
    _randomise(model)
    assert model(x, t).abs().max() > 1e-3


def test_class_labels_change_output_only_when_they_differ():
    model = _randomise(UNet(with_overrides(TINY, num_classes=3)))
    x, t = _inputs(model.config)
    same_a = model(x, t, torch.tensor([0, 1]))
    same_b = model(x, t, torch.tensor([0, 1]))
    other = model(x, t, torch.tensor([2, 1]))
    assert torch.equal(same_a, same_b)
    assert (same_a[0] - other[0]).abs().max() > 1e-3  # label changed in sample 0
    torch.testing.assert_close(same_a[1], other[1], rtol=1e-5, atol=1e-5)  # sample 1 untouched
    torch.testing.assert_close(model(x, t, None), model(x, t, torch.tensor([3, 3])), rtol=0, atol=0)


def test_labels_for_unconditional_net_raise():
    model = UNet(TINY)
    x, t = _inputs(TINY)
    with pytest.raises(UserError, match="num_classes"):
        model(x, t, torch.tensor([0, 1]))


def test_channels_last_matches_contiguous():
    model = _randomise(UNet(with_overrides(TINY, resblock_updown=True, num_classes=2)))
    x, t = _inputs(model.config, height=16, width=32)
    y = torch.tensor([0, 1])
    reference = model(x, t, y)
    torch.testing.assert_close(model(x.to(memory_format=torch.channels_last), t, y), reference, rtol=0, atol=1e-5)
    model = model.to(memory_format=torch.channels_last)
    out = model(x.to(memory_format=torch.channels_last), t, y)
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-5)


def test_invalid_resolution_names_valid_sizes():
    model = UNet(TINY)  # 3 levels: sides must be multiples of 4
    x = torch.zeros(1, 3, 18, 16)
    with pytest.raises(UserError, match=r"multiples of 4, e\.g\. 16, 20"):
        model(x, torch.zeros(1))


def test_invalid_config_values_raise_user_errors():
    with pytest.raises(UserError, match="choose from 16, 8, 4"):
        with_overrides(TINY, attention_resolutions=(12,))
    with pytest.raises(UserError, match="head_channels=3"):
        with_overrides(TINY, head_channels=3)
    with pytest.raises(UserError, match="valid fields"):
        with_overrides(TINY, channels=3)
    with pytest.raises(UserError, match="dropout"):
        with_overrides(TINY, dropout=1.5)
    with pytest.raises(UserError, match="multiple of 4"):
        with_overrides(TINY, resolution=18)


def test_config_round_trips_through_dict():
    config = get_preset("adm-64")
    loaded = UNetConfig.from_dict({k: list(v) if isinstance(v, tuple) else v for k, v in config.to_dict().items()})
    assert loaded == config


def test_unknown_preset_lists_names():
    with pytest.raises(UserError, match="tiny, small, ddpm-cifar, iddpm-cifar, adm-64"):
        get_preset("huge")


# Exact counts of our architecture, computed once on the meta device (see presets.py).
EXPECTED_PARAMS = {
    "tiny": 2_406_755,
    "small": 6_231_747,
    "ddpm-cifar": 35_746_307,
    "iddpm-cifar": 52_546_438,
    "adm-64": 295_905_222,
}


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_parameter_counts(name):
    assert meta_parameter_count(get_preset(name)) == EXPECTED_PARAMS[name]


def test_paper_counts_within_tolerance():
    assert EXPECTED_PARAMS["tiny"] <= 3_000_000
    ddpm = (EXPECTED_PARAMS["ddpm-cifar"] - PAPER_COUNTS["ddpm-cifar"].params) / PAPER_COUNTS["ddpm-cifar"].params
    adm = (EXPECTED_PARAMS["adm-64"] - PAPER_COUNTS["adm-64"].params) / PAPER_COUNTS["adm-64"].params
    assert 0 < ddpm < 0.0015  # 35.746 M vs 35.7 M: the paper rounds to 0.1 M
    assert -0.0005 < adm < 0  # 295.905 M vs 296 M: the paper rounds to 1 M
    # The only difference from ADM: one embedding row (4 x 192 = 768) for the null label.
    with torch.device("meta"):
        adm = UNet(get_preset("adm-64"))
    assert tuple(adm.class_emb.weight.shape) == (1001, 768)
    assert count_parameters(adm) - 768 == 295_904_454


def test_ddpm_count_matches_diffusers_ddpm_cifar10_layout():
    """diffusers' UNet2DModel in the layout of google/ddpm-cifar10-32 is DDPM's net; same count."""
    diffusers = pytest.importorskip("diffusers")
    with torch.device("meta"):
        reference = diffusers.UNet2DModel(
            sample_size=32,
            block_out_channels=(128, 256, 256, 256),
            layers_per_block=2,
            down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=None,
        )
    assert count_parameters(reference) == EXPECTED_PARAMS["ddpm-cifar"]


def test_count_parameters_matches_real_module():
    model = UNet(TINY)
    assert count_parameters(model) == sum(p.numel() for p in model.parameters()) == meta_parameter_count(TINY)


def test_group_norm_uses_largest_divisor_up_to_32():
    assert group_norm(128).num_groups == 32
    assert group_norm(48).num_groups == 24
    assert group_norm(8).num_groups == 8
    assert group_norm(7).num_groups == 7


def test_timestep_embedding_values():
    emb = timestep_embedding(torch.tensor([0, 3]), dim=6)
    assert emb.shape == (2, 6)
    torch.testing.assert_close(emb[0], torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0]))
    # Highest frequency is 1: the first cos/sin pair is cos(t), sin(t).
    torch.testing.assert_close(emb[1, 0], torch.cos(torch.tensor(3.0)))
    torch.testing.assert_close(emb[1, 3], torch.sin(torch.tensor(3.0)))
    # every frequency, by hand: f_k = 10000^(−k/3) = 1, 0.0464159, 0.00215443 for dim 6
    f = [1.0, 10000 ** (-1 / 3), 10000 ** (-2 / 3)]
    hand = [math.cos(3 * fk) for fk in f] + [math.sin(3 * fk) for fk in f]
    torch.testing.assert_close(emb[1], torch.tensor(hand), rtol=1e-6, atol=1e-6)
    # and diffusers' embedding with IDDPM's conventions (cos first, no frequency shift), odd width padded
    embeddings = pytest.importorskip("diffusers.models.embeddings")
    t = torch.tensor([0, 1, 17, 999, 0.5])
    theirs = embeddings.get_timestep_embedding(t, 128, flip_sin_to_cos=True, downscale_freq_shift=0)
    torch.testing.assert_close(timestep_embedding(t, 128), theirs, rtol=1e-5, atol=1e-5)
    odd = timestep_embedding(t, 7)
    torch.testing.assert_close(odd[:, :6], timestep_embedding(t, 6))
    assert torch.equal(odd[:, 6], torch.zeros(5))


def test_presets_command_prints_table(capsys):
    assert cli_main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "adm-64" in out and "295.91" in out and "-0.03%" in out
    assert "35.75" in out and "+0.13%" in out
    assert cli_main(["presets", "huge"]) == 2


def test_same_seed_same_weights_and_output():
    def build_and_run(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(seed)
        model = UNet(with_overrides(TINY, dropout=0.5))
        init = model.in_conv.weight.detach().clone()
        _randomise(model).train()  # dropout on: the output depends on the global seed as well
        x, t = _inputs(model.config)
        return init, model(x, t)

    init_a, out_a = build_and_run(123)
    init_b, out_b = build_and_run(123)
    init_c, out_c = build_and_run(124)
    assert torch.equal(init_a, init_b) and torch.equal(out_a, out_b)
    assert not torch.equal(init_a, init_c) and not torch.equal(out_a, out_c)
