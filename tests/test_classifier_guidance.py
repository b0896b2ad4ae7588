"""Classifier guidance (Dhariwal & Nichol 2021, arXiv 2105.05233, §4, Alg. 1 and 2) for every sampler.

Closed forms: on data drawn from a mixture of two 2-D Gaussians, the exact denoiser E[x0 | x_t] and the
exact classifier p(y | x_t) are known under the VP process, and at s = 1 the guided score is the score of
p_t(x_t | y) (Bayes), so guided sampling must reproduce the conditional distribution's component weight.
The labels are a noisy function of the component (p(y | c) below), so that weight (0.27/0.41 ≈ 0.659)
lies strictly between the prior 0.3 and 1, and guidance towards y = 0 keeps moving it up as s grows.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from landiff.cli.main import main
from landiff.diffusion import GaussianDiffusion, beta_schedule
from landiff.errors import UserError
from landiff.generate import generate, generation_provenance, to_classifier_labels
from landiff.metrics.provenance import Provenance
from landiff.runs.checkpoint import TrainState
from landiff.runs.config import finalize
from landiff.runs.load import LoadedRun
from landiff.runs.models import build_diffusion, build_unet
from landiff.samplers import SAMPLERS, ClassifierGuidance, Denoiser, ddpm_sample, initial_noise, sample
from tiny_runs import unet16

pytestmark = pytest.mark.usefixtures("one_thread")

# ----------------------------------------------------------------------------- the mixture
MEANS = torch.tensor([[0.8, 0.0], [-0.8, 0.0]], dtype=torch.float64)  # component c's mean (2-D data, shape (2, 1, 1))
VARIANCE = 0.25**2  # each component's isotropic variance
PRIOR = torch.tensor([0.3, 0.7], dtype=torch.float64)  # p(c)
LABELS = torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=torch.float64)  # p(y | c): row c, column y
# p(c = 0 | y = 0) = p(c=0) p(y=0|c=0) / p(y=0): the component weight of the conditional distribution
CONDITIONAL_WEIGHT = float(PRIOR[0] * LABELS[0, 0] / (PRIOR * LABELS[:, 0]).sum())


def _log_responsibilities(x: torch.Tensor, abar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(c | x_t) (B, 2) and the per-component variance of x_t, ᾱ v + 1 − ᾱ (B, 2); abar (B, 1)."""
    flat = x.flatten(1)
    var = abar * VARIANCE + 1 - abar
    d2 = ((flat[:, None, :] - abar.sqrt()[:, :, None] * MEANS.to(x.dtype)) ** 2).sum(-1)
    return torch.log_softmax(PRIOR.log().to(x.dtype) - 0.5 * d2 / var - var.log(), dim=1), var  # 2-D: −(D/2) log var


class MixtureDenoiser:
    """The exact x0-predicting network E[x0 | x_t] = Σ_c p(c | x_t) E[x0 | x_t, c] at original timestep t."""

    def __init__(self, betas: np.ndarray) -> None:
        self.abar = torch.from_numpy(np.cumprod(1.0 - betas))

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **kwargs) -> torch.Tensor:
        abar = self.abar[t].to(x.dtype)[:, None]
        log_r, var = _log_responsibilities(x, abar)
        a, means = abar.sqrt(), MEANS.to(x.dtype)[None]
        per_component = means + (a * VARIANCE / var)[:, :, None] * (x.flatten(1)[:, None, :] - a[:, :, None] * means)
        return (log_r.exp()[:, :, None] * per_component).sum(1).view_as(x)


def mixture_classifier(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The exact log p(y | x_t) = log Σ_c p(y | c) p(c | x_t), with ᾱ = 1/(1 + σ²) (valid logits)."""
    log_r, _ = _log_responsibilities(x, (1.0 / (1.0 + sigma**2))[:, None])
    return torch.logsumexp(log_r[:, :, None] + LABELS.log().to(x.dtype)[None], dim=1)


class BatchNoise:
    """One generator for the whole batch (the SampleNoise interface the ancestral sampler uses): a law test
    over 4000 samples × 250 steps needs no per-seed streams, and per-sample generators would cost seconds."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.generator = n, torch.Generator().manual_seed(seed)

    def check_batch(self, x: torch.Tensor) -> None:
        assert x.shape[0] == self.n

    def randn(self, *shape: int) -> torch.Tensor:
        return torch.randn((self.n, *shape), generator=self.generator)


def _weight_of_component_0(x: torch.Tensor) -> float:
    """Share of samples on component 0 (mean x = +0.8, std 0.25: the sign of x errs with p < 1e-3)."""
    return float((x[:, 0, 0, 0] > 0).double().mean())


def _to_class_0(n: int, scale: float) -> ClassifierGuidance:
    return ClassifierGuidance(mixture_classifier, scale, torch.zeros(n, dtype=torch.long))


N_MIXTURE = 4000  # SE of a weight near 0.66: 0.0075; the tolerance 0.035 is ≈ 4.7 of them
TOLERANCE = 0.035


def test_ode_samplers_reach_the_conditional_weight_and_grow_with_the_scale():
    betas = beta_schedule("linear", 1000)
    diffusion, model = GaussianDiffusion(betas, prediction="x0"), MixtureDenoiser(betas)
    weights = {}
    for scale in (0.0, 0.5, 1.0, 2.0, 4.0):
        x = sample(model, diffusion, (2, 1, 1), range(N_MIXTURE), sampler="dpm++", steps=20, clip_denoised=False,
                   classifier_guidance=_to_class_0(N_MIXTURE, scale))
        weights[scale] = _weight_of_component_0(x)
    assert abs(weights[0.0] - float(PRIOR[0])) < TOLERANCE, weights  # unguided: the prior weight
    assert abs(weights[1.0] - CONDITIONAL_WEIGHT) < TOLERANCE, weights  # Bayes: p(x | y = 0)
    ordered = list(weights.values())
    assert all(a < b for a, b in zip(ordered, ordered[1:], strict=False)), weights
    for sampler, steps in (("ddim", 50), ("heun", 21)):  # the ε form in the VP and the VE (EDM) view
        x = sample(model, diffusion, (2, 1, 1), range(N_MIXTURE), sampler=sampler, steps=steps, clip_denoised=False,
                   classifier_guidance=_to_class_0(N_MIXTURE, 1.0))
        assert abs(_weight_of_component_0(x) - CONDITIONAL_WEIGHT) < TOLERANCE, sampler


def test_ancestral_mean_shift_reaches_the_conditional_weight_and_grows_with_the_scale():
    """Alg. 1's shift Σ·g is first order in the step, so the weight at s = 1 is low by a bias that shrinks
    like 1/steps (measured with 20 000 samples: −0.036 at 100 steps, −0.013 at 250, −0.003 at 1000); at 250
    steps the tolerance is that bias plus ≈ 4 standard errors."""
    betas = beta_schedule("linear", 250)
    diffusion, model = GaussianDiffusion(betas, prediction="x0"), MixtureDenoiser(betas)
    weights = []
    for scale in (0.0, 1.0, 2.0):
        noise = BatchNoise(N_MIXTURE, 0)
        x_T = noise.randn(2, 1, 1)
        x = ddpm_sample(model, diffusion, x_T, list(range(250)), noise=noise, clip_denoised=False,  # type: ignore[arg-type]
                        classifier_guidance=_to_class_0(N_MIXTURE, scale))
        weights.append(_weight_of_component_0(x))
    assert abs(weights[0] - float(PRIOR[0])) < TOLERANCE, weights
    assert abs(weights[1] - CONDITIONAL_WEIGHT) < TOLERANCE + 0.013, weights
    assert weights[0] < weights[1] < weights[2], weights


# ----------------------------------------------------------------------------- the gradient
class SmoothClassifier(nn.Module):
    """A small smooth noise-conditioned classifier: logits = W₂ tanh(W₁ x + σ b) (K = 3)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1 = nn.Parameter(torch.randn(features, 6, generator=g, dtype=torch.float64) * 0.7)
        self.b = nn.Parameter(torch.randn(6, generator=g, dtype=torch.float64))
        self.w2 = nn.Parameter(torch.randn(6, 3, generator=g, dtype=torch.float64))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(x.flatten(1).to(self.w1.dtype) @ self.w1 + sigma.to(self.w1.dtype)[:, None] * self.b)
        return hidden @ self.w2


def test_gradient_matches_central_finite_differences_and_ignores_the_sampling_context():
    clf = SmoothClassifier(8)
    x = torch.randn(3, 2, 2, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sigma, labels, scale = torch.tensor([0.5, 2.0, 7.0], dtype=torch.float64), torch.tensor([2, 0, 1]), 1.7
    guidance = ClassifierGuidance(clf, scale, labels)
    with torch.no_grad():  # as the samplers call it
        grad = guidance.gradient(x, sigma)

    def objective(z: torch.Tensor) -> torch.Tensor:  # s · log p(y_i | x_i), per sample
        with torch.no_grad():
            return scale * torch.log_softmax(clf(z, sigma), -1).gather(1, labels[:, None]).squeeze(1)

    h, numeric = 1e-6, torch.zeros_like(x)
    for index in np.ndindex(*x.shape[1:]):
        step = torch.zeros_like(x)
        step[(slice(None), *index)] = h
        numeric[(slice(None), *index)] = (objective(x + step) - objective(x - step)) / (2 * h)
    torch.testing.assert_close(grad, numeric, rtol=1e-6, atol=1e-8)
    assert grad.dtype == torch.float64 and not grad.requires_grad
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # a bf16 sampler: the gradient stays fp32
        low = ClassifierGuidance(clf.float(), scale, labels).gradient(x.float(), sigma.float())
    assert low.dtype == torch.float32
    torch.testing.assert_close(low.double(), grad, rtol=1e-4, atol=1e-5)


def test_scale_must_be_finite_and_not_negative():
    for bad in (-0.5, float("inf"), float("nan")):
        with pytest.raises(UserError, match="--classifier-scale"):
            ClassifierGuidance(mixture_classifier, bad, torch.zeros(2, dtype=torch.long))


# ----------------------------------------------------------------------------- every sampler
SHAPE = (2, 4, 4)


class ToyEps:
    """A smooth ε-predicting network (elementwise: no cross-sample arithmetic, bitwise batch-independent)."""

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **kwargs) -> torch.Tensor:
        return torch.tanh(0.8 * x + 1e-3 * t.view(-1, 1, 1, 1).to(x.dtype))


class CountingClassifier:
    """A per-sample classifier from elementwise maths and row sums (3 classes), counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        damp = (1.0 / (1.0 + sigma)).view(-1, 1, 1, 1)
        features = [torch.sin(x * damp).mean((1, 2, 3)), (x[:, :1] * damp).mean((1, 2, 3)), torch.cos(x).mean((1, 2, 3))]
        return torch.stack(features, dim=1) * 3.0


def _settings(sampler: str) -> dict:
    return {"ddim": {"eta": 1.0}}.get(sampler, {})  # a stochastic DDIM: the noise streams take part


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_scale_zero_gives_the_unguided_images_bit_for_bit(sampler):
    diffusion, seeds = GaussianDiffusion(beta_schedule("cosine", 100)), [4, 0, 9]
    unguided = sample(ToyEps(), diffusion, SHAPE, seeds, sampler=sampler, steps=6, **_settings(sampler))
    clf = CountingClassifier()
    at_zero = sample(ToyEps(), diffusion, SHAPE, seeds, sampler=sampler, steps=6, **_settings(sampler),
                     classifier_guidance=ClassifierGuidance(clf, 0.0, torch.tensor([0, 1, 2])))
    assert torch.equal(at_zero, unguided) and clf.calls == 0
    guided = sample(ToyEps(), diffusion, SHAPE, seeds, sampler=sampler, steps=6, **_settings(sampler),
                    classifier_guidance=ClassifierGuidance(clf, 3.0, torch.tensor([0, 1, 2])))
    assert not torch.allclose(guided, unguided) and clf.calls > 0  # and the guided API does guide


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_image_k_is_the_same_at_any_batch_size_under_guidance(sampler):
    diffusion, seeds, labels = GaussianDiffusion(beta_schedule("cosine", 100)), [5, 1, 7, 3], torch.tensor([0, 2, 1, 0])
    clf = CountingClassifier()

    def draw(chosen: list[int], y: torch.Tensor) -> torch.Tensor:
        return sample(ToyEps(), diffusion, SHAPE, chosen, sampler=sampler, steps=6, **_settings(sampler),
                      classifier_guidance=ClassifierGuidance(clf, 2.0, y))

    batch = draw(seeds, labels)
    singles = torch.cat([draw([seed], labels[k : k + 1]) for k, seed in enumerate(seeds)])
    assert torch.equal(batch, singles)


def test_counts_network_and_classifier_calls_apart():
    diffusion = GaussianDiffusion(beta_schedule("cosine", 100))
    guidance = ClassifierGuidance(CountingClassifier(), 1.0, torch.zeros(2, dtype=torch.long))
    denoiser = Denoiser(ToyEps(), diffusion, classifier_guidance=guidance)
    x = torch.randn(2, *SHAPE)
    guided, plain = denoiser.predict(x, 50), denoiser.predict(x, 50, guided=False)
    assert (denoiser.evaluations, denoiser.classifier_evaluations) == (2, 1)
    assert torch.equal(guided.output, plain.output) and not torch.equal(guided.eps, plain.eps)


# ----------------------------------------------------------------------------- the two forms
class LinearClassifier:
    """logits (B, 2) = ±(w · x) / (1 + σ): a closed-form gradient for the hand-computed step."""

    def __init__(self) -> None:
        self.w = torch.linspace(-1.0, 1.0, int(np.prod(SHAPE))).view(1, *SHAPE)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        score = (x * self.w).flatten(1).sum(1) / (1.0 + sigma)
        return torch.stack([score, -score], dim=1)


@pytest.mark.parametrize("variance", ["fixed_small", "learned_range"])
def test_ancestral_step_shifts_its_mean_by_its_variance_times_the_gradient(variance):
    """One respaced step t_a = 600 → t_b = 300 by hand (DDPM eq. 7, IDDPM eq. 15 for the learned Σ)."""
    betas = beta_schedule("linear", 1000)
    abar = np.cumprod(1.0 - betas)
    learned = variance == "learned_range"

    def model(x: torch.Tensor, t: torch.Tensor, **kwargs) -> torch.Tensor:
        eps = torch.tanh(0.8 * x)
        return torch.cat([eps, torch.full_like(eps, 0.4)], 1) if learned else eps

    diffusion, clf, scale = GaussianDiffusion(betas, variance=variance), LinearClassifier(), 3.0
    x_T, noise = initial_noise([11, 12], SHAPE)
    z = _first_step_noise([11, 12], SHAPE)  # the same streams: x_T, then the first step's noise
    entering = {}
    ddpm_sample(model, diffusion, x_T, [600, 300], noise=noise, clip_denoised=False,
                classifier_guidance=ClassifierGuidance(clf, scale, torch.tensor([0, 1])),
                callback=lambda i, x, x0: entering.setdefault(i, x.clone()))

    a_t, a_prev = float(abar[600]), float(abar[300])
    beta = 1 - a_t / a_prev  # the respaced step's β
    tilde = beta * (1 - a_prev) / (1 - a_t)
    sigma2 = np.exp(0.7 * np.log(beta) + 0.3 * np.log(tilde)) if learned else tilde  # frac = (0.4 + 1)/2
    x = x_T.double()
    x0 = (x - np.sqrt(1 - a_t) * torch.tanh(0.8 * x_T).double()) / np.sqrt(a_t)
    mean = beta * np.sqrt(a_prev) / (1 - a_t) * x0 + (1 - a_prev) * np.sqrt(1 - beta) / (1 - a_t) * x
    sign = torch.tensor([1.0, -1.0]).view(-1, 1, 1, 1)  # ∇ log softmax: (1 − p_y) · ∂(score_y − score_other)/∂x
    p = torch.softmax(clf(x_T, torch.full((2,), np.sqrt((1 - a_t) / a_t))), 1).gather(1, torch.tensor([[0], [1]]))
    g = scale * (1 - p.view(-1, 1, 1, 1)) * 2 * sign * clf.w / (1 + np.sqrt((1 - a_t) / a_t))
    by_hand = mean + sigma2 * g.double() + np.sqrt(sigma2) * z.double()
    torch.testing.assert_close(entering[1].double(), by_hand, rtol=1e-5, atol=1e-5)
    eps_form = mean + beta * np.sqrt(a_prev) / (1 - a_t) * (1 - a_t) / np.sqrt(a_t) * g.double() + np.sqrt(sigma2) * z.double()
    assert (eps_form - by_hand).abs().max() > 100 * 1e-5  # the two forms differ: the sampler took Alg. 1's


def _first_step_noise(seeds: list[int], shape: tuple[int, ...]) -> torch.Tensor:
    """The draw after x_T of each seed's stream (what the ancestral sampler injects at its first step)."""
    _, noise = initial_noise(seeds, shape)
    return noise.randn(*shape)


# ----------------------------------------------------------------------------- generate() and the CLI
class FixedClassifier(nn.Module):
    """A classifier module over 3-channel images: logits from channel means, scaled by 1/(1 + σ)."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.mix = nn.Parameter(torch.linspace(-1, 1, 3 * classes).view(3, classes))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3)) @ self.mix / (1 + sigma[:, None])


def _fake_run(path: Path, *, classes: list[str] | None = None) -> LoadedRun:
    """An untrained tiny diffusion run (16 px, 20 steps) as load_run would return it; nothing on disk but its name."""
    config = unet16(class_cond=bool(classes))
    config = finalize(dataclasses.replace(config, diffusion=dataclasses.replace(config.diffusion, num_steps=20)),
                      len(classes or []))
    torch.manual_seed(0)
    net = build_unet(config, torch.device("cpu")).eval()
    return LoadedRun(model=net, ema_model=net, diffusion=build_diffusion(config), config=config, state=TrainState(),
                     checkpoint=path / "checkpoints" / "step-1.safetensors", checkpoint_sha256="d" * 64,
                     classes=list(classes or []))


def _fake_classifier(path: Path, classes: list[str]) -> SimpleNamespace:
    """What load_run returns for a classifier run (the contract): is_classifier, the module, class names."""
    module = FixedClassifier(len(classes)).eval()
    return SimpleNamespace(is_classifier=True, is_gan=False, ema_model=module, model=module, classes=classes,
                           checkpoint=path / "checkpoints" / "step-1.safetensors", checkpoint_sha256="c" * 64,
                           ema_error=None, ema_length=None)


def test_generate_guides_records_the_classifier_and_is_unguided_at_scale_zero(tmp_path):
    run, clf = _fake_run(tmp_path / "run"), _fake_classifier(tmp_path / "clf", ["cat", "dog"])
    kwargs: dict = dict(sampler="ddim", steps=3, batch=2, precision="fp32")
    plain = generate(run, range(3), **kwargs)
    zero = generate(run, range(3), **kwargs, classifier=clf, classifier_scale=0.0)  # type: ignore[arg-type]
    guided = generate(run, range(3), **kwargs, classifier=clf, classifier_scale=30.0)  # type: ignore[arg-type]
    assert np.array_equal(zero.images, plain.images) and zero.provenance == plain.provenance
    assert not np.array_equal(guided.images, plain.images)
    assert (guided.nfe, guided.classifier_evaluations, plain.classifier_evaluations) == (3, 3, 0)
    record = guided.provenance.to_dict()
    assert record["guidance"] == "classifier" and record["guidance_model_sha256"] == "c" * 64
    assert record["classifier_scale"] == 30.0 and record["class_protocol"] == "balanced"
    assert record["classes"] == ["cat", "dog"] and "classifier_scale" not in plain.provenance.to_dict()
    assert guided.provenance.digest() != generation_provenance(run, range(3), sampler="ddim", steps=3, classifier=clf,  # type: ignore[arg-type]
                                                               classifier_scale=10.0, precision="fp32").digest()
    assert guided.provenance == generation_provenance(run, range(3), sampler="ddim", steps=3, classifier=clf,  # type: ignore[arg-type]
                                                      classifier_scale=30.0, precision="fp32")


def test_the_scale_extends_the_provenance_key_without_changing_old_keys():
    base = Provenance("a" * 64, sampler="ddim", steps=10, params={"eta": 0.0}, class_protocol="none", seed=0)
    before = {k: v for k, v in base.to_dict().items() if k != "digest"}  # the JSON form before the field existed
    assert "classifier_scale" not in before and Provenance.from_dict(before) == base
    assert base.digest() == "39cec072db1d3482"  # the key this record had before classifier guidance existed
    guided = dataclasses.replace(base, guidance="classifier", guidance_model_sha256="c" * 64, classifier_scale=2.0)
    assert Provenance.from_dict(json.loads(json.dumps(guided.to_dict()))) == guided
    assert len({base.digest(), guided.digest(), dataclasses.replace(guided, classifier_scale=3.0).digest()}) == 3


def test_a_conditional_run_is_guided_by_class_name(tmp_path):
    run = _fake_run(tmp_path / "run", classes=["cat", "dog"])
    clf = _fake_classifier(tmp_path / "clf", ["bird", "dog", "cat"])
    assert to_classifier_labels(run, clf, torch.tensor([0, 1, 1, 0])).tolist() == [2, 1, 1, 2]  # type: ignore[arg-type]
    both = generate(run, range(2), sampler="ddim", steps=3, precision="fp32", guidance=2.0, classifier=clf,  # type: ignore[arg-type]
                    classifier_scale=5.0)
    record = both.provenance.to_dict()
    assert (record["guidance"], record["guidance_scale"], record["classifier_scale"]) == ("cfg+classifier", 2.0, 5.0)
    assert (record["class_protocol"], record["classes"]) == ("balanced", ["cat", "dog"])  # the run's own names
    assert (both.nfe, both.classifier_evaluations) == (6, 3)  # CFG's doubled batch is one denoiser call
    with pytest.raises(UserError, match="'dog' of the diffusion run is not a class of the classifier"):
        to_classifier_labels(run, _fake_classifier(tmp_path / "c2", ["cat", "bird"]), torch.tensor([0, 1]))  # type: ignore[arg-type]


def _real_classifier(path: Path) -> LoadedRun:
    """An untrained 16 px :class:`~landiff.nets.classifier.NoisyClassifier` run as load_run returns it."""
    models = pytest.importorskip("landiff.runs.models")
    if not hasattr(models, "build_classifier") or not hasattr(LoadedRun, "is_classifier"):
        pytest.skip("classifier runs are not loadable yet")
    from landiff.runs.config import recipe

    config = recipe("classifier-32")
    net = dataclasses.replace(config.net, resolution=16, base_channels=16, channel_mult=(1, 2), num_res_blocks=1,
                              attention_resolutions=(8,), head_channels=16)
    config = finalize(dataclasses.replace(config, resolution=16, net=net), 2)
    torch.manual_seed(1)
    module = models.build_classifier(config, torch.device("cpu")).eval()
    return LoadedRun(model=module, ema_model=module, diffusion=None, config=config, state=TrainState(),
                     checkpoint=path / "checkpoints" / "step-1.safetensors", checkpoint_sha256="e" * 64, classes=["cat", "bird"])


@pytest.fixture
def fake_runs(tmp_path, monkeypatch):
    """``load_run`` for run folders that are never written: an unconditional and a conditional diffusion run,
    a GAN stand-in and two classifier runs; any other path goes to the real ``load_run``."""
    import landiff.cli.sample as cli_sample

    real = cli_sample.load_run
    runs = {"run": _fake_run(tmp_path / "run"), "cond": _fake_run(tmp_path / "cond", classes=["cat", "dog"]),
            "clf": _fake_classifier(tmp_path / "clf", ["cat", "bird"]),
            "gan": SimpleNamespace(is_gan=True, ema_error=None, ema_length=None)}

    def load(run_dir=None, **kwargs):
        found = runs.get(Path(run_dir).name) if run_dir is not None else None
        return found if found is not None else real(run_dir, **kwargs)

    monkeypatch.setattr(cli_sample, "load_run", load)
    runs["noisy"] = _real_classifier(tmp_path / "noisy")  # after the patch: a skip leaves nothing behind
    return tmp_path


def _sample(root: Path, *args: str) -> list[str]:
    return ["sample", "--device", "cpu", "--n", "2", "--batch", "2", "--steps", "2", "--sampler", "ddim",
            "--precision", "fp32", *[str(root / a[1:]) if a.startswith("@") else a for a in args]]


@pytest.mark.parametrize("args, expected", [
    (("--run", "@run", "--classifier-scale", "2"), "--classifier-scale needs --classifier"),
    (("--run", "@gan", "--classifier", "@clf"), "--classifier guides diffusion sampling; "),
    (("--run", "@clf"), "is a classifier run, which draws no images; pass it as --classifier"),
    (("--run", "@run", "--classifier", "@nowhere"), ("/nowhere: ", "has no checkpoint yet", "`landiff train --model")),
    (("--run", "@run", "--classifier", "@cond"), "is a diffusion run, not a classifier"),
    (("--run", "@run", "--classifier", "@clf", "--class", "zebra"), "--class 'zebra' is not a class of the classifier"),
    (("--run", "@cond", "--classifier", "@clf", "--class", "dog"), "'dog' of the diffusion run is not a class of the classifier"),
    (("--run", "@cond", "--classifier", "@clf"), "--classifier on a class-conditional run needs --class"),
])
def test_cli_refuses_each_mistake_in_one_line(fake_runs, capsys, args, expected):
    assert main(_sample(fake_runs, *args, "--out", str(fake_runs / "out"))) == 2
    err = capsys.readouterr().err
    fragments = (expected,) if isinstance(expected, str) else expected
    assert err.count("\n") == 1 and err.startswith("landiff: error: ") and all(f in err for f in fragments), err
    assert not (fake_runs / "out").exists()


def test_cli_samples_with_a_classifier_and_keys_the_samples_on_it(fake_runs, capsys):
    outs = {}
    for name, extra in (("plain", ()), ("zero", ("--classifier", "@clf", "--classifier-scale", "0")),
                        ("guided", ("--classifier", "@clf", "--classifier-scale", "30", "--class", "bird"))):
        assert main(_sample(fake_runs, "--run", "@run", *extra, "--out", str(fake_runs / name))) == 0, capsys.readouterr().err
        with np.load(fake_runs / name / "samples.npz") as data:
            outs[name] = (data["images"], json.loads(str(data["meta"])))
    assert np.array_equal(outs["zero"][0], outs["plain"][0]) and outs["zero"][1]["provenance"] == outs["plain"][1]["provenance"]
    images, meta = outs["guided"]
    assert not np.array_equal(images, outs["plain"][0])
    assert meta["classifier_sha256"] == "c" * 64 and meta["classifier_scale"] == 30.0
    provenance = meta["provenance"]
    assert (provenance["guidance"], provenance["guidance_model_sha256"], provenance["classifier_scale"]) == \
        ("classifier", "c" * 64, 30.0)
    assert (provenance["class_protocol"], provenance["classes"]) == ("fixed", ["bird"])


def test_cli_with_a_real_noisy_classifier_run_is_batch_independent(fake_runs, capsys):
    """The noisy classifier of ``landiff train --model classifier`` (untrained) through the CLI: image k does
    not depend on --batch, and a classifier run given as --run is refused."""
    images = []
    for batch in ("1", "3"):
        argv = _sample(fake_runs, "--run", "@run", "--classifier", "@noisy", "--classifier-scale", "5", "--sampler", "dpm++sde",
                       "--out", str(fake_runs / batch))
        for flag, value in (("--batch", batch), ("--n", "3"), ("--steps", "4")):
            argv[argv.index(flag) + 1] = value
        assert main(argv) == 0, capsys.readouterr().err
        with np.load(fake_runs / batch / "samples.npz") as data:
            images.append(data["images"])
            assert json.loads(str(data["meta"]))["provenance"]["guidance_model_sha256"] == "e" * 64
    assert np.array_equal(images[0], images[1])
    assert main(_sample(fake_runs, "--run", "@noisy")) == 2
    assert "is a classifier run" in capsys.readouterr().err
