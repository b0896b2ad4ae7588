"""Samplers on Gaussian data, where the optimal denoiser and every sampler's output law are closed-form.

For x0 ~ N(μ, diag(s²)) the best denoiser is linear: with a = √ᾱ_t, σ² = 1 − ᾱ_t,
E[x0 | x_t] = μ + a s² / (a² s² + σ²) · (x_t − a μ). Every sampler then applies a per-pixel linear
map plus Gaussian noise at each step, so the exact mean and variance of its output can be
propagated in float64 (``_exact_moments``). Two kinds of checks follow:
- the samplers produce exactly the discretised law they should (tight; catches a wrong t, a wrong
  coefficient or a wrong variance at any step count);
- the samplers that are accurate at the tested step count recover the *data* moments. DDPM at 100
  and DDIM at 50 uniform steps are not (their exact law itself is 15–60 % low in variance for
  s in (0.05, 0.3), see ``test_few_step_ddpm_and_ddim_are_biased_on_narrow_data``), so those are checked
  against their exact law instead, and DDIM is checked for convergence at 1000 steps.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from landiff.diffusion import GaussianDiffusion, beta_schedule, space_timesteps
from landiff.errors import UserError
from landiff.samplers import (
    DEFAULT_SAMPLER,
    SPACINGS,
    Churn,
    SampleNoise,
    classifier_free_guidance,
    ddim_sample,
    ddpm_sample,
    dpm_solver_pp_sample,
    initial_noise,
    sample,
    sampling_timesteps,
)

T = 1000
SHAPE = (2, 4, 4)
N = 2000


def _data_params() -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct per-pixel μ in (−0.5, 0.5) and s in (0.05, 0.3)."""
    g = torch.Generator().manual_seed(1234)
    mu = torch.rand(SHAPE, generator=g, dtype=torch.float64) - 0.5
    s = 0.05 + 0.25 * torch.rand(SHAPE, generator=g, dtype=torch.float64)
    return mu, s


MU, S = _data_params()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: intra-op threads only add synchronisation, which on a busy 2-core
    machine made each sampler call 10–100× slower. Restored after the module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class GaussianDenoiser:
    """The optimal network for x0 ~ N(μ, s²), looking ᾱ up in the FULL schedule by original t."""

    def __init__(self, betas: np.ndarray, prediction: str = "eps", var_value: float | None = None) -> None:
        self.alphas_cumprod = torch.from_numpy(np.cumprod(1.0 - betas))
        self.prediction, self.var_value = prediction, var_value
        self.seen_t: set[int] = set()

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **kwargs) -> torch.Tensor:
        self.seen_t.update(t.tolist())
        abar = self.alphas_cumprod[t].to(x.dtype).view(-1, 1, 1, 1)
        a, sigma = abar.sqrt(), (1 - abar).sqrt()
        mu, s2 = MU.to(x.dtype), S.to(x.dtype) ** 2
        x0 = mu + a * s2 / (abar * s2 + sigma**2) * (x - a * mu)
        eps = (x - a * x0) / sigma
        out = {"eps": eps, "x0": x0, "v": a * eps - sigma * x0}[self.prediction]
        if self.var_value is not None:  # learned_range: constant variance channels
            out = torch.cat([out, torch.full_like(out, self.var_value)], dim=1)
        return out


def _exact_moments(alphas_cumprod: np.ndarray, steps: list[int], kind: str, eta: float = 0.0, var_value: float = 0.0):
    """Per-pixel (mean, variance) of the sampler's output law, propagated exactly in float64.

    Written from the papers independently of landiff: respaced β'_i = 1 − ᾱ_i/ᾱ_{i−1}, posterior
    coefficients (DDPM eq. 7), variances fixed_small β̃ / fixed_large β' / learned (IDDPM eq. 15),
    DDIM eq. 12 with σ(η) of eq. 16; x_T ~ N(0, I).
    """
    mu, s = MU.numpy(), S.numpy()
    ts = sorted(steps)
    ab = alphas_cumprod[ts]
    abp = np.concatenate([[1.0], ab[:-1]])
    beta = 1 - ab / abp
    tilde = beta * (1 - abp) / (1 - ab)
    tilde_clipped = np.concatenate([tilde[1:2], tilde[1:]])
    mean, var = np.zeros_like(mu), np.ones_like(mu)
    for i in range(len(ts) - 1, -1, -1):
        a, sig2 = math.sqrt(ab[i]), 1 - ab[i]
        k = a * s * s / (ab[i] * s * s + sig2)
        b0 = (1 - k * a) * mu  # E[x0 | x] = k x + b0
        if kind == "ddim":
            sigma = eta * math.sqrt((1 - abp[i]) / (1 - ab[i])) * math.sqrt(1 - ab[i] / abp[i])
            c = math.sqrt(max(1 - abp[i] - sigma**2, 0.0) / sig2)  # coefficient of ε = (x − a x0)/σ_t
            slope, offset, added = math.sqrt(abp[i]) * k + c * (1 - a * k), (math.sqrt(abp[i]) - c * a) * b0, sigma**2
        else:
            coef1 = beta[i] * math.sqrt(abp[i]) / (1 - ab[i])
            coef2 = (1 - abp[i]) * math.sqrt(1 - beta[i]) / (1 - ab[i])
            slope, offset = coef1 * k + coef2, coef1 * b0
            if kind == "fixed_small":
                added = tilde_clipped[i]
            elif kind == "fixed_large":
                added = beta[i]
            else:
                frac = (var_value + 1) / 2
                added = math.exp(frac * math.log(beta[i]) + (1 - frac) * math.log(tilde_clipped[i]))
            added = added if i > 0 else 0.0
        mean, var = slope * mean + offset, slope**2 * var + added
    return mean, var


def _assert_moments(x: torch.Tensor, mean: np.ndarray, var: np.ndarray, average_tol: float = 0.03) -> None:
    """Mean within 4 standard errors per pixel; variance within 15 % per pixel and ``average_tol`` on average.

    With n = 2000 the sample variance has a relative standard deviation of √(2/n) ≈ 3.2 %, so 15 %
    per pixel is ≈ 4.7 of them and 3 % on the 32-pixel average ≈ 5 of them.
    """
    n = x.shape[0]
    x = x.double()
    z = (x.mean(0).numpy() - mean) / np.sqrt(var / n)
    assert np.abs(z).max() < 4.0, f"mean off by {np.abs(z).max():.1f} standard errors"
    rel = x.var(0).numpy() / var - 1
    assert np.abs(rel).max() < 0.15, f"variance off by {np.abs(rel).max():.3f} (relative) at worst"
    assert abs(rel.mean()) < average_tol, f"variance off by {rel.mean():+.3f} (relative) on average"


def _run(
    sampler: str, betas: np.ndarray, steps: list[int], prediction="eps", variance="fixed_small", eta=0.0, n=N, var_value=None
) -> torch.Tensor:
    diffusion = GaussianDiffusion(betas, prediction=prediction, variance=variance)
    model = GaussianDenoiser(betas, prediction, var_value)
    x_T, noise = initial_noise(range(n), SHAPE)
    common = dict(clip_denoised=False)
    if sampler == "ddpm":
        out = ddpm_sample(model, diffusion, x_T, steps, noise=noise, **common)
    elif sampler == "ddim":
        out = ddim_sample(model, diffusion, x_T, steps, eta=eta, noise=noise, **common)
    else:
        out = dpm_solver_pp_sample(model, diffusion, x_T, steps, **common)
    assert model.seen_t == set(steps), "the network must see exactly the original-scale timesteps"
    return out


# ------------------------------------------------------- exact output laws
@pytest.mark.parametrize(
    "sampler, variance, prediction, count, eta, var_value",
    [
        ("ddpm", "fixed_small", "eps", 100, 0.0, None),
        ("ddpm", "fixed_large", "eps", 100, 0.0, None),
        ("ddpm", "learned_range", "eps", 100, 0.0, 0.3),
        ("ddpm", "fixed_small", "x0", 100, 0.0, None),
        ("ddim", "fixed_small", "eps", 50, 0.0, None),
        ("ddim", "fixed_small", "v", 50, 0.0, None),
        ("ddim", "fixed_small", "eps", 50, 1.0, None),
    ],
)
def test_samplers_draw_their_exact_discretised_law(sampler, variance, prediction, count, eta, var_value):
    betas = beta_schedule("linear", T)
    steps = space_timesteps(T, count)
    x = _run(sampler, betas, steps, prediction, variance, eta, var_value=var_value)
    kind = "ddim" if sampler == "ddim" else ("learned" if variance == "learned_range" else variance)
    mean, var = _exact_moments(np.cumprod(1 - betas), steps, kind, eta, var_value or 0.0)
    _assert_moments(x, mean, var)


def test_few_step_ddpm_and_ddim_are_biased_on_narrow_data():
    """Documents why the data-recovery tests below use DPM-Solver++ and 1000-step DDIM."""
    abar = np.cumprod(1 - beta_schedule("linear", T))
    narrowest = S.numpy().argmin()
    _, ddim_var = _exact_moments(abar, space_timesteps(T, 50), "ddim")
    _, ddpm_var = _exact_moments(abar, space_timesteps(T, 100), "fixed_small")
    assert ddim_var.flat[narrowest] / S.numpy().flat[narrowest] ** 2 < 0.7
    assert ddpm_var.flat[narrowest] / S.numpy().flat[narrowest] ** 2 < 0.7


# ------------------------------------------------------- data recovery
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_dpm_solver_recovers_the_data(schedule, prediction):
    betas = beta_schedule(schedule, T)
    steps = sampling_timesteps(T, 20, "logsnr", np.cumprod(1 - betas))
    x = _run("dpm++", betas, steps, prediction)
    # 20 steps leave a small discretisation bias (measured +2 % linear, +5 % cosine on average).
    _assert_moments(x, MU.numpy(), S.numpy() ** 2, average_tol=0.08)


def test_ddim_converges_to_the_data_with_all_steps():
    betas = beta_schedule("cosine", T)
    x = _run("ddim", betas, list(range(T)))
    _assert_moments(x, MU.numpy(), S.numpy() ** 2)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++"])
def test_every_sampler_recovers_the_data_mean_with_learned_variance(sampler):
    betas = beta_schedule("linear", T)
    steps = space_timesteps(T, 50)
    x = _run(sampler, betas, steps, variance="learned_range", var_value=-0.5, n=500).double()
    standard_error = x.std(0) / math.sqrt(x.shape[0])
    assert ((x.mean(0) - MU) / standard_error).abs().max() < 4.0


def test_dpm_solver_order_one_is_ddim():
    betas = beta_schedule("linear", T)
    diffusion, model = GaussianDiffusion(betas), GaussianDenoiser(betas)
    x_T, _ = initial_noise(range(16), SHAPE)
    steps = sampling_timesteps(T, 12, "uniform")
    first = dpm_solver_pp_sample(model, diffusion, x_T, steps, order=1, clip_denoised=False)
    ddim = ddim_sample(model, diffusion, x_T, steps, clip_denoised=False)
    torch.testing.assert_close(first, ddim, atol=2e-5, rtol=1e-5)
    second = dpm_solver_pp_sample(model, diffusion, x_T, steps, order=2, clip_denoised=False)
    assert not torch.allclose(second, ddim, atol=1e-3)


def test_lower_order_final_only_changes_few_step_runs():
    betas = beta_schedule("linear", T)
    diffusion, model = GaussianDiffusion(betas), GaussianDenoiser(betas)
    x_T, _ = initial_noise(range(4), SHAPE)
    for count, should_differ in ((8, True), (20, False)):
        steps = sampling_timesteps(T, count, "uniform")
        on = dpm_solver_pp_sample(model, diffusion, x_T, steps, lower_order_final=True)
        off = dpm_solver_pp_sample(model, diffusion, x_T, steps, lower_order_final=False)
        assert (not torch.equal(on, off)) == should_differ


# ------------------------------------------------------- seeds and determinism
@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++", "dpm++sde", "heun"])
def test_same_seed_same_image_at_any_batch_size_and_order(sampler):
    betas = beta_schedule("cosine", T)
    diffusion = GaussianDiffusion(betas, variance="fixed_large")
    model = GaussianDenoiser(betas)
    seeds = [11, 3, 7, 0, 42, 5, 9, 1]
    kwargs: dict = dict(sampler=sampler, steps=10)
    kwargs.update({"ddim": {"eta": 1.0}, "heun": {"churn": Churn(s_churn=10.0)}}.get(sampler, {}))
    batch = sample(model, diffusion, SHAPE, seeds, **kwargs)
    singles = torch.cat([sample(model, diffusion, SHAPE, [seed], **kwargs) for seed in seeds])
    assert torch.equal(batch, singles)
    reversed_batch = sample(model, diffusion, SHAPE, seeds[::-1], **kwargs)
    assert torch.equal(reversed_batch, batch.flip(0))
    other = sample(model, diffusion, SHAPE, [s + 100 for s in seeds], **kwargs)
    assert not torch.allclose(other, batch)


def test_sample_noise_rows_depend_only_on_their_seed():
    pair = SampleNoise([3, 5]).randn(2, 3)
    assert torch.equal(pair[1], SampleNoise([5]).randn(2, 3)[0])
    x_T, noise = initial_noise([3], (2, 3))
    assert torch.equal(x_T[0], pair[0])
    assert not torch.equal(noise.randn(2, 3), x_T)  # the stream continues after x_T
    with pytest.raises(UserError, match="--seed"):
        SampleNoise([])


def test_ddim_eta_zero_is_deterministic_and_ignores_the_noise_streams():
    betas = beta_schedule("linear", T)
    diffusion, model = GaussianDiffusion(betas), GaussianDenoiser(betas)
    x_T, _ = initial_noise(range(4), SHAPE)
    steps = sampling_timesteps(T, 10, "trailing")
    runs = [
        ddim_sample(model, diffusion, x_T, steps, eta=0.0, noise=noise)
        for noise in (None, SampleNoise([1, 2, 3, 4]), SampleNoise([9, 8, 7, 6]), None)
    ]
    assert all(torch.equal(run, runs[0]) for run in runs[1:])
    stochastic = ddim_sample(model, diffusion, x_T, steps, eta=1.0, noise=SampleNoise([1, 2, 3, 4]))
    assert not torch.allclose(stochastic, runs[0])


# ------------------------------------------------------- loop plumbing
def test_callback_sees_every_step_and_clipping_applies():
    betas = beta_schedule("linear", T)
    diffusion = GaussianDiffusion(betas)
    seen = []

    def wild(x, t):  # predicts an ε that puts x0 far outside [−1, 1]
        return -5 * torch.ones_like(x)

    out = sample(wild, diffusion, SHAPE, [0, 1], sampler="ddim", steps=5, callback=lambda i, x, x0: seen.append((i, x0)))
    assert [i for i, _ in seen] == [0, 1, 2, 3, 4]
    assert all(x0.abs().max() <= 1 for _, x0 in seen) and out.abs().max() <= 1
    unclipped = sample(wild, diffusion, SHAPE, [0, 1], sampler="ddim", steps=5, clip_denoised=False)
    assert unclipped.abs().max() > 1


def test_progress_prints_only_to_a_terminal(capsys, monkeypatch):
    betas = beta_schedule("linear", 50)
    diffusion, model = GaussianDiffusion(betas), GaussianDenoiser(betas)
    sample(model, diffusion, SHAPE, [0], steps=5, progress=True)
    assert capsys.readouterr().err == ""  # pytest's captured stderr is not a TTY
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    sample(model, diffusion, SHAPE, [0], steps=5, progress=True)
    assert f"{DEFAULT_SAMPLER} 5/5" in capsys.readouterr().err


def test_user_mistakes_raise_user_errors():
    betas = beta_schedule("linear", 50)
    diffusion, model = GaussianDiffusion(betas), GaussianDenoiser(betas)
    with pytest.raises(UserError, match="--sampler"):
        sample(model, diffusion, SHAPE, [0], sampler="euler")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="--steps"):
        sample(model, diffusion, SHAPE, [0], steps=51)
    with pytest.raises(UserError, match="--eta"):
        sample(model, diffusion, SHAPE, [0], sampler="ddim", eta=-1)
    with pytest.raises(UserError, match="distinct"):
        ddim_sample(model, diffusion, torch.zeros(1, *SHAPE), [10, 10, 0])
    with pytest.raises(UserError, match="0..49"):
        ddim_sample(model, diffusion, torch.zeros(1, *SHAPE), [50, 0])


# ------------------------------------------------------- timestep spacings
@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("num_steps, schedule", [(1000, "linear"), (1000, "cosine"), (50, "linear"), (7, "cosine")])
def test_sampling_timesteps_are_distinct_descending_and_in_range(spacing, num_steps, schedule):
    abar = np.cumprod(1 - beta_schedule(schedule, num_steps))
    for count in sorted({1, 2, 3, 7, 20, 50, num_steps - 1, num_steps} & set(range(1, num_steps + 1))):
        steps = sampling_timesteps(num_steps, count, spacing, abar)
        assert len(steps) == count and len(set(steps)) == count
        assert steps == sorted(steps, reverse=True)
        assert 0 <= steps[-1] and steps[0] <= num_steps - 1
        # Every spacing starts at T−1 except karras, which starts at EDM's σ_max = 80 where the
        # process goes beyond it (the nearest step, or higher when K leaves no room).
        assert steps[0] == num_steps - 1 or (spacing == "karras" and np.sqrt((1 - abar[steps[0]]) / abar[steps[0]]) > 40)
        assert all(isinstance(t, int) for t in steps)


def test_spacing_definitions():
    abar = np.cumprod(1 - beta_schedule("linear", T))
    assert sampling_timesteps(T, 4, "trailing") == [999, 749, 499, 249]
    # Hand-written: t_j = round(j·(T−1)/(K−1)); Python's round halves to even (4.5 → 4, 499.5 → 500),
    # as Improved DDPM's space_timesteps does.
    assert sampling_timesteps(T, 4, "uniform") == [999, 666, 333, 0]
    assert sampling_timesteps(T, 3, "uniform") == [999, 500, 0]
    assert sampling_timesteps(10, 3, "uniform") == [9, 4, 0]
    assert sampling_timesteps(10, 4, "uniform") == [9, 6, 3, 0]
    assert sampling_timesteps(T, 25, "uniform")[:4] == [999, 957, 916, 874]  # 999·(24−j)/24 rounded
    # trailing: round(T − i·T/K) − 1 — 10, 6.67, 3.33 → [9, 6, 2]; 1000, 666.7, 333.3 → [999, 666, 332].
    assert sampling_timesteps(10, 3, "trailing") == [9, 6, 2]
    assert sampling_timesteps(T, 3, "trailing") == [999, 666, 332]
    assert sampling_timesteps(T, 3, "quadratic") == [999, 250, 0]  # 999·(1, ¼, 0), 249.75 → 250
    quadratic = sampling_timesteps(T, 11, "quadratic")
    assert quadratic[0] == 999 and quadratic[-1] == 0 and quadratic[-2] == round(999 * 0.01)
    logsnr = sampling_timesteps(T, 15, "logsnr", abar)
    lam = np.log(abar[logsnr] / (1 - abar[logsnr]))
    gaps = np.diff(lam)
    assert logsnr[-1] == 0 and np.all(gaps > 0)
    assert gaps.max() / gaps.min() < 1.5  # uniform in λ up to rounding to discrete steps
    with pytest.raises(UserError, match="--spacing"):
        sampling_timesteps(T, 4, "edm")  # type: ignore[arg-type]


# ------------------------------------------------------- classifier-free guidance
def _toy_conditional(x, t, y):
    """A label-dependent output with 2C channels: prediction then variance values."""
    scale = (1.0 + 0.37 * y.to(x.dtype)).view(-1, 1, 1, 1)
    pred = torch.sin(x * scale) + 1e-3 * t.view(-1, 1, 1, 1)
    var = torch.tanh(x * scale * 0.5)
    return torch.cat([pred, var], dim=1)


def test_guidance_scales_one_and_zero_are_exact():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, *SHAPE, generator=g)
    t = torch.tensor([999, 500, 10, 0, 3])
    y, null = torch.tensor([0, 1, 2, 3, 4]), 7
    cond, uncond = _toy_conditional(x, t, y), _toy_conditional(x, t, torch.full_like(y, null))
    assert torch.equal(classifier_free_guidance(_toy_conditional, 1.0, null)(x, t, y=y), cond)
    at_zero = classifier_free_guidance(_toy_conditional, 0.0, null)(x, t, y=y)
    assert torch.equal(at_zero[:, :2], uncond[:, :2]) and torch.equal(at_zero[:, 2:], cond[:, 2:])
    strong = classifier_free_guidance(_toy_conditional, 3.0, null)(x, t, y=y)
    torch.testing.assert_close(strong[:, :2], uncond[:, :2] + 3.0 * (cond[:, :2] - uncond[:, :2]))
    assert torch.equal(strong[:, 2:], cond[:, 2:])  # variance channels from the conditional pass


def test_guidance_runs_both_passes_in_one_batch():
    calls = []

    def model(x, t, y):
        calls.append(y.clone())
        return x * y.view(-1, 1, 1, 1)

    x = torch.ones(3, *SHAPE)
    out = classifier_free_guidance(model, 2.0, null_label=0)(x, torch.zeros(3, dtype=torch.long), y=torch.tensor([1, 2, 3]))
    assert len(calls) == 1 and calls[0].tolist() == [1, 2, 3, 0, 0, 0]
    assert out[:, 0, 0, 0].tolist() == [2.0, 4.0, 6.0]  # 2·y + (1 − 2)·0


# ------------------------------------------------------- diffusers parity
def test_betas_match_diffusers():
    diffusers = pytest.importorskip("diffusers")
    linear = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    cosine = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    np.testing.assert_allclose(linear.betas.double().numpy(), beta_schedule("linear", 1000), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(cosine.betas.double().numpy(), beta_schedule("cosine", 1000), rtol=1e-5, atol=1e-7)


def test_one_ddim_step_matches_diffusers():
    diffusers = pytest.importorskip("diffusers")
    # diffusers' DDIM steps from t to t − T/K (set_timesteps(K), no offset); landiff's sampler over
    # the explicit pair [t, t − T/K] makes the same step, and the last step lands on ᾱ = 1 as
    # diffusers does with set_alpha_to_one=True. Both index ᾱ by the same original t.
    scheduler = diffusers.DDIMScheduler(
        num_train_timesteps=T, beta_schedule="linear", clip_sample=False, set_alpha_to_one=True,
        steps_offset=0, prediction_type="epsilon", timestep_spacing="leading",
    )
    scheduler.set_timesteps(50)  # stride 20
    g = torch.Generator().manual_seed(0)
    x_t, eps = torch.randn(3, *SHAPE, generator=g), torch.randn(3, *SHAPE, generator=g)
    diffusion = GaussianDiffusion(beta_schedule("linear", T))
    states = []
    ddim_sample(lambda x, t: eps, diffusion, x_t, [500, 480], clip_denoised=False, callback=lambda i, x, x0: states.append(x))
    expected_mid = scheduler.step(eps, 500, x_t, eta=0.0).prev_sample
    torch.testing.assert_close(states[1], expected_mid, atol=1e-5, rtol=1e-5)
    expected_final = scheduler.step(eps, 19, states[1], eta=0.0).prev_sample  # 19 − 20 < 0 → ᾱ_prev = 1
    mine_final = ddim_sample(lambda x, t: eps, diffusion, states[1], [19], clip_denoised=False)
    torch.testing.assert_close(mine_final, expected_final, atol=1e-5, rtol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside diffusers under NumPy 2
@pytest.mark.parametrize("count, lower_order_final", [(20, True), (10, False)])
def test_dpm_solver_matches_diffusers(count, lower_order_final):
    diffusers = pytest.importorskip("diffusers")
    # Same timesteps given to both. diffusers steps from the last timestep to σ = 0 (first order,
    # i.e. x̂0), as landiff's "denoise to zero"; its lower_order_final only touches that final
    # step, while landiff's also makes the step *into* the last timestep first order below 15
    # steps, hence lower_order_final=False for the 10-step comparison.
    betas = beta_schedule("linear", T)
    steps = sampling_timesteps(T, count, "logsnr", np.cumprod(1 - betas))
    scheduler = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=T, beta_schedule="linear", algorithm_type="dpmsolver++", solver_order=2,
        prediction_type="epsilon", thresholding=False, lower_order_final=True, final_sigmas_type="zero",
    )
    scheduler.set_timesteps(timesteps=steps)
    model = GaussianDenoiser(betas)
    x_T, _ = initial_noise(range(8), SHAPE)
    x = x_T.clone()
    for t in scheduler.timesteps:
        x = scheduler.step(model(x, t.repeat(x.shape[0])), t, x).prev_sample
    diffusion = GaussianDiffusion(betas)
    mine = dpm_solver_pp_sample(model, diffusion, x_T, steps, lower_order_final=lower_order_final, clip_denoised=False)
    torch.testing.assert_close(mine, x, atol=1e-5, rtol=1e-5)


def test_uniform_and_trailing_match_diffusers_ddim_scheduler():
    """landiff ``uniform`` is diffusers' ``linspace`` spacing and ``trailing`` is its ``trailing`` spacing
    (Lin et al. 2023, Table 2). diffusers' ``leading`` (stride T // K from 0) is no landiff spacing: it
    never visits T − 1. K = 1 differs by design: landiff gives [T − 1] (linspace would give [0])."""
    diffusers = pytest.importorskip("diffusers")
    for num_steps in (1000, 50, 7):
        for name, theirs in (("uniform", "linspace"), ("trailing", "trailing")):
            scheduler = diffusers.DDIMScheduler(num_train_timesteps=num_steps, timestep_spacing=theirs)
            for count in sorted({2, 3, 4, 6, 7, 10, 25, 33, 50, 100, 999} & set(range(2, num_steps + 1))):
                if name == "trailing" and any(2 * i * num_steps % count == 0 and 2 * i * num_steps // count % 2
                                              for i in range(count)):
                    continue  # an exact half (T − i·T/K = k + ½): np.arange's accumulated step rounds it off
                scheduler.set_timesteps(count)
                assert sampling_timesteps(num_steps, count, name) == scheduler.timesteps.tolist(), (name, num_steps, count)
    # The tie skipped above, by hand: 7 − 3·7/6 = 3.5 → round (half to even) 4 → t = 3; diffusers gets
    # 3.4999999999999991 from np.arange(7, 0, −7/6) and so t = 2.
    assert sampling_timesteps(7, 6, "trailing") == [6, 5, 4, 3, 1, 0]
    leading = diffusers.DDIMScheduler(num_train_timesteps=T, timestep_spacing="leading", steps_offset=0)
    leading.set_timesteps(50)
    assert leading.timesteps.tolist()[0] == 980 and sampling_timesteps(T, 50, "uniform")[0] == 999
    assert sorted(leading.timesteps.tolist()) == space_timesteps(T, "ddim50")  # K divides T: the DDIM stride
