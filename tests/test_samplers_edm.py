"""The EDM-style sampling layer: the Denoiser view of a trained model, Heun with churn, DPM-Solver++(2M)
SDE, the karras spacing, bf16 sampling, and the old DDIM / DPM-Solver++ results kept.

Most checks use the Gaussian closed form of ``test_samplers`` (x0 ~ N(μ, diag(s²)), whose optimal
denoiser is linear): every sampler is then an affine map of its Gaussian inputs per pixel, so its
exact output law can be propagated in float64 (:class:`_Affine`) and compared with 2000 samples,
and a few steps can be written out by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from landiff.diffusion import GaussianDiffusion, beta_schedule
from landiff.errors import UserError
from landiff.nets import UNet, UNetConfig
from landiff.samplers import (
    DEFAULT_SPACING,
    Churn,
    Denoiser,
    SampleNoise,
    classifier_free_guidance,
    ddim_sample,
    ddpm_sample,
    dpm_solver_pp_sample,
    dpm_solver_pp_sde_sample,
    heun_levels,
    heun_sample,
    initial_noise,
    sample,
    sampling_timesteps,
)
from test_samplers import MU, SHAPE, GaussianDenoiser, S, _assert_moments

pytestmark = pytest.mark.usefixtures("one_thread")

T = 1000
N = 2000


def _diffusion(schedule: str = "linear", num_steps: int = T, **kwargs) -> GaussianDiffusion:
    return GaussianDiffusion(beta_schedule(schedule, num_steps), **kwargs)


def _sigmas(diffusion: GaussianDiffusion) -> np.ndarray:
    """σ_t = √((1 − ᾱ_t)/ᾱ_t), written here from the definition (not read from the Denoiser)."""
    abar = np.cumprod(1.0 - diffusion.betas)
    return np.sqrt((1.0 - abar) / abar)


def _nearest(sigmas: np.ndarray, sigma: float) -> int:
    return int(np.argmin(np.abs(np.log(sigmas) - math.log(sigma))))


# ------------------------------------------------------------------ test networks
class RandomNet:
    """A seeded, deterministic, non-linear stand-in for a trained network.

    out = tanh(W x + b) + 0.3 x + sin(t/97)·P + E[y], with a 1×1 "conv" W, a t-dependent spatial
    pattern P and (when ``num_classes``) a per-label offset; 2C channels when ``learned``, the
    second half tanh-squashed into the [−1, 1] range of IDDPM's variance values.
    """

    def __init__(self, channels: int = SHAPE[0], learned: bool = False, num_classes: int = 0, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.channels, self.learned = channels, learned
        out = 2 * channels if learned else channels
        self.weight = torch.randn(out, channels, generator=g) * 0.7
        self.bias = torch.randn(out, generator=g) * 0.2
        self.pattern = torch.randn(out, *SHAPE[1:], generator=g) * 0.5
        self.labels = torch.randn(num_classes + 1, out, generator=g) * 0.5 if num_classes else None
        self.calls = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self.calls += 1
        h = torch.einsum("oc,bchw->bohw", self.weight.to(x.dtype), x) + self.bias.to(x.dtype).view(1, -1, 1, 1)
        h = torch.tanh(h) + torch.sin(t.to(x.dtype) / 97.0).view(-1, 1, 1, 1) * self.pattern.to(x.dtype)
        if self.labels is not None:
            assert y is not None, "a label-using network needs y"
            h = h + self.labels.to(x.dtype)[y].view(x.shape[0], -1, 1, 1)
        head = h[:, : self.channels] + 0.3 * x
        if self.learned:
            return torch.cat([head, torch.tanh(h[:, self.channels:])], dim=1)
        return head


class MeanGaussian:
    """The Gaussian optimum for a ``mean``-predicting process: the full process's posterior mean
    μ̃(x_t, x̂0) = coef1_t x̂0 + coef2_t x_t at the original t, with x̂0 of :class:`GaussianDenoiser`."""

    def __init__(self, diffusion: GaussianDiffusion) -> None:
        self.x0 = GaussianDenoiser(diffusion.betas, "x0")
        self.coef1 = torch.from_numpy(diffusion.tables["posterior_mean_coef1"])
        self.coef2 = torch.from_numpy(diffusion.tables["posterior_mean_coef2"])

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **kwargs) -> torch.Tensor:
        c1 = self.coef1[t].to(x.dtype).view(-1, 1, 1, 1)
        c2 = self.coef2[t].to(x.dtype).view(-1, 1, 1, 1)
        return c1 * self.x0(x, t) + c2 * x


class Counting:
    """Wraps a model, recording the original timestep of every network call."""

    def __init__(self, model) -> None:
        self.model, self.seen = model, []

    def __call__(self, x, t, **kwargs):
        assert (t == t[0]).all()
        self.seen.append(int(t[0]))
        return self.model(x, t, **kwargs)


class CountingNoise(SampleNoise):
    """A SampleNoise that counts its draws."""

    draws = 0

    def randn(self, *shape: int) -> torch.Tensor:
        self.draws += 1
        return super().randn(*shape)


# ------------------------------------------------------------------ exact laws (float64)
class _Affine:
    """Per pixel, m + Σ_j c_j ξ_j with independent ξ_j ~ N(0, 1): every sampler's state on Gaussian data."""

    __array_ufunc__ = None  # ``array * _Affine`` goes to __rmul__, not numpy broadcasting

    def __init__(self, mean: np.ndarray, coefs: np.ndarray) -> None:
        self.m, self.c = mean, coefs  # (*SHAPE), (sources, *SHAPE)

    @classmethod
    def source(cls, index: int, sources: int, scale: float = 1.0) -> _Affine:
        c = np.zeros((sources, *SHAPE))
        c[index] = scale
        return cls(np.zeros(SHAPE), c)

    def __add__(self, other: _Affine) -> _Affine:
        return _Affine(self.m + other.m, self.c + other.c)

    def __sub__(self, other: _Affine) -> _Affine:
        return _Affine(self.m - other.m, self.c - other.c)

    def __rmul__(self, a) -> _Affine:
        return _Affine(a * self.m, a * self.c)

    def shift(self, b) -> _Affine:
        return _Affine(self.m + b, self.c)

    @property
    def var(self) -> np.ndarray:
        return (self.c**2).sum(0)


def _ve_denoise(x: _Affine, sigma: float) -> _Affine:
    """E[x0 | x0 + σ n = x] = μ + s²/(s² + σ²) (x − μ)."""
    mu, s2 = MU.numpy(), S.numpy() ** 2
    k = s2 / (s2 + sigma**2)
    return (k * x).shift((1 - k) * mu)


def _vp_denoise(x: _Affine, abar: float) -> _Affine:
    """E[x0 | √ᾱ x0 + √(1−ᾱ) ε = x] = μ + √ᾱ s²/(ᾱ s² + 1 − ᾱ) (x − √ᾱ μ)."""
    mu, s2 = MU.numpy(), S.numpy() ** 2
    k = math.sqrt(abar) * s2 / (abar * s2 + 1 - abar)
    return (k * x).shift((1 - k * math.sqrt(abar)) * mu)


def _heun_law(sigmas: np.ndarray, levels: list[int], churn: Churn | None = None) -> _Affine:
    """EDM Alg. 2 on the trained levels, σ̂ rounded to the nearest level (never below σ_i)."""
    churn = churn or Churn()
    count = len(levels)
    x = _Affine.source(0, count + 1, math.sqrt(1 + sigmas[levels[0]] ** 2))
    for i, t in enumerate(levels):
        sigma = sigmas[t]
        gamma = min(churn.s_churn / count, math.sqrt(2) - 1) if churn.s_churn and churn.s_tmin <= sigma <= churn.s_tmax else 0
        t_hat = max(t, _nearest(sigmas, sigma * (1 + gamma))) if gamma else t
        sigma_hat = sigmas[t_hat]
        if t_hat != t:
            x = x + _Affine.source(i + 1, count + 1, math.sqrt(sigma_hat**2 - sigma**2) * churn.s_noise)
        d = (1 / sigma_hat) * (x - _ve_denoise(x, sigma_hat))
        if i == count - 1:
            return x - sigma_hat * d
        sigma_next = sigmas[levels[i + 1]]
        euler = x + (sigma_next - sigma_hat) * d
        d_next = (1 / sigma_next) * (euler - _ve_denoise(euler, sigma_next))
        x = x + (0.5 * (sigma_next - sigma_hat)) * (d + d_next)
    raise AssertionError


def _sde_law(abar_table: np.ndarray, steps: list[int], eta: float = 1.0, lower_order_final: bool = True) -> _Affine:
    """DPM-Solver++(2M) SDE (Lu et al. 2022 §4; k-diffusion's midpoint form) from x_T ~ N(0, I)."""
    count = len(steps)
    abar = abar_table[steps]
    alpha, sigma = np.sqrt(abar), np.sqrt(1 - abar)
    lam = np.log(alpha / sigma)
    x = _Affine.source(0, count + 1)
    prev, prev_h = None, 0.0
    for k in range(count):
        x0 = _vp_denoise(x, abar[k])
        if k == count - 1:
            return x0
        h = lam[k + 1] - lam[k]
        data = x0
        if prev is not None and not (lower_order_final and k == count - 2 and count < 15):
            r = prev_h / h
            data = x0 + (1 / (2 * r)) * (x0 - prev)
        x = (sigma[k + 1] / sigma[k] * math.exp(-eta * h)) * x + (alpha[k + 1] * (1 - math.exp(-(1 + eta) * h))) * data
        x = x + _Affine.source(k + 1, count + 1, sigma[k + 1] * math.sqrt(1 - math.exp(-2 * eta * h)))
        prev, prev_h = x0, h
    raise AssertionError


def _assert_law(x: torch.Tensor, law: _Affine) -> None:
    """The samples follow the exact law: mean within 4 s.e. per pixel, variance 15 % per pixel, 3 % on average."""
    _assert_moments(x, law.m, law.var)


# ================================================================== 1. Denoiser = p_mean_variance
@pytest.mark.parametrize("guided", [False, True])
@pytest.mark.parametrize("variance", ["fixed_small", "learned_range"])
@pytest.mark.parametrize("prediction", ["eps", "x0", "v", "mean"])
def test_denoiser_predict_is_p_mean_variance(prediction, variance, guided):
    diffusion = _diffusion("cosine", prediction=prediction, variance=variance)
    net = RandomNet(learned=variance == "learned_range", num_classes=5 if guided else 0)
    batch = 6
    g = torch.Generator().manual_seed(3)
    x = torch.randn(batch, *SHAPE, generator=g) * 1.5
    kwargs = {"y": torch.tensor([0, 1, 2, 3, 4, 2])} if guided else None
    model = classifier_free_guidance(net, 3.0, null_label=5) if guided else net
    inside = outside = 0
    for clip in (True, False):
        denoiser = Denoiser(model, diffusion, clip_denoised=clip, model_kwargs=kwargs)
        for t in (0, 1, 137, 500, 998, 999):
            p = diffusion.p_mean_variance(model, x, torch.full((batch,), t), clip, kwargs)
            pred = denoiser.predict(x, t)
            torch.testing.assert_close(pred.x0, p.pred_x0, atol=1e-6, rtol=0)
            torch.testing.assert_close(pred.eps, p.pred_eps, atol=1e-6, rtol=0)
            assert pred.output.shape[1] == diffusion.output_channels(SHAPE[0])
            if clip:
                assert pred.x0.abs().max() <= 1
                inside += int((pred.x0.abs() < 0.99).sum())
            else:
                outside += int((pred.x0.abs() > 1).sum())
            # the VE view: D(x_ve; σ_t) is the same network at x_t = x_ve √ᾱ_t
            x_ve = x * math.sqrt(1 + _sigmas(diffusion)[t] ** 2)
            at_ve = diffusion.p_mean_variance(model, x_ve * math.sqrt(diffusion.alphas_cumprod[t]),
                                              torch.full((batch,), t), clip, kwargs)
            torch.testing.assert_close(denoiser(x_ve, t), at_ve.pred_x0, atol=1e-6, rtol=0)
        assert denoiser.evaluations == 6 * 2  # predict and __call__ count one network call each
    assert inside > 0 and outside > 0  # clipping both matters and leaves values inside: not a trivial case


def test_denoiser_sigma_levels_and_counter():
    diffusion = _diffusion("linear")
    abar = np.cumprod(1 - diffusion.betas)
    net = RandomNet()
    denoiser = Denoiser(net, diffusion)
    sigmas = _sigmas(diffusion)
    for t in (0, 1, 250, 998, 999):
        assert denoiser.sigma(t) == pytest.approx(sigmas[t], rel=1e-12)
        assert denoiser.vp_scale(t) == pytest.approx(1 / math.sqrt(1 + sigmas[t] ** 2), rel=1e-12)
        assert denoiser.vp_scale(t) == pytest.approx(math.sqrt(abar[t]), rel=1e-12)
        assert denoiser.nearest(sigmas[t]) == t
    # nearest is in log σ: just above the geometric mean of two levels rounds up, just below rounds down
    mid = math.sqrt(sigmas[10] * sigmas[11])
    assert denoiser.nearest(mid * 1.0001) == 11 and denoiser.nearest(mid * 0.9999) == 10
    assert denoiser.nearest(1e-9) == 0 and denoiser.nearest(1e9) == T - 1
    x = torch.zeros(2, *SHAPE)
    denoiser.predict(x, 5)
    denoiser(x, 7)
    denoiser.output(x, 9)
    assert denoiser.evaluations == 3 == net.calls
    with pytest.raises(ValueError, match="respaced"):
        Denoiser(net, diffusion.respace([0, 500, 999]))
    with pytest.raises(UserError, match="--precision"):
        Denoiser(net, diffusion, precision="fp16")  # type: ignore[arg-type]


# ================================================================== 2. old DDIM / DPM-Solver++ results kept
def _old_ddim(model, diffusion, x_T, timesteps, eta, noise, clip):
    """The DDIM loop before the Denoiser: the respaced process, indices i of it, eq. 12 and eq. 16."""
    process = diffusion.respace(sorted(timesteps))
    x = x_T
    for i in reversed(range(process.num_steps)):
        p = process.p_mean_variance(model, x, torch.full((x.shape[0],), i, dtype=torch.long), clip)
        abar, abar_prev = process.tables["alphas_cumprod"][i], process.tables["alphas_cumprod_prev"][i]
        sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar)) * math.sqrt(1 - abar / abar_prev)
        x = math.sqrt(abar_prev) * p.pred_x0 + math.sqrt(max(1 - abar_prev - sigma**2, 0.0)) * p.pred_eps
        if sigma > 0:
            x = x + sigma * noise.randn(*x.shape[1:])
    return x


def _old_dpm_solver_pp(model, diffusion, x_T, timesteps, clip, lower_order_final=True):
    """The DPM-Solver++(2M) loop before the Denoiser, on the respaced process's ᾱ."""
    process = diffusion.respace(sorted(timesteps))
    abar = process.alphas_cumprod  # ascending in the respaced index
    alpha, sigma = np.sqrt(abar), np.sqrt(1 - abar)
    lam = np.log(alpha) - np.log(sigma)
    count = process.num_steps
    x, prev_x0, prev_h = x_T, None, 0.0
    for step, i in enumerate(reversed(range(count))):
        x0 = process.p_mean_variance(model, x, torch.full((x.shape[0],), i, dtype=torch.long), clip).pred_x0
        if i == 0:
            return x0
        h = float(lam[i - 1] - lam[i])
        if prev_x0 is None or (lower_order_final and step == count - 2 and count < 15):
            data = x0
        else:
            r = prev_h / h
            data = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * prev_x0
        x = float(sigma[i - 1] / sigma[i]) * x + float(alpha[i - 1] * -np.expm1(-h)) * data
        prev_x0, prev_h = x0, h
    raise AssertionError


OLD_TOLERANCE = 1e-6  # absolute, float32; measured 0.0 in every case (bit-identical today)


@pytest.mark.parametrize("count", [10, 25])
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("network", ["gaussian", "random-eps", "random-v"])
def test_ddim_and_dpm_solver_keep_their_old_results(network, schedule, count):
    prediction = "v" if network == "random-v" else "eps"
    diffusion = _diffusion(schedule, prediction=prediction)
    if network == "gaussian":
        model, clip = GaussianDenoiser(diffusion.betas), False
    else:
        model, clip = RandomNet(seed=7), True
    seeds = list(range(8))
    uniform = sampling_timesteps(T, count, "uniform")
    logsnr = sampling_timesteps(T, count, "logsnr", diffusion.alphas_cumprod)
    for eta in (0.0, 0.5):
        x_T, noise = initial_noise(seeds, SHAPE)
        new = ddim_sample(model, diffusion, x_T, uniform, eta=eta, noise=noise, clip_denoised=clip)
        x_T, noise = initial_noise(seeds, SHAPE)
        old = _old_ddim(model, diffusion, x_T, uniform, eta, noise, clip)
        torch.testing.assert_close(new, old, atol=OLD_TOLERANCE, rtol=0)
    x_T, _ = initial_noise(seeds, SHAPE)
    for steps in (logsnr, uniform):
        new = dpm_solver_pp_sample(model, diffusion, x_T, steps, clip_denoised=clip)
        torch.testing.assert_close(new, _old_dpm_solver_pp(model, diffusion, x_T, steps, clip), atol=OLD_TOLERANCE, rtol=0)


# ================================================================== 3. mean prediction at any step count
# float32: x̂0 = (μ̃ − coef2 x_t)/coef1 divides by a small coef1 at large t (1.5e-3 at t = 999 cosine,
# 1.3e-4 linear), magnifying μ̃'s float32 rounding there; measured max 1.9e-4 (ddim, cosine), ≤ 1.1e-4
# elsewhere. float64: measured ≤ 3.6e-13. A wrong coefficient or timestep moves images by 1e-2 or more.
MEAN_TOLERANCE = {torch.float32: 1e-3, torch.float64: 1e-9}


def _draw(sampler, model, diffusion, dtype, seeds, steps=10, churn=None):
    """What ``sample`` does (same default spacings, same streams), at any dtype."""
    count = heun_levels(steps) if sampler == "heun" else steps
    timesteps = sampling_timesteps(T, count, DEFAULT_SPACING[sampler], diffusion.alphas_cumprod)
    x_T, noise = initial_noise(seeds, SHAPE, dtype=dtype)
    common = dict(clip_denoised=False)
    if sampler == "ddpm":
        return ddpm_sample(model, diffusion, x_T, timesteps, noise=noise, **common)
    if sampler == "ddim":
        return ddim_sample(model, diffusion, x_T, timesteps, **common)
    if sampler == "dpm++":
        return dpm_solver_pp_sample(model, diffusion, x_T, timesteps, **common)
    if sampler == "dpm++sde":
        return dpm_solver_pp_sde_sample(model, diffusion, x_T, timesteps, noise=noise, **common)
    return heun_sample(model, diffusion, x_T, timesteps, churn=churn, noise=noise, **common)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++", "dpm++sde", "heun"])
def test_mean_prediction_samples_like_eps_at_fewer_steps(sampler, schedule):
    """A network predicting the full process's μ̃ gives the ε network's images at K = 10 < T = 1000."""
    eps_diffusion = _diffusion(schedule)
    mean_diffusion = _diffusion(schedule, prediction="mean")
    churn = Churn(s_churn=2.0) if sampler == "heun" else None
    seeds = list(range(16))
    eps_model = GaussianDenoiser(eps_diffusion.betas)
    mean_model = Counting(MeanGaussian(mean_diffusion))
    reference = sample(eps_model, eps_diffusion, SHAPE, seeds, sampler=sampler, steps=10, churn=churn, clip_denoised=False)
    images = sample(mean_model, mean_diffusion, SHAPE, seeds, sampler=sampler, steps=10, churn=churn, clip_denoised=False)
    assert 3 < len(set(mean_model.seen)) <= 10  # really visited K < T timesteps
    torch.testing.assert_close(images, reference, atol=MEAN_TOLERANCE[torch.float32], rtol=0)
    assert reference.std() > 0.2  # not a degenerate comparison
    assert torch.equal(_draw(sampler, eps_model, eps_diffusion, torch.float32, seeds, churn=churn), reference)
    eps64 = _draw(sampler, eps_model, eps_diffusion, torch.float64, seeds, churn=churn)
    mean64 = _draw(sampler, mean_model, mean_diffusion, torch.float64, seeds, churn=churn)
    assert mean64.dtype == torch.float64
    torch.testing.assert_close(mean64, eps64, atol=MEAN_TOLERANCE[torch.float64], rtol=0)


# ================================================================== 4. Heun
def test_heun_without_churn_is_deterministic():
    diffusion = _diffusion("linear")
    model = GaussianDenoiser(diffusion.betas)
    x_T, _ = initial_noise(range(4), SHAPE)
    steps = sampling_timesteps(T, 8, "karras", diffusion.alphas_cumprod)
    settings = ((None, None), (Churn(), SampleNoise([1, 2, 3, 4])), (Churn(s_churn=0), SampleNoise([9, 8, 7, 6])))
    runs = [heun_sample(model, diffusion, x_T, steps, churn=churn, noise=noise) for churn, noise in settings]
    assert all(torch.equal(run, runs[0]) for run in runs[1:])
    churned = heun_sample(model, diffusion, x_T, steps, churn=Churn(s_churn=5), noise=SampleNoise([1, 2, 3, 4]))
    assert not torch.allclose(churned, runs[0], atol=1e-3)
    with pytest.raises(ValueError, match="SampleNoise"):
        heun_sample(model, diffusion, x_T, steps, churn=Churn(s_churn=5))


def _hand_d(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """The Gaussian D(x; σ) = μ + s²/(s² + σ²)(x − μ), float64."""
    s2 = S**2
    return MU + s2 / (s2 + sigma**2) * (x - MU)


def _heun_two_levels(x_T: torch.Tensor, sigma0: float, sigma1: float, hat0: float, hat1: float, z0, z1, s_noise: float):
    """EDM Alg. 2 for N = 2 (σ_2 = 0), float64: churn to σ̂, Heun step σ̂0 → σ1, churn, Euler σ̂1 → 0."""
    x = x_T.double() * math.sqrt(1 + sigma0**2)
    if hat0 != sigma0:
        x = x + math.sqrt(hat0**2 - sigma0**2) * s_noise * z0
    d = (x - _hand_d(x, hat0)) / hat0
    x_euler = x + (sigma1 - hat0) * d
    d_next = (x_euler - _hand_d(x_euler, sigma1)) / sigma1
    x = x + (sigma1 - hat0) * (d + d_next) / 2
    if hat1 != sigma1:
        x = x + math.sqrt(hat1**2 - sigma1**2) * s_noise * z1
    d = (x - _hand_d(x, hat1)) / hat1
    return x + (0 - hat1) * d  # Euler to σ = 0


@pytest.mark.parametrize("steps", [[600, 150], [999, 40]])
def test_heun_two_levels_by_hand(steps):
    """heun_sample on float64 inputs equals the hand computation to 1e-6 (measured ≤ 1e-13), deterministic
    and with churn at both levels; float32 inputs agree to 2e-5 at σ0 = 6.2 (measured 1.2e-6) and to 2e-2
    at σ0 = σ_999 = 157 straight down to σ1 = 0.08 (measured 4e-3: x ≈ 470 cancels to ≈ 0.1 in one step)."""
    diffusion = _diffusion("linear")
    model = Counting(GaussianDenoiser(diffusion.betas))
    sigmas = _sigmas(diffusion)
    s0, s1 = sigmas[steps[0]], sigmas[steps[1]]
    seeds = [5, 6, 7]
    float32_tol = 2e-5 if s0 < 10 else 2e-2
    x_T, _ = initial_noise(seeds, SHAPE)
    expected = _heun_two_levels(x_T, s0, s1, s0, s1, None, None, 1.0)
    for dtype, tol in ((torch.float64, 1e-6), (torch.float32, float32_tol)):
        model.seen.clear()
        got = heun_sample(model, diffusion, x_T.to(dtype), steps[::-1], clip_denoised=False)  # any order
        assert got.dtype == dtype
        assert model.seen == [steps[0], steps[1], steps[1]]  # 2N − 1 = 3 evaluations
        torch.testing.assert_close(got.double(), expected, atol=tol, rtol=0)

    # churn at both levels: γ = min(S_churn/N, √2 − 1) = 0.3, σ̂ = the trained level nearest σ(1 + γ) in log σ
    churn = Churn(s_churn=0.6, s_tmin=0.0, s_tmax=500.0, s_noise=1.003)
    t_hat = [max(t, _nearest(sigmas, sigmas[t] * 1.3)) for t in steps]
    assert t_hat[1] > steps[1] and (t_hat[0] > steps[0]) == (steps[0] < T - 1)
    _, hand_noise = initial_noise(seeds, SHAPE)
    z0 = hand_noise.randn(*SHAPE).double() if t_hat[0] != steps[0] else None
    z1 = hand_noise.randn(*SHAPE).double()
    expected = _heun_two_levels(x_T, s0, s1, sigmas[t_hat[0]], sigmas[t_hat[1]], z0, z1, 1.003)
    for dtype, tol in ((torch.float64, 1e-6), (torch.float32, float32_tol)):
        _, noise = initial_noise(seeds, SHAPE, dtype=dtype)
        model.seen.clear()
        got = heun_sample(model, diffusion, x_T.to(dtype), steps, churn=churn, noise=noise, clip_denoised=False)
        assert model.seen == [t_hat[0], steps[1], t_hat[1]]
        torch.testing.assert_close(got.double(), expected, atol=tol, rtol=0)


@pytest.mark.parametrize("levels", [1, 2, 5, 13])
def test_heun_makes_2n_minus_1_evaluations(levels):
    diffusion = _diffusion("cosine")
    model = Counting(GaussianDenoiser(diffusion.betas))
    steps = sampling_timesteps(T, levels, "karras", diffusion.alphas_cumprod)
    heun_sample(model, diffusion, torch.zeros(2, *SHAPE), steps)
    assert len(model.seen) == 2 * levels - 1
    assert model.seen[0::2] == steps and model.seen[1::2] == steps[1:]  # the correction is at the next level


@pytest.mark.parametrize("budget", [1, 2, 3, 4, 19, 20, 21])
def test_sample_heun_stays_within_its_evaluation_budget(budget):
    diffusion = _diffusion("linear")
    model = Counting(GaussianDenoiser(diffusion.betas))
    sample(model, diffusion, SHAPE, [0, 1], sampler="heun", steps=budget)
    assert heun_levels(budget) == max(1, (budget + 1) // 2)
    assert len(model.seen) == 2 * heun_levels(budget) - 1
    assert budget - 1 <= len(model.seen) <= budget


def test_churn_noise_only_inside_its_sigma_range():
    diffusion = _diffusion("linear")
    sigmas = _sigmas(diffusion)
    steps = sampling_timesteps(T, 10, "karras", diffusion.alphas_cumprod)
    churn = Churn(s_churn=3.0, s_tmin=0.3, s_tmax=10.0)  # γ = 0.3
    inside = [t for t in steps if 0.3 <= sigmas[t] <= 10.0]
    assert 0 < len(inside) < len(steps) - 2  # levels on both sides of the range
    model = Counting(GaussianDenoiser(diffusion.betas))
    x_T, _ = initial_noise([0, 1], SHAPE)
    noise = CountingNoise([0, 1])
    heun_sample(model, diffusion, x_T, steps, churn=churn, noise=noise)
    assert noise.draws == len(inside)
    first_calls = model.seen[0::2]  # the first evaluation of each level is at σ̂
    for t, seen in zip(steps, first_calls, strict=True):
        if t in inside:
            assert seen == max(t, _nearest(sigmas, sigmas[t] * 1.3)) and seen > t
        else:
            assert seen == t
    # S_churn large: γ is capped at √2 − 1
    assert Churn(s_churn=100.0).gamma(1.0, 10) == pytest.approx(math.sqrt(2) - 1)
    assert Churn(s_churn=100.0).gamma(60.0, 10) == 0 and Churn(s_churn=100.0).gamma(0.01, 10) == 0


@pytest.mark.parametrize("churn", [None, Churn(s_churn=10.0)])
def test_heun_draws_its_exact_discretised_law(churn):
    """25 levels: the exact law of the discretisation (float64, written from EDM Alg. 2), not the data law."""
    diffusion = _diffusion("cosine")
    sigmas = _sigmas(diffusion)
    steps = sampling_timesteps(T, 25, "karras", diffusion.alphas_cumprod)
    x_T, noise = initial_noise(range(N), SHAPE)
    x = heun_sample(GaussianDenoiser(diffusion.betas), diffusion, x_T, steps, churn=churn, noise=noise, clip_denoised=False)
    law = _heun_law(sigmas, steps, churn)
    if churn is None:  # deterministic: the law's coefficient of x_T is the per-sample map itself
        expected = torch.from_numpy(law.m) + torch.from_numpy(law.c[0]) * x_T.double()
        torch.testing.assert_close(x.double(), expected, atol=1e-5, rtol=0)  # float32: measured 8e-7
    _assert_law(x, law)


# ================================================================== 5. recovering the Gaussian law
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("heun", dict(sampler="heun", steps=99)),  # 50 levels
        ("heun-churn", dict(sampler="heun", steps=199, churn=Churn(s_churn=10.0))),  # 100 levels
        ("dpm++sde", dict(sampler="dpm++sde", steps=100)),
    ],
)
def test_edm_samplers_recover_the_data(name, kwargs, schedule):
    """The data moments, at the default tolerances of ``_assert_moments`` (mean 4 s.e. per pixel,
    variance 15 % per pixel and 3 % on average).

    The exact laws (float64, :func:`_heun_law`, :func:`_sde_law`) say how many steps that needs on
    this narrow data (s in 0.05..0.3); their average relative variance bias, linear / cosine:
    heun 25 levels +5.9 / +6.7 %, 50 levels +0.8 / +1.3 %; heun with S_churn = 10: 25 levels
    +18 / +19 %, 50 levels +4.0 / +4.6 %, 100 levels +0.9 / +1.3 %; dpm++sde 20 steps +5.8 / +6.3 %,
    50 steps +0.7 / +2.5 %, 100 steps +0.1 / +0.6 %. Hence 50 levels, 100 levels and 100 steps here;
    the 25-level and 20-step runs are checked against their exact law instead. Measured on these
    2000 samples: average +1.2 / +1.7 % (heun), +0.6 / +1.0 % (churn), −0.4 / +0.7 % (sde); worst
    pixel ≤ 9.1 %; worst mean 3.0 s.e.
    """
    diffusion = _diffusion(schedule)
    x = sample(GaussianDenoiser(diffusion.betas), diffusion, SHAPE, range(N), clip_denoised=False, **kwargs)
    _assert_moments(x, MU.numpy(), S.numpy() ** 2)


def test_dpm_solver_sde_draws_its_exact_discretised_law():
    """20 logsnr steps, where the SDE's law is still +5.8 % wide of the data in variance: the exact law
    of the discretisation (float64, written from Lu et al. §4 / k-diffusion's midpoint form)."""
    diffusion = _diffusion("linear")
    steps = sampling_timesteps(T, 20, "logsnr", diffusion.alphas_cumprod)
    x_T, noise = initial_noise(range(N), SHAPE)
    x = dpm_solver_pp_sde_sample(GaussianDenoiser(diffusion.betas), diffusion, x_T, steps, noise=noise, clip_denoised=False)
    law = _sde_law(diffusion.alphas_cumprod, steps)
    assert (law.var / S.numpy() ** 2 - 1).mean() > 0.04  # biased: this is not the data law
    _assert_law(x, law)


def test_dpm_solver_sde_at_eta_zero_is_dpm_solver_pp():
    diffusion = _diffusion("cosine")
    model = RandomNet(seed=2)
    x_T, noise = initial_noise(range(6), SHAPE)
    for count in (8, 20):
        steps = sampling_timesteps(T, count, "logsnr", diffusion.alphas_cumprod)
        ode = dpm_solver_pp_sample(model, diffusion, x_T, steps)
        sde = dpm_solver_pp_sde_sample(model, diffusion, x_T, steps, noise=CountingNoise(range(6)), eta=0.0)
        torch.testing.assert_close(sde, ode, atol=1e-6, rtol=0)


# ================================================================== 6. per-sample seeds
@pytest.mark.parametrize("sampler, churn", [("dpm++sde", None), ("heun", Churn(s_churn=10.0))])
def test_image_k_depends_only_on_seed_k(sampler, churn):
    diffusion = _diffusion("cosine")
    model = GaussianDenoiser(diffusion.betas)
    seeds = [11, 3, 7, 0, 42, 5, 9, 1]
    kwargs = dict(sampler=sampler, steps=12, churn=churn)
    batch = sample(model, diffusion, SHAPE, seeds, **kwargs)
    singles = torch.cat([sample(model, diffusion, SHAPE, [seed], **kwargs) for seed in seeds])
    torch.testing.assert_close(batch, singles, atol=1e-6, rtol=0)
    reversed_batch = sample(model, diffusion, SHAPE, seeds[::-1], **kwargs)
    torch.testing.assert_close(reversed_batch, batch.flip(0), atol=1e-6, rtol=0)
    other = sample(model, diffusion, SHAPE, [s + 100 for s in seeds], **kwargs)
    assert (other - batch).abs().amax(dim=(1, 2, 3)).min() > 1e-3  # every image changes with its seed
    # the noise injections matter (not just x_T): same x_T, other later streams
    x_T, _ = initial_noise(seeds, SHAPE)
    _, other_noise = initial_noise([s + 100 for s in seeds], SHAPE)
    steps = sampling_timesteps(T, heun_levels(12) if sampler == "heun" else 12,
                               "karras" if sampler == "heun" else "logsnr", diffusion.alphas_cumprod)
    if sampler == "heun":
        mixed = heun_sample(model, diffusion, x_T, steps, churn=churn, noise=other_noise)
    else:
        mixed = dpm_solver_pp_sde_sample(model, diffusion, x_T, steps, noise=other_noise)
    assert not torch.allclose(mixed, batch, atol=1e-3)


# ================================================================== 7. bf16
# On [−1, 1] images; measured mean 0.0039 / max 0.028 (dpm++), 0.0047 / 0.028 (heun), 8 images, 9 evaluations.
BF16_MEAN_TOL, BF16_MAX_TOL = 0.02, 0.15


def _small_unet() -> UNet:
    config = UNetConfig(resolution=8, in_channels=3, base_channels=16, channel_mult=(1, 2), num_res_blocks=1,
                        attention_resolutions=(4,), num_heads=2)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = UNet(config)
        with torch.no_grad():  # the zero-initialised output conv: give it weights so the output is not 0
            for param in model.out.parameters():
                if param.abs().sum() == 0:
                    param.normal_(0, 0.05)
    return model.eval()


@pytest.mark.parametrize("sampler", ["dpm++", "heun"])
def test_bf16_sampling_follows_fp32(sampler):
    model = _small_unet()
    diffusion = _diffusion("linear", prediction="x0")  # a random net's x̂0 stays mostly inside [−1, 1]: few clipped pixels
    dtypes: list[torch.dtype] = []
    hooks = [module.register_forward_hook(lambda mod, inputs, out: dtypes.append(out.dtype))
             for module in model.modules() if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear))]
    kwargs = dict(sampler=sampler, steps=9)
    try:
        full = sample(model, diffusion, (3, 8, 8), range(8), **kwargs)
        assert set(dtypes) == {torch.float32}
        dtypes.clear()
        half = sample(model, diffusion, (3, 8, 8), range(8), precision="bf16", **kwargs)
        assert torch.bfloat16 in dtypes  # the network really ran in bf16
    finally:
        for hook in hooks:
            hook.remove()
    assert half.dtype == torch.float32 and full.abs().max() <= 1
    diff = (half - full).abs()
    assert 0 < diff.mean() < BF16_MEAN_TOL and diff.max() < BF16_MAX_TOL, (diff.mean().item(), diff.max().item())
    assert full.std() > 0.1 and (full.abs() > 0.999).float().mean() < 0.1  # not trivial, not all clipped


# ================================================================== 8. karras spacing
def _karras_by_hand(abar: np.ndarray, count: int, rho: float) -> list[int]:
    """EDM eq. 5 between σ_max = min(80, σ_{T−1}) and σ_min = max(0.002, σ_0), each σ_i rounded to
    the trained step nearest in log σ."""
    sigmas = np.sqrt((1 - abar) / abar)
    top, bottom = min(80.0, sigmas[-1]), max(0.002, sigmas[0])
    targets = [(top ** (1 / rho) + i / (count - 1) * (bottom ** (1 / rho) - top ** (1 / rho))) ** rho for i in range(count)]
    return [_nearest(sigmas, target) for target in targets]


@pytest.mark.parametrize("num_steps, count, rho", [(1000, 10, 7.0), (1000, 10, 3.0), (100, 10, 3.0)])
def test_karras_spacing_is_edm_eq_5(num_steps, count, rho):
    abar = np.cumprod(1 - beta_schedule("linear", num_steps))
    hand = _karras_by_hand(abar, count, rho)
    assert len(set(hand)) == count  # no collisions to nudge apart here
    assert sampling_timesteps(num_steps, count, "karras", abar, rho) == hand
    if (num_steps, rho) == (1000, 7.0):
        assert hand == [930, 865, 789, 695, 575, 414, 217, 71, 14, 0]
        assert sampling_timesteps(T, 10, "karras", abar) == hand  # ρ = 7 is the default
    if num_steps == 100:  # the one case of these where rounding in σ instead of log σ differs (77 for 78)
        assert hand == [89, 86, 82, 78, 72, 64, 53, 36, 12, 0]


def test_karras_spacing_on_a_short_cosine_process_and_rho():
    abar = np.cumprod(1 - beta_schedule("cosine", 50))
    sigmas = np.sqrt((1 - abar) / abar)
    steps = sampling_timesteps(50, 10, "karras", abar)
    assert len(steps) == 10 and len(set(steps)) == 10 and steps == sorted(steps, reverse=True)
    assert 0 <= steps[-1] and steps[0] <= 49 and all(isinstance(t, int) for t in steps)
    assert steps[0] == _nearest(sigmas, 80.0) and steps[-1] == 0  # σ_max = 80 (σ_49 ≈ 10⁴ is clipped off)
    linear = np.cumprod(1 - beta_schedule("linear", T))
    seven, three = sampling_timesteps(T, 10, "karras", linear), sampling_timesteps(T, 10, "karras", linear, rho=3.0)
    assert seven != three
    assert sum(t < 200 for t in seven) > sum(t < 200 for t in three)  # larger ρ: more steps at low noise
    assert sampling_timesteps(T, 1, "karras", linear) == [T - 1]
    with pytest.raises(UserError, match="--rho"):
        sampling_timesteps(T, 10, "karras", linear, rho=0.0)
    # through sample(): rho reaches the heun sampler's levels
    diffusion = _diffusion("linear")
    model = Counting(GaussianDenoiser(diffusion.betas))
    sample(model, diffusion, SHAPE, [0], sampler="heun", steps=19, rho=3.0)
    assert model.seen[0::2] == three


# ================================================================== 9. refusals
def test_settings_that_do_not_apply_are_refused():
    diffusion = _diffusion("linear", num_steps=50)
    model = GaussianDenoiser(diffusion.betas)
    with pytest.raises(UserError, match="--eta"):
        sample(model, diffusion, SHAPE, [0], sampler="dpm++", eta=0.5)
    for sampler in ("ddpm", "heun"):
        with pytest.raises(UserError, match="--eta"):
            sample(model, diffusion, SHAPE, [0], sampler=sampler, eta=0.0)
    for sampler in ("ddim", "ddpm", "dpm++", "dpm++sde"):
        with pytest.raises(UserError, match="--churn"):
            sample(model, diffusion, SHAPE, [0], sampler=sampler, churn=Churn(s_churn=1))
    sample(model, diffusion, SHAPE, [0], sampler="ddim", churn=Churn())  # deterministic churn settings are harmless
    sample(model, diffusion, SHAPE, [0], sampler="dpm++sde", eta=0.5)
    with pytest.raises(UserError, match="--churn"):
        Churn(s_churn=-1).check()
    with pytest.raises(UserError, match="--churn"):
        sample(model, diffusion, SHAPE, [0], sampler="heun", churn=Churn(s_churn=-1))
    with pytest.raises(UserError, match="--churn-noise"):
        Churn(s_noise=0).check()
    with pytest.raises(UserError, match="--churn-noise"):
        sample(model, diffusion, SHAPE, [0], sampler="heun", churn=Churn(s_churn=1, s_noise=0))
    with pytest.raises(UserError, match="--churn-tmin"):
        sample(model, diffusion, SHAPE, [0], sampler="heun", churn=Churn(s_churn=1, s_tmin=2.0, s_tmax=1.0))
    with pytest.raises(UserError, match="--churn"):
        Churn(s_churn=math.inf).check()
    x_T, noise = initial_noise([0], SHAPE)
    for eta in (2.0, -0.1, math.nan):
        with pytest.raises(UserError, match="--eta"):
            dpm_solver_pp_sde_sample(model, diffusion, x_T, [49, 0], noise=noise, eta=eta)
    with pytest.raises(UserError, match="--eta"):
        sample(model, diffusion, SHAPE, [0], sampler="dpm++sde", eta=2.0)
    with pytest.raises(UserError):
        dpm_solver_pp_sde_sample(model, diffusion, x_T, [49, 0], noise=noise, s_noise=0.0)
    with pytest.raises(UserError, match="--precision"):
        sample(model, diffusion, SHAPE, [0], precision="fp16")  # type: ignore[arg-type]


def test_auto_precision_resolves_by_the_devices_native_bf16(monkeypatch):
    import landiff.samplers.denoiser as denoiser_module
    from landiff.samplers import resolve_sampling_precision

    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(denoiser_module, "native_bf16", lambda device, native=native: native)
        assert resolve_sampling_precision("auto", "cpu") == expected
        assert Denoiser(lambda x, t: x, GaussianDiffusion(beta_schedule("cosine", 10)), precision="auto").precision == "auto"
    assert resolve_sampling_precision("fp32", "cpu") == "fp32" and resolve_sampling_precision("bf16", "cpu") == "bf16"
    with pytest.raises(UserError, match="--precision"):
        resolve_sampling_precision("fp16", "cpu")
