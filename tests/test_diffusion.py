"""Closed-form checks of the diffusion process (DDPM / Improved DDPM maths)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from landiff.diffusion import (
    HYBRID_LAMBDA,
    LOSSES,
    PREDICTIONS,
    VARIANCES,
    GaussianDiffusion,
    LossAwareSampler,
    UniformSampler,
    beta_schedule,
    discretized_gaussian_log_likelihood,
    normal_kl,
    respace_betas,
    space_timesteps,
)
from landiff.errors import UserError


def _data(batch: int = 4, seed: int = 0) -> torch.Tensor:
    """Images quantised to 256 levels in [−1, 1], as the decoder assumes."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3, 4, 4), generator=g).double() / 127.5 - 1


def _perfect_eps_model(diffusion: GaussianDiffusion, x0: torch.Tensor, noise: torch.Tensor):
    """A network that returns the true ε of x_t (it knows x0), for the eps parametrisation."""

    def model(x_t, t_model):
        t = torch.as_tensor(np.searchsorted(diffusion.timestep_map, t_model.numpy()))
        return diffusion.predict_eps_from_x0(x_t, t, x0)

    return model


# ----------------------------------------------------------------- schedules
def test_linear_schedule_endpoints_and_rescaling():
    betas = beta_schedule("linear", 1000)
    assert betas.dtype == np.float64
    assert betas[0] == pytest.approx(1e-4) and betas[-1] == pytest.approx(0.02)
    alphas_cumprod = np.cumprod(1 - betas)
    assert alphas_cumprod[0] == pytest.approx(1 - 1e-4)
    assert alphas_cumprod[-1] == pytest.approx(4.0358e-5, rel=1e-3)  # DDPM's ᾱ_T at T = 1000
    # 1000/T rescaling keeps the end of the curve roughly where it was (diffusers' DDPMScheduler omits it).
    short = np.cumprod(1 - beta_schedule("linear", 250))
    assert short[-1] == pytest.approx(alphas_cumprod[-1], rel=0.3)
    assert np.prod(1 - np.linspace(1e-4, 0.02, 250)) > 1e-2  # without rescaling: far from pure noise


def test_cosine_schedule_matches_its_definition():
    T, s = 1000, 0.008
    betas = beta_schedule("cosine", T)
    alphas_cumprod = np.cumprod(1 - betas)
    f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 10, 500, 900):
        assert alphas_cumprod[t] == pytest.approx(f((t + 1) / T) / f(0), rel=1e-9)
    assert betas.max() <= 0.999 and betas[-1] == pytest.approx(0.999)
    assert alphas_cumprod[-1] < 1e-6


def test_unknown_schedule_is_a_user_error():
    with pytest.raises(UserError, match="--schedule"):
        beta_schedule("quadratic", 10)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="cosine"):
        beta_schedule("linear", 20)


# -------------------------------------------------------------- forward q
def test_q_sample_empirical_moments():
    d = GaussianDiffusion(beta_schedule("linear", 1000))
    x0 = torch.full((200_000, 1, 1, 1), 0.7, dtype=torch.float64)
    t = torch.full((len(x0),), 300)
    x_t = d.q_sample(x0, t, torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    abar = d.alphas_cumprod[300]
    assert x_t.mean().item() == pytest.approx(math.sqrt(abar) * 0.7, abs=4 * math.sqrt((1 - abar) / len(x0)))
    assert x_t.var().item() == pytest.approx(1 - abar, rel=0.01)


def test_q_posterior_is_the_bayes_product():
    """q(x_{t−1}|x_t,x0) ∝ q(x_t|x_{t−1}) q(x_{t−1}|x0): precision and mean of the product of Gaussians."""
    d = GaussianDiffusion(beta_schedule("cosine", 100))
    x0, x_t = _data(3, 1), torch.randn(3, 3, 4, 4, dtype=torch.float64)
    for step in (1, 7, 50, 99):
        t = torch.full((3,), step)
        beta, abar_prev = d.betas[step], d.alphas_cumprod[step - 1]
        precision = 1 / (1 - abar_prev) + (1 - beta) / beta
        mean = (math.sqrt(abar_prev) * x0 / (1 - abar_prev) + math.sqrt(1 - beta) * x_t / beta) / precision
        got_mean, got_var, got_logvar = d.q_posterior(x0, x_t, t)
        torch.testing.assert_close(got_mean, mean, rtol=1e-9, atol=1e-9)
        assert got_var[0, 0, 0, 0].item() == pytest.approx(1 / precision, rel=1e-9)
        assert got_logvar[0, 0, 0, 0].item() == pytest.approx(math.log(1 / precision), rel=1e-9)


def test_posterior_log_variance_is_clipped_at_t0():
    d = GaussianDiffusion(beta_schedule("linear", 1000))
    assert d.tables["posterior_variance"][0] == 0.0
    assert d.tables["posterior_log_variance_clipped"][0] == d.tables["posterior_log_variance_clipped"][1]
    assert d.tables["log_betas_large"][0] == pytest.approx(math.log(d.tables["posterior_variance"][1]))
    assert d.tables["log_betas_large"][5] == pytest.approx(math.log(d.betas[5]))


# ----------------------------------------------------------------- likelihood
def test_normal_kl_zero_for_equal_and_matches_torch():
    m, lv = torch.randn(10, dtype=torch.float64), torch.randn(10, dtype=torch.float64)
    assert torch.allclose(normal_kl(m, lv, m, lv), torch.zeros(10, dtype=torch.float64))
    m2, lv2 = torch.randn(10, dtype=torch.float64), torch.randn(10, dtype=torch.float64)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(m, (0.5 * lv).exp()), torch.distributions.Normal(m2, (0.5 * lv2).exp())
    )
    torch.testing.assert_close(normal_kl(m, lv, m2, lv2), ref)


@pytest.mark.parametrize("mean,log_scale", [(0.0, -4.0), (0.37, -2.0), (-0.99, 0.0), (1.2, -6.0)])
def test_decoder_bins_sum_to_one(mean, log_scale):
    x = torch.arange(256, dtype=torch.float64) / 127.5 - 1
    logp = discretized_gaussian_log_likelihood(x, torch.full_like(x, mean), torch.full_like(x, log_scale))
    assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-9)


# -------------------------------------------------------------------- losses
@pytest.mark.parametrize("prediction,variance,loss", list(itertools.product(PREDICTIONS, VARIANCES, LOSSES)))
def test_every_combination_gives_finite_per_example_terms(prediction, variance, loss):
    d = GaussianDiffusion(beta_schedule("cosine", 50), prediction=prediction, variance=variance, loss=loss)
    x0 = _data(4).float()
    weight = torch.nn.Parameter(torch.randn(1, d.output_channels(3), 1, 1) * 0.1)
    model = lambda x_t, t: torch.tanh(weight * x_t.repeat(1, weight.shape[1] // 3, 1, 1))  # noqa: E731
    out = d.training_losses(model, x0, torch.tensor([0, 1, 25, 49]))
    assert out.loss.shape == (4,) and out.vb.shape == (4,)
    assert torch.isfinite(out.loss).all() and torch.isfinite(out.vb).all()
    assert (out.mse is None) == (loss == "kl")
    if loss == "kl":
        torch.testing.assert_close(out.loss, out.vb * 50)
    elif loss == "hybrid":
        torch.testing.assert_close(out.loss, out.mse + 50 / 1000 * out.vb)  # λ·T with λ = 0.001 (IDDPM §3.1)
    else:
        torch.testing.assert_close(out.loss, out.mse)
    out.loss.sum().backward()
    assert torch.isfinite(weight.grad).all()


@pytest.mark.parametrize("T", [100, 4000])
def test_hybrid_vb_weight_is_lambda_times_T(T):
    """λ applies to the full T-term bound, so the per-term weight is λ·T (0.1 at T = 100); the reference
    code writes it as vb·T/1000. L_t itself is checked against numpy in test_direct_checks."""
    assert HYBRID_LAMBDA == 0.001  # Improved DDPM (arXiv 2102.09672) §3.1
    d = GaussianDiffusion(beta_schedule("linear", T), variance="learned_range", loss="hybrid")
    out = d.training_losses(lambda x, t: torch.zeros(4, 6, 4, 4), _data(4).float(), torch.tensor([0, 3, T // 2, T - 1]))
    torch.testing.assert_close(out.loss - out.mse, 0.001 * T * out.vb)


def test_hybrid_vb_term_gives_no_gradient_to_the_mean_channels():
    d = GaussianDiffusion(beta_schedule("cosine", 100), variance="learned_range", loss="hybrid")
    output = torch.nn.Parameter(torch.randn(4, 6, 4, 4) * 0.3)
    out = d.training_losses(lambda x, t: output, _data(4).float(), torch.tensor([0, 2, 40, 99]))
    (grad,) = torch.autograd.grad(out.vb.sum(), output)
    assert torch.count_nonzero(grad[:, :3]) == 0
    assert grad[:, 3:].abs().sum() > 0
    # The KL objective, by contrast, trains the mean through L_t.
    d_kl = GaussianDiffusion(beta_schedule("cosine", 100), variance="learned_range", loss="kl")
    out = d_kl.training_losses(lambda x, t: output, _data(4).float(), torch.tensor([0, 2, 40, 99]))
    (grad,) = torch.autograd.grad(out.vb.sum(), output)
    assert grad[:, :3].abs().sum() > 0


def test_perfect_model_has_zero_kl_terms_and_learned_range_formula():
    d = GaussianDiffusion(beta_schedule("linear", 200))
    x0, noise = _data(2), torch.randn(2, 3, 4, 4, dtype=torch.float64)
    t = torch.tensor([5, 150])
    x_t = d.q_sample(x0, t, noise)
    output = d.predict_eps_from_x0(x_t, t, x0)
    torch.testing.assert_close(d.vb_terms_bpd(output, x0, x_t, t), torch.zeros(2, dtype=torch.float64), atol=1e-9, rtol=0)
    # Learned range: log σ² = frac·log β_t + (1−frac)·log β̃_t with frac = (v+1)/2 (IDDPM eq. 15).
    d_lr = GaussianDiffusion(beta_schedule("linear", 200), variance="learned_range")
    v = torch.full_like(x0, 0.2)
    p = d_lr.mean_variance_from_output(torch.cat([output, v], 1), x_t, t)
    step = 150
    expected = 0.6 * math.log(d.betas[step]) + 0.4 * math.log(d.tables["posterior_variance"][step])
    assert p.log_variance[1, 0, 0, 0].item() == pytest.approx(expected, rel=1e-12)


def test_parametrisations_agree_on_x0():
    d = GaussianDiffusion(beta_schedule("cosine", 100))
    x0, noise, t = _data(3), torch.randn(3, 3, 4, 4, dtype=torch.float64), torch.tensor([0, 30, 99])
    x_t = d.q_sample(x0, t, noise)
    mean = d.q_posterior(x0, x_t, t)[0]
    for prediction, output in [("eps", noise), ("x0", x0), ("v", d.v_target(x0, t, noise)), ("mean", mean)]:
        p = GaussianDiffusion(d.betas, prediction=prediction).mean_variance_from_output(output, x_t, t, clip_denoised=False)
        torch.testing.assert_close(p.pred_x0, x0, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(p.mean, mean, rtol=1e-6, atol=1e-6)


def test_nll_shapes_and_total():
    d = GaussianDiffusion(beta_schedule("linear", 50))
    x0 = _data(3)
    noise_model = lambda x, t: torch.zeros_like(x)  # noqa: E731
    result = d.nll(noise_model, x0, generator=torch.Generator().manual_seed(0))
    assert result.vb.shape == (3, 50) and result.mse.shape == (3, 50)
    torch.testing.assert_close(result.total_bpd, result.vb.sum(1) + result.prior_bpd)
    assert torch.isfinite(result.total_bpd).all() and (result.vb >= -1e-9).all()
    # Predicting zero noise is a poor model; every term is checked against numpy in test_direct_checks.
    assert result.total_bpd.mean() > 1.0
    again = d.nll(noise_model, x0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.total_bpd, result.total_bpd)


def test_prior_term_is_small_for_standard_schedules():
    x0 = _data(2)
    for name in ("linear", "cosine"):
        d = GaussianDiffusion(beta_schedule(name, 1000))
        assert d.prior_bpd(x0).max() < 1e-4


# ----------------------------------------------------------------- respacing
def test_respacing_all_steps_returns_the_original():
    betas = beta_schedule("cosine", 100)
    new_betas, mapping = respace_betas(np.cumprod(1 - betas), range(100))
    np.testing.assert_allclose(new_betas, betas, rtol=1e-12)
    assert mapping.tolist() == list(range(100))


def test_respacing_keeps_alpha_bar_and_maps_original_timesteps():
    d = GaussianDiffusion(beta_schedule("linear", 1000), variance="learned_range")
    steps = space_timesteps(1000, 10)
    r = d.respace(steps)
    assert r.num_steps == 10 and r.timestep_map.tolist() == steps
    np.testing.assert_allclose(r.alphas_cumprod, d.alphas_cumprod[steps], rtol=1e-12)
    seen = []
    r.p_mean_variance(
        lambda x, t: (seen.append(t.tolist()), torch.zeros(2, 6, 2, 2))[1], torch.zeros(2, 3, 2, 2), torch.tensor([0, 9])
    )
    assert seen == [[steps[0], steps[9]]]  # the network always sees original-scale t


def test_space_timesteps_forms():
    assert space_timesteps(100, 100) == list(range(100))
    assert space_timesteps(100, "ddim10") == list(range(0, 100, 10))
    assert space_timesteps(1000, 2) == [0, 999]
    kept = space_timesteps(300, "10,15,20")
    assert len(kept) == 45 and kept[0] == 0 and kept[-1] == 299
    assert sum(1 for t in kept if t < 100) == 10 and sum(1 for t in kept if 100 <= t < 200) == 15
    with pytest.raises(UserError):
        space_timesteps(10, "ddim6")
    with pytest.raises(UserError):
        space_timesteps(10, 11)


# ----------------------------------------------------------- timestep sampler
def test_uniform_sampler_weights_are_one():
    t, w = UniformSampler(10).sample(100, torch.Generator().manual_seed(0))
    assert t.min() >= 0 and t.max() < 10 and torch.equal(w, torch.ones(100))


def test_loss_aware_sampler_warms_up_then_prefers_high_loss_steps():
    sampler = LossAwareSampler(5, history=3)
    np.testing.assert_allclose(sampler.probabilities(), 0.2)
    for _ in range(3):
        sampler.update(torch.arange(5), torch.tensor([1.0, 1.0, 1.0, 1.0, 9.0]))
    assert sampler.warmed_up()
    probs = sampler.probabilities()
    assert probs[4] == pytest.approx((9 / 13) * 0.999 + 0.001 / 5)
    t, w = sampler.sample(20_000, torch.Generator().manual_seed(0))
    assert (t == 4).float().mean().item() == pytest.approx(probs[4], abs=0.02)
    torch.testing.assert_close(w, (1 / (5 * torch.from_numpy(probs)[t])).float())
    # Only the last `history` values count: the old 9.0s roll out.
    for _ in range(3):
        sampler.update(torch.tensor([4]), torch.tensor([1.0]))
    np.testing.assert_allclose(sampler.probabilities(), 0.2)


def test_loss_aware_state_round_trips_through_json():
    a = LossAwareSampler(6, history=2)
    for k in range(3):
        a.update(torch.arange(6), torch.arange(6).float() + k)
    b = LossAwareSampler(6, history=2)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    ta, _ = a.sample(50, torch.Generator().manual_seed(3))
    tb, _ = b.sample(50, torch.Generator().manual_seed(3))
    assert torch.equal(ta, tb)
    with pytest.raises(UserError):
        LossAwareSampler(7).load_state_dict(a.state_dict())


def test_bad_options_are_user_errors():
    with pytest.raises(UserError, match="--prediction"):
        GaussianDiffusion(beta_schedule("cosine", 10), prediction="score")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="--variance"):
        GaussianDiffusion(beta_schedule("cosine", 10), variance="learned")  # type: ignore[arg-type]


@pytest.mark.parametrize("schedule,diffusers_name", [("linear", "linear"), ("cosine", "squaredcos_cap_v2")])
@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_ancestral_step_matches_diffusers_learned_range(schedule, diffusers_name, prediction):
    """An independent implementation: diffusers' DDPMScheduler (learned_range) step equals ours for t > 0.

    diffusers keeps float32 tables (its β_t = 1 − ᾱ_t/ᾱ_{t−1} loses ~1e-3 relative precision at small t),
    so its tables are replaced by float64 ones to compare the formulas, not the rounding. At t = 0
    diffusers clamps β̃_0 to 1e-20 instead of clipping with β̃_1, so t = 0 is not compared.
    """
    diffusers = pytest.importorskip("diffusers")
    names = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}
    scheduler = diffusers.DDPMScheduler(
        num_train_timesteps=1000, beta_schedule=diffusers_name, variance_type="learned_range",
        prediction_type=names[prediction], clip_sample=True, clip_sample_range=1.0,
    )
    d = GaussianDiffusion(beta_schedule(schedule, 1000), prediction=prediction, variance="learned_range")
    torch.testing.assert_close(scheduler.betas.double(), torch.from_numpy(d.betas), rtol=1e-5, atol=1e-7)
    scheduler.betas = torch.from_numpy(d.betas)
    scheduler.alphas = 1 - scheduler.betas
    scheduler.alphas_cumprod = torch.from_numpy(d.alphas_cumprod)
    scheduler.one = torch.tensor(1.0, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    output = torch.randn(2, 6, 4, 4, generator=g, dtype=torch.float64).clamp(-1, 1)
    for step in (1, 17, 500, 999):
        expected = scheduler.step(output, step, x_t, generator=torch.Generator().manual_seed(step)).prev_sample
        p = d.mean_variance_from_output(output, x_t, torch.full((2,), step), clip_denoised=True)
        noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(step), dtype=torch.float64)
        torch.testing.assert_close(p.mean + torch.exp(0.5 * p.log_variance) * noise, expected, rtol=1e-9, atol=1e-9)
