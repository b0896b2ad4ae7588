"""The EDM formulation (Karras et al. 2022) and the discrete process's min-SNR weighting and log-normal
timesteps: the formulas by hand, every sampler on the EDM sampling table (Gaussian data, whose
optimal denoiser is known), the refusals, and bit-exact resume with each new option."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from landiff.cli.main import main
from landiff.diffusion import EDMNetwork, EDMProcess, GaussianDiffusion, LogNormalSampler, SigmaSampler, beta_schedule
from landiff.diffusion.edm import NOISE_EMBEDDING_SCALE
from landiff.errors import UserError
from landiff.runs.checkpoint import list_checkpoints, load_checkpoint
from landiff.runs.config import DiffusionConfig, validate
from landiff.runs.load import load_run
from landiff.samplers import Churn, sample
from landiff.train import train
from test_samplers import MU, SHAPE, S, _assert_moments
from tiny_runs import four_step_unet

N = 2000


def test_preconditioning_is_edm_table_1():
    """c_skip, c_out, c_in, c_noise and λ at σ = σ_d = 0.5 and at σ = 2, from the paper's formulas by hand."""
    process = EDMProcess()
    half = torch.tensor([0.5], dtype=torch.float64)
    assert process.c_skip(half).item() == pytest.approx(0.5)
    assert process.c_out(half).item() == pytest.approx(0.25 / math.sqrt(0.5))
    assert process.c_in(half).item() == pytest.approx(1 / math.sqrt(0.5))
    assert process.c_noise(half).item() == pytest.approx(math.log(0.5) / 4)
    assert process.loss_weight(half).item() == pytest.approx(8.0)
    two = torch.tensor([2.0], dtype=torch.float64)
    assert process.c_skip(two).item() == pytest.approx(0.25 / 4.25)
    assert process.c_out(two).item() == pytest.approx(1.0 / math.sqrt(4.25))
    assert process.c_in(two).item() == pytest.approx(1.0 / math.sqrt(4.25))
    sigma = torch.logspace(-3, 2, 11, dtype=torch.float64)  # λ = 1 / c_out² everywhere
    torch.testing.assert_close(process.loss_weight(sigma), 1.0 / process.c_out(sigma) ** 2)
    other = EDMProcess(sigma_data=1.0)
    assert other.c_skip(two).item() == pytest.approx(1 / 5) and other.c_out(two).item() == pytest.approx(2 / math.sqrt(5))


def test_denoise_and_loss_are_the_preconditioned_network():
    """D = c_skip x + c_out F(c_in x, scale·c_noise), and the loss λ‖D − x0‖² is ‖F − F_target‖² (EDM eq. 8)."""
    process = EDMProcess()
    seen = {}

    def net(x_in: torch.Tensor, noise_label: torch.Tensor) -> torch.Tensor:
        seen.update(x_in=x_in, label=noise_label)
        return torch.full_like(x_in, 0.3)

    g = torch.Generator().manual_seed(0)
    x0, noise = torch.rand(3, 2, 4, 4, generator=g) * 2 - 1, torch.randn(3, 2, 4, 4, generator=g)
    sigma = torch.tensor([0.01, 0.7, 30.0], dtype=torch.float64)
    losses = process.training_losses(net, x0, sigma, noise)
    s = sigma.float().view(-1, 1, 1, 1)
    x = x0 + s * noise
    torch.testing.assert_close(seen["x_in"], x / (s**2 + 0.25).sqrt())
    torch.testing.assert_close(seen["label"], NOISE_EMBEDDING_SCALE * sigma.float().log() / 4)
    target = (x0 - 0.25 / (s**2 + 0.25) * x) / (s * 0.5 / (s**2 + 0.25).sqrt())
    torch.testing.assert_close(losses.loss, (0.3 - target).square().mean(dim=(1, 2, 3)), rtol=1e-4, atol=1e-5)
    denoised = process.denoise(net, x, sigma)
    torch.testing.assert_close(losses.mse, (denoised - x0).square().mean(dim=(1, 2, 3)))
    assert losses.vb is None


class IdealF:
    """The network output F whose preconditioned D is the optimum for x0 ~ N(μ, s²): D* = μ + s²/(s²+σ²)(x − μ).
    It reads σ back from the noise label and x from c_in x, so it is exactly what training would converge to."""

    def __init__(self, process: EDMProcess) -> None:
        self.process = process

    def __call__(self, x_in: torch.Tensor, label: torch.Tensor, **kwargs) -> torch.Tensor:
        sigma = (4 * label.double() / NOISE_EMBEDDING_SCALE).exp().view(-1, 1, 1, 1)
        x = x_in.double() * (sigma**2 + self.process.sigma_data**2).sqrt()
        mu, s2 = MU.double(), S.double() ** 2
        ideal = mu + s2 / (s2 + sigma**2) * (x - mu)
        return ((ideal - self.process.c_skip(sigma) * x) / self.process.c_out(sigma)).to(x_in.dtype)


def test_edm_network_reads_its_table():
    """At table level t the model is D(x_t √(1 + σ_t²); σ_t): the VP input mapped to the VE one."""
    process = EDMProcess(num_levels=50)
    model = EDMNetwork(IdealF(process), process)
    sigmas = process.sigmas()
    assert sigmas[0] == pytest.approx(0.002) and sigmas[-1] == pytest.approx(80.0)
    assert np.allclose(np.diff(np.log(sigmas)), math.log(40_000) / 49)
    diffusion = process.sampling_process()
    np.testing.assert_allclose(diffusion.alphas_cumprod, 1 / (1 + sigmas**2), rtol=1e-12)
    assert diffusion.prediction == "x0"
    x_t, t = torch.randn(2, *SHAPE), torch.tensor([3, 40])
    s = torch.from_numpy(sigmas)[t].view(-1, 1, 1, 1)
    x = x_t.double() * (1 + s**2).sqrt()
    want = MU + S**2 / (S**2 + s**2) * (x - MU)
    torch.testing.assert_close(model(x_t, t).double(), want, rtol=1e-4, atol=1e-5)
    assert process.level(torch.from_numpy(sigmas[[0, 7, 49]])).tolist() == [0, 7, 49]


@pytest.mark.parametrize("sampler, steps, extra", [
    ("dpm++", 50, {}), ("heun", 99, {}), ("heun", 199, {"churn": Churn(s_churn=10.0)}), ("dpm++sde", 100, {}),
    ("ddim", 250, {}), ("ddpm", 1000, {}),  # first order: at 100 / 250 steps still −5 / −4 % in variance
])
def test_every_sampler_draws_the_data_from_an_edm_model(sampler, steps, extra):
    """The optimal EDM denoiser on its 1000-level table: every sampler reproduces the data's moments."""
    torch.set_num_threads(1)
    process = EDMProcess()
    x = sample(EDMNetwork(IdealF(process), process), process.sampling_process(), SHAPE, range(N), sampler=sampler,
               steps=steps, clip_denoised=False, **extra)
    _assert_moments(x, MU.numpy(), S.numpy() ** 2)


def test_sigma_sampler_is_log_normal_and_seeded():
    process = EDMProcess(p_mean=-0.4, p_std=0.8)
    draw = SigmaSampler(process)
    sigma, weights = draw.sample(20_000, torch.Generator().manual_seed(3))
    again, _ = draw.sample(20_000, torch.Generator().manual_seed(3))
    assert torch.equal(sigma, again) and torch.equal(weights, torch.ones(20_000))
    assert sigma.log().mean().item() == pytest.approx(-0.4, abs=0.03)
    assert sigma.log().std().item() == pytest.approx(0.8, abs=0.03)
    with pytest.raises(UserError, match="noise-level sampler state"):
        SigmaSampler(EDMProcess()).load_state_dict(draw.state_dict())


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_min_snr_weights_by_hand(prediction):
    """min(SNR, γ) on the x0 error, hence /SNR for ε and /(SNR + 1) for v (Hang et al. 2023, eq. 4 and §3.4)."""
    betas = beta_schedule("cosine", 100)
    diffusion = GaussianDiffusion(betas, prediction=prediction, weighting="min-snr", snr_gamma=5.0)
    t = torch.tensor([0, 10, 50, 99])
    got = diffusion.mse_weights(t).numpy()
    abar = np.cumprod(1 - betas)[t.numpy()]
    snr = abar / (1 - abar)
    want = {"eps": np.minimum(snr, 5) / snr, "x0": np.minimum(snr, 5), "v": np.minimum(snr, 5) / (snr + 1)}[prediction]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    if prediction == "eps":
        assert got[0] < 1e-2  # the clean end is down-weighted for ε
    assert np.all(GaussianDiffusion(betas, prediction=prediction).mse_weights(t).numpy() == 1.0)


def test_min_snr_weights_the_mse_term_only():
    betas = beta_schedule("cosine", 50)
    plain = GaussianDiffusion(betas, variance="learned_range", loss="hybrid")
    weighted = GaussianDiffusion(betas, variance="learned_range", loss="hybrid", weighting="min-snr")
    g = torch.Generator().manual_seed(1)
    x0, noise, t = torch.rand(4, 2, 4, 4, generator=g) * 2 - 1, torch.randn(4, 2, 4, 4, generator=g), torch.tensor([0, 5, 20, 49])

    def model(x, t):
        return torch.cat([0.5 * x, torch.zeros_like(x)], dim=1)

    a, b = plain.training_losses(model, x0, t, noise), weighted.training_losses(model, x0, t, noise)
    torch.testing.assert_close(a.mse, b.mse)
    torch.testing.assert_close(a.vb, b.vb)
    w = weighted.mse_weights(t).float()
    torch.testing.assert_close(b.loss - a.loss, (w - 1) * a.mse)
    with pytest.raises(UserError, match="min-SNR"):
        GaussianDiffusion(betas, loss="kl", weighting="min-snr")
    with pytest.raises(UserError, match="min-SNR"):
        GaussianDiffusion(betas, prediction="mean", weighting="min-snr")


def test_log_normal_timesteps_follow_ln_sigma():
    """p_t is the N(P_mean, P_std²) mass of level t's share of the ln σ axis; draws are seeded, weights 1."""
    diffusion = GaussianDiffusion(beta_schedule("cosine", 1000))
    sampler = LogNormalSampler(diffusion.alphas_cumprod, -1.2, 1.2)
    p = sampler.probabilities()
    assert p.sum() == pytest.approx(1.0) and np.all(p >= 0)
    log_sigma = 0.5 * np.log((1 - diffusion.alphas_cumprod) / diffusion.alphas_cumprod)
    assert (p * log_sigma).sum() == pytest.approx(-1.2, abs=0.02)  # the levels cover ±4 standard deviations
    assert math.sqrt((p * (log_sigma + 1.2) ** 2).sum()) == pytest.approx(1.2, abs=0.02)
    t, w = sampler.sample(5000, torch.Generator().manual_seed(0))
    t2, _ = sampler.sample(5000, torch.Generator().manual_seed(0))
    assert torch.equal(t, t2) and torch.equal(w, torch.ones(5000))
    assert float(log_sigma[t.numpy()].mean()) == pytest.approx(-1.2, abs=0.06)
    with pytest.raises(UserError, match="p_mean"):
        LogNormalSampler(diffusion.alphas_cumprod, 0.0, 1.2).load_state_dict(sampler.state_dict())


@pytest.mark.parametrize("changes, match", [
    (dict(formulation="edm", prediction="v"), "--prediction only apply to --formulation discrete"),
    (dict(formulation="edm", timestep_sampler="log-normal", loss="mse"), "--timestep-sampler only apply"),
    (dict(sigma_data=0.7), "--sigma-data only applies to --formulation edm"),
    (dict(p_mean=0.0), "--p-mean/--p-std"),
    (dict(weighting="min-snr", loss="kl"), "--weighting min-snr"),
    (dict(weighting="min-snr", prediction="mean"), "--weighting min-snr"),
    (dict(snr_gamma=2.0), "--snr-gamma only applies"),
    (dict(timestep_sampler="log-normal", loss="kl"), "--timestep-sampler log-normal with --loss kl"),
])
def test_combinations_that_would_not_train_what_they_say_are_refused(changes, match):
    config = four_step_unet()
    with pytest.raises(UserError, match=match):
        validate(dataclasses.replace(config, diffusion=dataclasses.replace(DiffusionConfig(num_steps=50), **changes)))


def test_allowed_combinations_validate():
    config = four_step_unet()
    for changes in (dict(formulation="edm", p_mean=-0.5, sigma_data=0.4), dict(timestep_sampler="log-normal", p_std=1.0),
                    dict(weighting="min-snr", snr_gamma=3.0, prediction="v"),
                    dict(weighting="min-snr", variance="learned_range", loss="hybrid", timestep_sampler="loss-aware")):
        validate(dataclasses.replace(config, diffusion=dataclasses.replace(DiffusionConfig(num_steps=50), **changes)))


def test_cli_edm_on_the_tiny_preset_drops_its_discrete_choices(capsys):
    """``--preset tiny --formulation edm``: the preset's v-prediction is not EDM's, so it is reset; a
    discrete flag the user typed is refused instead."""
    assert main(["train", "--run", "unused", "--formulation", "edm", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert '"formulation": "edm"' in out and '"prediction": "eps"' in out
    assert main(["train", "--run", "unused", "--formulation", "edm", "--prediction", "v", "--dry-run"]) == 2
    assert "--prediction only apply to --formulation discrete" in capsys.readouterr().err


def _weights(run) -> dict[str, torch.Tensor]:
    tensors, meta = load_checkpoint(list_checkpoints(run / "checkpoints")[-1][1])
    return {k: v for k, v in tensors.items() if not k.startswith("rng.")}, meta


@pytest.mark.parametrize("process", [
    DiffusionConfig(num_steps=50, formulation="edm", p_mean=-0.8),
    DiffusionConfig(num_steps=50, prediction="v", weighting="min-snr", timestep_sampler="log-normal"),
], ids=["edm", "min-snr+log-normal"])
def test_resume_is_bit_exact_with_the_new_options(tmp_path, process):
    config = four_step_unet(diffusion=process, checkpoint_every=100)
    train(config, tmp_path / "straight", log=lambda _: None)
    train(config, tmp_path / "resumed", stop_after=2, log=lambda _: None)
    train(config, tmp_path / "resumed", log=lambda _: None)
    (a, meta_a), (b, meta_b) = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and any(k.startswith("ema.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert meta_a["extra"] == meta_b["extra"]


def test_an_edm_run_samples_and_refuses_nll(tmp_path, capsys):
    run = tmp_path / "run"
    train(four_step_unet(diffusion=DiffusionConfig(num_steps=100, formulation="edm"), train_steps=2), run,
          log=lambda _: None)
    loaded = load_run(run)
    assert isinstance(loaded.ema_model, EDMNetwork) and loaded.diffusion.prediction == "x0"
    for sampler, steps in (("heun", "5"), ("dpm++sde", "4"), ("ddpm", "100")):
        assert main(["sample", "--run", str(run), "--n", "2", "--sampler", sampler, "--steps", steps,
                     "--out", str(tmp_path / sampler)]) == 0
        images = np.load(tmp_path / sampler / "samples.npz", allow_pickle=False)["images"]
        assert images.shape == (2, 16, 16, 3) and images.std() > 0
    assert main(["eval", "nll", "--run", str(run), "--n", "2"]) == 2
    assert "has no likelihood bound" in capsys.readouterr().err
