"""Direct checks against values computed independently in the test (by hand, in plain loops or in
numpy/scipy from the papers' formulas), for pieces that were otherwise only tested against themselves:
the EMA, KID, FLOP counting, the hybrid loss and the variational bound (bits/dim)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from landiff.diffusion import HYBRID_LAMBDA, GaussianDiffusion, beta_schedule
from landiff.metrics import kid
from landiff.metrics.fid import mmd2_unbiased
from landiff.train.ema import EMA


# ----------------------------------------------------------------- EMA
class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))


def _run_ema(decay: float, warmup: bool, values: list[list[float]]) -> tuple[list[list[float]], list[float], EMA]:
    net = _Net()
    ema = EMA(net, decay, warmup=warmup)
    shadows, decays = [], []
    for k, v in enumerate(values):
        with torch.no_grad():
            net.w.copy_(torch.tensor(v, dtype=torch.float64))
            net.count.fill_(k + 1)
        decays.append(ema.current_decay())
        ema.update(net)
        shadows.append(ema.model.w.tolist())
        assert ema.model.count.item() == k + 1  # buffers are copied, not averaged
    return shadows, decays, ema


VALUES = [[5.0, -1.0, 2.0], [10.0, 0.0, 2.0], [10.0, 3.0, -4.0], [0.0, 3.0, 1.0], [1.0, 1.0, 1.0], [2.0, 0.0, 8.0]]


def test_ema_without_warmup_is_a_plain_exponential_average():
    shadows, decays, _ = _run_ema(0.75, False, VALUES)
    assert decays == [0.75] * len(VALUES)
    expected, hand = [0.0, 0.0, 0.0], []
    for v in VALUES:  # θ_ema ← d·θ_ema + (1 − d)·θ, starting from the initial weights (zeros)
        expected = [0.75 * e + 0.25 * x for e, x in zip(expected, v, strict=True)]
        hand.append(expected)
    np.testing.assert_allclose(shadows, hand, rtol=1e-12, atol=1e-12)
    assert shadows[0] == pytest.approx([1.25, -0.25, 0.5])  # 0.25 · (5, −1, 2)


def test_ema_warmup_follows_tensorflow_num_updates_rule():
    """Warm-up d_n = min(d, (1 + n)/(10 + n)), n = updates done before this one: the rule of TensorFlow's
    ExponentialMovingAverage(decay, num_updates). Its documented example: shadow 0, variable 5, first
    apply with num_updates = 0 gives decay 0.1 and shadow 0.1·0 + 0.9·5 = 4.5."""
    shadows, decays, ema = _run_ema(0.3, True, VALUES)
    hand_decays = [1 / 10, 2 / 11, 3 / 12, 0.3, 0.3, 0.3]  # 4/13 = 0.3077 > 0.3: capped from n = 3 on
    np.testing.assert_allclose(decays, hand_decays, rtol=1e-15)
    assert shadows[0] == pytest.approx([4.5, -0.9, 1.8])  # the TF example, per coordinate: 0.9·(5, −1, 2)
    expected, hand = [0.0, 0.0, 0.0], []
    for d, v in zip(hand_decays, VALUES, strict=True):
        expected = [d * e + (1 - d) * x for e, x in zip(expected, v, strict=True)]
        hand.append(expected)
    np.testing.assert_allclose(shadows, hand, rtol=1e-12, atol=1e-12)
    assert ema.num_updates == len(VALUES)
    assert EMA(_Net(), 0.9999, warmup=True).current_decay() == pytest.approx(0.1)


# ----------------------------------------------------------------- KID
def _cubic(u: list[float], v: list[float]) -> float:
    return (sum(a * b for a, b in zip(u, v, strict=True)) / len(u) + 1.0) ** 3


def _mmd2_by_loops(x: list[list[float]], y: list[list[float]]) -> float:
    m = len(x)
    xx = sum(_cubic(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(_cubic(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(_cubic(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / (m * m)


def test_kid_on_a_hand_computed_example():
    x = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    y = [[0.0, 0.0], [2.0, 0.0], [1.0, -1.0]]
    # By hand, k(u, v) = (u·v/2 + 1)³: within x the off-diagonal pairs give 1, 27/8, 27/8 (sum over
    # i ≠ j = 15.5); within y 1, 1, 8 (sum 20); across, rows x1: 1, 8, 27/8; x2: 1, 1, 1/8; x3: 1, 8, 1
    # (sum 24.5). MMD²_u = 15.5/6 + 20/6 − 2·24.5/9 = 17/36.
    assert _mmd2_by_loops(x, y) == pytest.approx(17 / 36, rel=1e-14)
    assert mmd2_unbiased(np.array(x), np.array(y)) == pytest.approx(17 / 36, rel=1e-12)
    whole = kid(np.array(x), np.array(y), subsets=3, subset_size=3, seed=0)  # every subset is the whole set
    assert whole.value == pytest.approx(17 / 36, rel=1e-12) and whole.std == pytest.approx(0.0, abs=1e-12)


def test_kid_subset_average_matches_loops_on_random_features():
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((9, 4)), rng.standard_normal((7, 4)) * 1.5 + 0.3
    values = []
    for s in range(5):  # subsets of 4 from each set, drawn by the documented stream (seed, s)
        r = np.random.default_rng([11, s])
        ia, ib = r.choice(9, 4, replace=False), r.choice(7, 4, replace=False)
        values.append(_mmd2_by_loops(a[ia].tolist(), b[ib].tolist()))
    result = kid(a, b, subsets=5, subset_size=4, seed=11)
    assert result.value == pytest.approx(float(np.mean(values)), rel=1e-12)
    assert len(set(np.round(values, 12))) > 1  # the subsets really differ
    assert result.std == pytest.approx(float(np.std(values, ddof=1)), rel=1e-9)  # sample s.d. over subsets


# ----------------------------------------------------------------- FLOPs
class _TwoConvs(nn.Module):
    """conv 3→4 then conv 4→2, 3×3, padding 1; called as net(x, t) like the UNet."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


def test_diffusion_flops_per_image_match_a_hand_count():
    from landiff.workflows.cost import flops_per_image

    res = 8
    config = SimpleNamespace(resolution=res, net=SimpleNamespace(in_channels=3, num_classes=0))
    loaded = SimpleNamespace(config=config, diffusion=object(), model=_TwoConvs())
    train, per_eval = flops_per_image(loaded)  # type: ignore[arg-type]
    # A conv is 2·MACs = 2·(H·W·C_out·C_in·k²) per pass; biases (elementwise) are not counted.
    conv_a, conv_b = 2 * res * res * 4 * 3 * 9, 2 * res * res * 2 * 4 * 9  # 13 824 and 9 216
    assert per_eval == conv_a + conv_b == 23_040
    # Backward: each conv's weight gradient costs as much as its forward, and so does the input
    # gradient — except for the first conv, whose input (the image) needs none.
    assert train == (conv_a + conv_b) + (conv_b + conv_b) + conv_a == 55_296


def test_gan_flops_per_image_match_a_hand_count(monkeypatch):
    import landiff.workflows.cost as cost
    from landiff.workflows.cost import flops_per_image

    res, z_dim = 4, 5

    class G(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(z_dim, 3 * res * res)

        def forward(self, z, y):
            return self.fc(z).view(-1, 3, res, res)

    class D(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3 * res * res, 1)

        def forward(self, x, y):
            return self.fc(x.flatten(1))

    monkeypatch.setattr(cost, "build_generator", lambda config, device: G())
    monkeypatch.setattr(cost, "build_discriminator", lambda config, device: D())
    def count(**flavour):
        gan = SimpleNamespace(z_dim=z_dim, num_classes=0, d_steps=2, loss="ns", r1_gamma=0.0, r1_every=16)
        config = SimpleNamespace(resolution=res, gan=SimpleNamespace(**{**vars(gan), **flavour}))
        return flops_per_image(SimpleNamespace(config=config, diffusion=None, model=None))  # type: ignore[arg-type]

    train, per_eval = count()
    g_fwd = 2 * z_dim * 48  # per image: a 5→48 matmul
    d_fwd = 2 * 48 * 1
    assert per_eval == g_fwd == 480
    d_update = d_fwd + d_fwd  # forward + weight gradient (the image input needs no gradient)
    g_update = (g_fwd + d_fwd) + (d_fwd + d_fwd) + g_fwd  # D: input + weight grads; G: weight grads only
    # Per generator step and image: d_steps × (D on a real and on a fake image + G making the fake) + G's update.
    assert train == 2 * (2 * d_update + g_fwd) + g_update == 2976
    # Lazy R1 per image: D forward, its backward with the graph kept (input and weight gradients),
    # and the penalty's backward through the input gradient (one more weight-gradient matmul).
    r1 = 4 * d_fwd
    assert count(r1_gamma=1.0, r1_every=1)[0] == train + 2 * r1
    assert count(r1_gamma=1.0, r1_every=4)[0] == train + 2 * r1 // 4
    assert count(loss="rsgan")[0] == train + d_update  # the real images pass through D in the G update too


# ----------------------------------------------------------------- the bound, independently
def _tables(betas: np.ndarray) -> dict[str, np.ndarray]:
    """DDPM eq. 4–7 from the β's, written out here (not taken from landiff)."""
    alphas = 1 - betas
    abar = np.cumprod(alphas)
    abar_prev = np.concatenate([[1.0], abar[:-1]])
    return {
        "abar": abar,
        "c1": betas * np.sqrt(abar_prev) / (1 - abar),
        "c2": (1 - abar_prev) * np.sqrt(alphas) / (1 - abar),
        "post_var": betas * (1 - abar_prev) / (1 - abar),
    }


def _phi(x: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return ndtr(x)


def _decoder_nats(x0: np.ndarray, mean: np.ndarray, std: np.ndarray | float) -> np.ndarray:
    """−log P(bin of x0) under N(mean, std²); bins of width 2/255, the two end bins open (DDPM eq. 13)."""
    upper = np.where(x0 > 0.999, 1.0, _phi((x0 + 1 / 255 - mean) / std))
    lower = np.where(x0 < -0.999, 0.0, _phi((x0 - 1 / 255 - mean) / std))
    return -np.log(upper - lower)


def _gauss_kl(m1, v1, m2, v2):
    return 0.5 * (np.log(v2 / v1) + v1 / v2 + (m1 - m2) ** 2 / v2 - 1)


def _x0(batch: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    x = torch.randint(0, 256, (batch, 3, 4, 4), generator=g).double() / 127.5 - 1
    x[0, 0, 0, :2] = torch.tensor([-1.0, 1.0])  # both open end bins appear
    return x


def test_nll_of_the_true_posterior_mean_model_is_prior_plus_decoder_in_closed_form():
    """A ``mean`` model that outputs μ̃(x_t, x0) with σ² = β̃_t has KL = 0 at every t > 0, so the whole
    bound is the prior KL(q(x_T|x0) ‖ N(0, I)) plus the decoder term; at t = 0 μ̃ = x0 exactly and the
    decoder's σ² is β̃_1 (the clipped log-variance). Both are computed here from the formulas; neither
    depends on the noise drawn."""
    T = 50
    betas = beta_schedule("linear", T)
    tab = _tables(betas)
    diffusion = GaussianDiffusion(betas, prediction="mean")
    x0 = _x0()

    def oracle(x_t, t):
        c1 = torch.from_numpy(tab["c1"])[t].view(-1, 1, 1, 1)
        c2 = torch.from_numpy(tab["c2"])[t].view(-1, 1, 1, 1)
        return c1 * x0 + c2 * x_t

    result = diffusion.nll(oracle, x0, generator=torch.Generator().manual_seed(0))
    x = x0.numpy()
    a = tab["abar"][-1]
    prior = _gauss_kl(np.sqrt(a) * x, 1 - a, 0.0, 1.0).mean(axis=(1, 2, 3)) / math.log(2)
    decoder = _decoder_nats(x, x, math.sqrt(tab["post_var"][1])).mean(axis=(1, 2, 3)) / math.log(2)
    # β̃_1 ≈ 1.67e-3 (σ ≈ 0.041) against a bin half-width of 1/255: ≈ 3.7 bits for an interior pixel.
    assert 3 < decoder.min() and decoder.max() < 4
    np.testing.assert_allclose(result.prior_bpd.numpy(), prior, rtol=1e-9)
    np.testing.assert_allclose(result.vb[:, 1:].numpy(), 0.0, atol=1e-9)
    # landiff's decoder uses the tanh approximation of Φ (as DDPM's code); near 0 it is within ~1e-5.
    np.testing.assert_allclose(result.vb[:, 0].numpy(), decoder, rtol=2e-5)
    np.testing.assert_allclose(result.total_bpd.numpy(), prior + decoder, rtol=2e-5)


def test_nll_of_a_zero_noise_model_matches_a_numpy_bound():
    """Every term of the bound for ε_θ = 0 with fixed β̃ variances and x0 clipping, computed in numpy
    from the same forward noise (the generator's stream, one draw per t from T−1 down to 0)."""
    T = 30
    betas = beta_schedule("linear", T)
    tab = _tables(betas)
    diffusion = GaussianDiffusion(betas)
    x0 = _x0(2)
    result = diffusion.nll(lambda x, t: torch.zeros_like(x), x0, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    noise = {t: torch.randn(x0.shape, generator=g, dtype=x0.dtype).numpy() for t in reversed(range(T))}
    x = x0.numpy()
    expected = np.zeros((2, T))
    for t in range(T):
        a = tab["abar"][t]
        x_t = np.sqrt(a) * x + np.sqrt(1 - a) * noise[t]
        pred = np.clip(x_t / np.sqrt(a), -1, 1)  # x0 from ε = 0, clipped
        mean = tab["c1"][t] * pred + tab["c2"][t] * x_t
        if t == 0:
            expected[:, t] = _decoder_nats(x, mean, math.sqrt(tab["post_var"][1])).mean(axis=(1, 2, 3))
        else:
            true_mean = tab["c1"][t] * x + tab["c2"][t] * x_t
            var = tab["post_var"][t]
            expected[:, t] = _gauss_kl(true_mean, var, mean, var).mean(axis=(1, 2, 3))
    expected /= math.log(2)
    np.testing.assert_allclose(result.vb[:, 1:].numpy(), expected[:, 1:], rtol=1e-9)
    np.testing.assert_allclose(result.vb[:, 0].numpy(), expected[:, 0], rtol=3e-4)  # tanh-approximate Φ
    a = tab["abar"][-1]
    prior = _gauss_kl(np.sqrt(a) * x, 1 - a, 0.0, 1.0).mean(axis=(1, 2, 3)) / math.log(2)
    np.testing.assert_allclose(result.total_bpd.numpy(), expected.sum(1) + prior, rtol=1e-4)
    assert result.total_bpd.min() > 1.0  # predicting no noise at all is a poor model


def test_hybrid_loss_is_mse_plus_lambda_times_the_full_bound_estimate():
    """Improved DDPM §3.1: L_hybrid = L_simple + λ·L_vlb with λ = 0.001; with one t drawn uniformly,
    L_vlb ≈ T·L_t, i.e. the reference code's vb·T/1000. Here L_t (in bits/dim) is computed in numpy for
    a learned-range model whose output is all zeros: ε = 0 and v = 0, so log σ² = ½(log β_t + log β̃_t)
    (eq. 15, with β̃_0 replaced by β̃_1); the bound sees the unclipped x0 estimate."""
    assert HYBRID_LAMBDA == 0.001
    T = 100
    betas = beta_schedule("linear", T)
    tab = _tables(betas)
    diffusion = GaussianDiffusion(betas, variance="learned_range", loss="hybrid")
    x0 = _x0(4).float()
    t = torch.tensor([0, 1, 37, T - 1])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    out = diffusion.training_losses(lambda x, s: torch.zeros(4, 6, 4, 4), x0, t, noise=noise)
    x, eps = x0.double().numpy(), noise.double().numpy()
    vb, mse = np.zeros(4), (eps**2).mean(axis=(1, 2, 3))
    for i, step in enumerate(t.tolist()):
        a = tab["abar"][step]
        x_t = np.sqrt(a) * x[i] + np.sqrt(1 - a) * eps[i]
        mean = tab["c1"][step] * (x_t / np.sqrt(a)) + tab["c2"][step] * x_t
        var = math.exp(0.5 * (math.log(betas[step]) + math.log(tab["post_var"][max(step, 1)])))
        if step == 0:
            vb[i] = _decoder_nats(x[i], mean, math.sqrt(var)).mean()
        else:
            vb[i] = _gauss_kl(tab["c1"][step] * x[i] + tab["c2"][step] * x_t, tab["post_var"][step], mean, var).mean()
    vb /= math.log(2)
    np.testing.assert_allclose(out.mse.double().numpy(), mse, rtol=1e-5)
    np.testing.assert_allclose(out.vb[1:].double().numpy(), vb[1:], rtol=1e-5)  # float32 maths
    np.testing.assert_allclose(out.vb[0].item(), vb[0], rtol=5e-4)  # the decoder's tanh-approximate Φ
    np.testing.assert_allclose(out.loss.double().numpy(), mse + 0.001 * T * vb, rtol=2e-4)
    assert (0.001 * T * vb / mse).max() > 1e-3  # the bound term is not negligible in what is compared
