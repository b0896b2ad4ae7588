"""Metrics: SWD, FID, KID, precision/recall, memorisation, Inception loading and the eval CLI.

Everything runs on tiny synthetic arrays; Inception metrics use a stub feature extractor except
for the one test that pushes 2 images through a randomly initialised FID Inception.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file

from landiff.cli.main import main
from landiff.errors import UserError
from landiff.grid import unit_float
from landiff.metrics import (
    FIDInceptionV3,
    ImageSet,
    InceptionFeatures,
    InceptionUnavailable,
    find_inception_weights,
    frechet_distance,
    gaussian_stats,
    import_inception,
    kid,
    load_samples,
    memorization,
    precision_recall,
    sliced_distance,
    sliced_wasserstein,
)
from landiff.metrics.evaluate import evaluate_fid, evaluate_pr
from landiff.metrics.fid import fid_from_features, trace_sqrt_product
from landiff.metrics.memorization import area_downsample, downsample
from landiff.metrics.swd import laplacian_pyramid, level_sizes, pyr_down, pyr_up


def smooth_images(n: int, seed: int, size: int = 32, blur: int = 5) -> np.ndarray:
    """(n, size, size, 3) uint8 images of box-blurred noise: a fixed spatial correlation structure."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size + blur - 1, size + blur - 1, generator=g)
    x = F.avg_pool2d(x, blur, stride=1)
    x = (x - x.mean()) / x.std() * 40 + 128
    return x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


# --- SWD ----------------------------------------------------------------------------------------


def test_swd_of_identical_sets_is_zero():
    a = smooth_images(16, seed=0)
    result = sliced_wasserstein(a, a.copy(), seed=3)
    assert set(result.per_level) == {32, 16}
    assert result.per_level == {32: 0.0, 16: 0.0} and result.mean == 0.0


def test_swd_level_sizes_follow_progan():
    assert level_sizes(32, 32) == [32, 16]
    assert level_sizes(64, 64) == [64, 32, 16]
    assert level_sizes(8, 8) == []


def test_sliced_distance_by_hand():
    # One direction e1: projections {0, 1, 5} and {2, 1, 3}, sorted (0,1,5) vs (1,2,3):
    # |0-1| + |1-2| + |5-3| = 4 over 3 points.
    a = torch.tensor([[0.0, 9.0], [5.0, -1.0], [1.0, 0.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, 0.0], [3.0, 7.0]])
    e1 = torch.tensor([[1.0], [0.0]])
    assert sliced_distance(a, b, e1) == pytest.approx(4 / 3)
    # Second direction e2: (9, -1, 0) → sorted (-1, 0, 9); (0, 0, 7) → (0, 0, 7): (1 + 0 + 2)/3 = 1.
    both = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert sliced_distance(a, b, both) == pytest.approx((4 / 3 + 1) / 2)


def test_swd_sees_structure_beyond_what_two_subsets_differ_by():
    # Per-channel normalisation removes any global per-channel affine change (a colour cast or a
    # contrast change): SWD is blind to those (see metrics/swd.py). So the "different
    # distribution" here differs in spatial structure — white noise with the same per-channel
    # mean and std as the blurred noise — which normalisation cannot remove.
    # (Measured: same ≈ 21 / 41 at levels 32 / 16, white noise ≈ 52 / 61.)
    a1, a2 = smooth_images(64, seed=1), smooth_images(64, seed=2)
    white = smooth_images(64, seed=3, blur=1)
    same = sliced_wasserstein(a1, a2, seed=0)
    different = sliced_wasserstein(a1, white, seed=0)
    assert different.mean > 1.4 * same.mean
    assert different.per_level[32] > 2 * same.per_level[32]
    assert different.per_level[16] > same.per_level[16]


def test_swd_is_blind_to_a_global_colour_shift():
    # The blind spot itself, so nobody mistakes SWD ≈ 0 for "same colours".
    a1, a2 = smooth_images(64, seed=1), smooth_images(64, seed=2)
    tinted = (a1.astype(np.float64) * np.array([0.6, 1.0, 0.8]) + np.array([60, 0, 30])).round().astype(np.uint8)
    shifted = sliced_wasserstein(a1, tinted, seed=0).mean
    assert shifted < 0.5 * sliced_wasserstein(a1, a2, seed=0).mean


def test_swd_repeats_are_seeded_and_give_a_spread():
    a1, a2 = smooth_images(12, seed=1), smooth_images(12, seed=2)
    first = sliced_wasserstein(a1, a2, seed=5, repeats=2)
    again = sliced_wasserstein(a1, a2, seed=5, repeats=2)
    other = sliced_wasserstein(a1, a2, seed=6, repeats=2)
    assert first == again
    assert first.mean != other.mean
    assert first.std > 0 and first.repeats == 2 and first.n == 12


def test_pyramid_matches_scipy_mirror_convolution():
    ndimage = pytest.importorskip("scipy.ndimage")
    kernel = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    ref_down = ndimage.convolve(x.numpy(), kernel[None, None], mode="mirror")[:, :, ::2, ::2]
    np.testing.assert_allclose(pyr_down(x).numpy(), ref_down, atol=1e-12)
    low = pyr_down(x)
    zeros = np.zeros((2, 3, 16, 16))
    zeros[:, :, ::2, ::2] = low.numpy()
    ref_up = ndimage.convolve(zeros, 4 * kernel[None, None], mode="mirror")
    np.testing.assert_allclose(pyr_up(low, (16, 16)).numpy(), ref_up, atol=1e-12)
    levels = laplacian_pyramid(x, 2)
    np.testing.assert_allclose((levels[0] + pyr_up(levels[1], (16, 16))).numpy(), x.numpy(), atol=1e-12)


# --- FID / KID ----------------------------------------------------------------------------------


def test_frechet_distance_of_equal_covariances_is_the_squared_mean_difference():
    rng = np.random.default_rng(0)
    m = rng.standard_normal((6, 6))
    cov = m @ m.T + 0.1 * np.eye(6)
    mu_a, mu_b = rng.standard_normal(6), rng.standard_normal(6)
    assert frechet_distance(mu_a, cov, mu_b, cov) == pytest.approx(float(((mu_a - mu_b) ** 2).sum()), rel=1e-9)


def test_frechet_distance_of_known_gaussians():
    # 1-D: (μa − μb)² + (σa − σb)²; here 1 + (2 − 1)² = 2.
    assert frechet_distance(np.array([0.0]), np.array([[4.0]]), np.array([1.0]), np.array([[1.0]])) == pytest.approx(2)


def _with_moments(mean: np.ndarray, variances: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n vectors whose sample mean is exactly ``mean`` and unbiased sample covariance exactly diag(variances)."""
    z = np.random.default_rng(seed).standard_normal((n, len(mean)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(z.T @ z / (n - 1))).T  # whitened: cov(z) = I
    return mean + z * np.sqrt(variances)


def test_fid_of_diagonal_gaussians_is_closed_form():
    # Σ_a, Σ_b diagonal commute: Tr(Σ_a + Σ_b − 2(Σ_a Σ_b)^½) = Σ_i (√a_i − √b_i)², here term by term.
    mu_a, mu_b = np.array([0.0, 1.0, -2.0, 0.5]), np.array([1.0, 1.0, 0.0, -0.5])
    var_a, var_b = np.array([1.0, 4.0, 0.25, 9.0]), np.array([4.0, 1.0, 0.25, 1.0])
    expected = (1 + 0 + 4 + 1) + ((1 - 2) ** 2 + (2 - 1) ** 2 + 0 + (3 - 1) ** 2)  # |Δμ|² = 6, trace part = 6
    assert expected == 12
    assert frechet_distance(mu_a, np.diag(var_a), mu_b, np.diag(var_b)) == pytest.approx(expected, rel=1e-12)
    # from features whose sample moments are exactly those (unbiased covariance, n − 1)
    fa, fb = _with_moments(mu_a, var_a, 50, seed=0), _with_moments(mu_b, var_b, 80, seed=1)
    assert fid_from_features(fa, fb) == pytest.approx(expected, rel=1e-9)
    # a rotation of both sets leaves the distance unchanged (non-diagonal covariances, same answer)
    q, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((4, 4)))
    assert fid_from_features(fa @ q, fb @ q) == pytest.approx(expected, rel=1e-9)


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(1).standard_normal((200, 16))
    assert abs(fid_from_features(x, x)) < 1e-8
    # n < d: singular covariances are fine (eigen route, no complex parts); √ of eigenvalues that
    # should be 0 but are ~1e-16 adds ~1e-8 each, as with any matrix square root.
    y = np.random.default_rng(2).standard_normal((10, 32))
    assert abs(fid_from_features(y, y)) < 1e-5 * np.trace(np.cov(y, rowvar=False))


def test_trace_sqrt_product_matches_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((8, 8)), rng.standard_normal((8, 8))
    cov_a, cov_b = a @ a.T, b @ b.T
    expected = np.trace(linalg.sqrtm(cov_a @ cov_b)).real
    assert trace_sqrt_product(cov_a, cov_b) == pytest.approx(expected, rel=1e-8)


def test_kid_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((300, 8)), rng.standard_normal((300, 8))
    shifted = rng.standard_normal((300, 8)) + 0.5
    same = kid(a, b, subsets=20, subset_size=100, seed=0)
    differ = kid(a, shifted, subsets=20, subset_size=100, seed=0)
    assert abs(same.value) < 3 * same.std / np.sqrt(20) + 1e-3
    assert differ.value > 10 * max(abs(same.value), same.std)
    assert same.repeats == 20 and "100" in same.spread
    assert kid(a, shifted, subsets=20, subset_size=100, seed=0) == differ


# --- precision / recall -------------------------------------------------------------------------


def test_precision_recall_on_point_clouds():
    rng = np.random.default_rng(5)
    real = rng.standard_normal((400, 4))
    same = precision_recall(real, real.copy())
    assert same.precision.value == 1.0 and same.recall.value == 1.0
    far = precision_recall(real, rng.standard_normal((400, 4)) + 50)
    assert far.precision.value == 0.0 and far.recall.value == 0.0
    corner = real[real[:, 0] > 1.0]  # a mode-collapsed generator: part of the real support only
    part = precision_recall(real, corner)
    assert part.precision.value > 0.95
    assert part.recall.value < 0.5  # ~16 % of the reals lie in the corner; balls reach a little beyond


def test_precision_recall_spread_from_half_samples():
    rng = np.random.default_rng(6)
    real, fake = rng.standard_normal((200, 3)), rng.standard_normal((200, 3))
    result = precision_recall(real, fake, repeats=4, seed=1)
    assert result.precision.repeats == 4 and 0 < result.precision.std < 0.2
    # the full-set values, by plain loops (Kynkäänniemi et al. eq. 1–2, k = 3)
    assert result.precision.value == pytest.approx(_coverage_by_loops(real, fake, 3), abs=1e-12)
    assert result.recall.value == pytest.approx(_coverage_by_loops(fake, real, 3), abs=1e-12)
    assert 0.5 < result.recall.value < 1


def _coverage_by_loops(centres: np.ndarray, queries: np.ndarray, k: int) -> float:
    """Share of queries within distance r_j of some centre j; r_j = distance to j's k-th nearest other centre."""
    c, q = centres.tolist(), queries.tolist()
    dist = lambda u, v: sum((a - b) ** 2 for a, b in zip(u, v, strict=True)) ** 0.5  # noqa: E731
    radii = [sorted(dist(u, v) for i, v in enumerate(c) if i != j)[k - 1] for j, u in enumerate(c)]
    return sum(any(dist(x, u) <= r for u, r in zip(c, radii, strict=True)) for x in q) / len(q)


def test_precision_recall_of_a_hand_example():
    # 1-D reals 0, 1, 2, 3, 10 with k = 1: radii 1, 1, 1, 1, 7. Fakes 0.5, 2.9, 5 lie inside
    # (5 is within 7 of 10), 17.5 and 20 do not: precision 3/5. Fake radii (k = 1): 0.5 → 2.4, 2.9 → 2.1,
    # 5 → 2.1, 17.5 → 2.5, 20 → 2.5; reals within: 0, 1, 2, 3 (near 0.5, 2.9), not 10: recall 4/5.
    real, fake = np.array([[0.0], [1], [2], [3], [10]]), np.array([[0.5], [2.9], [5], [17.5], [20]])
    result = precision_recall(real, fake, k=1)
    assert result.precision.value == pytest.approx(0.6) and result.recall.value == pytest.approx(0.8)


# --- memorisation -------------------------------------------------------------------------------


def _area_reference(x: np.ndarray, size: int) -> np.ndarray:
    """Adaptive average pooling by hand: output pixel (i, j) is the mean of rows floor(i·H/size) to
    ceil((i+1)·H/size) and the same columns (plain block means when size divides H and W)."""
    n, h, w, c = x.shape
    out = np.empty((n, size, size, c), np.float64)
    for i in range(size):
        rows = slice(i * h // size, -(-(i + 1) * h // size))
        for j in range(size):
            cols = slice(j * w // size, -(-(j + 1) * w // size))
            out[:, i, j] = x[:, rows, cols].astype(np.float64).mean(axis=(1, 2))
    return out


def test_area_downsample_matches_a_hand_written_reference():
    image = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(1, 4, 4, 3) * 5
    x = unit_float(image)
    assert x.dtype == np.float32 and np.array_equal(x, image.astype(np.float32) / np.float32(255))
    small = area_downsample(x, 2)
    # top-left red: the mean of pixels (0, 0), (0, 1), (1, 0), (1, 1), i.e. of 0, 15, 60 and 75, over 255
    assert small.shape == (1, 2, 2, 3) and small[0, 0, 0, 0] == pytest.approx(37.5 / 255, rel=1e-6)
    np.testing.assert_allclose(small, _area_reference(x, 2), rtol=1e-6)
    odd = unit_float(np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8))
    np.testing.assert_allclose(area_downsample(odd, 2), _area_reference(odd, 2), rtol=1e-6)  # overlapping windows
    # downsample: rows are channel-major (C, size, size) and the input is checked
    np.testing.assert_allclose(downsample(image, 2), _area_reference(x, 2).transpose(0, 3, 1, 2).reshape(1, -1), rtol=1e-6)
    with pytest.raises(UserError, match="memorisation check: expected uint8 images"):
        downsample(image.astype(np.float32), 2)


def test_memorization_flags_an_exact_copy_and_not_a_novel_image():
    train, heldout = smooth_images(64, seed=10), smooth_images(64, seed=11)
    novel = smooth_images(1, seed=12)
    generated = np.concatenate([novel, train[7:8], novel])
    result = memorization(generated, train, heldout)
    assert result.flagged.tolist() == [1]
    assert result.nearest_train[1] == 7 and result.d_train[1] < 1e-6
    assert result.ratio[0] > 0.5 and result.d_train[0] > 0.02
    assert result.closest(1).tolist() == [1]


# --- Inception ----------------------------------------------------------------------------------


@pytest.fixture()
def random_inception(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "inception.safetensors"
    save_file({k: v.contiguous() for k, v in FIDInceptionV3().state_dict().items()}, str(path))
    return path


def test_inception_loads_user_weights_and_gives_2048_features(random_inception):
    extractor = InceptionFeatures(random_inception, device="cpu", batch=2)
    images = smooth_images(2, seed=0, size=16)
    features = extractor(images)
    assert features.shape == (2, 2048) and features.dtype == np.float64
    assert np.isfinite(features).all() and features.std() > 0
    assert "sha256" in extractor.description and "align_corners=False" in extractor.resize


def test_cli_eval_fid_with_user_weights_appends_to_the_run(random_inception, tmp_path, capsys):
    a = _write_npz(tmp_path / "a.npz", smooth_images(3, seed=1, size=16))
    b = _write_npz(tmp_path / "b.npz", smooth_images(3, seed=2, size=16))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": "synthetic", "seed": 0}))
    argv = ["eval", "fid", "--samples", str(a), "--ref", str(b), "--run", str(run), "--repeats", "1",
            "--inception", str(random_inception), "--device", "cpu"]
    assert main(argv) == 0
    record = json.loads((run / "metrics-fid.jsonl").read_text())
    assert record["n_samples"] == 3 and record["n_reference"] == 3
    assert record["resize"].startswith("uint8 -> float32/255 -> bilinear 299x299")
    assert "inception.safetensors" in record["features"] and record["estimates"]["fid"]["value"] >= 0


def test_import_inception_converts_a_pth_state_dict(tmp_path, capsys):
    torch.manual_seed(1)
    state = {k: v for k, v in FIDInceptionV3().state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "pt_inception.pth")
    out = tmp_path / "converted.safetensors"
    assert main(["weights", "import-inception", str(tmp_path / "pt_inception.pth"), "--out", str(out)]) == 0
    assert "does not start with 6726825d" in capsys.readouterr().out  # not pytorch-fid's published file
    loaded = load_file(str(out))
    assert torch.equal(loaded["Mixed_7c.branch_pool.conv.weight"], state["Mixed_7c.branch_pool.conv.weight"])
    assert loaded["Mixed_7c.branch_pool.bn.num_batches_tracked"].item() == 0  # filled in when absent
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "wrong.pth")
    with pytest.raises(UserError, match="does not match the FID Inception"):
        import_inception(tmp_path / "wrong.pth", tmp_path / "x.safetensors")


def test_missing_inception_weights_are_reported_as_unavailable(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("LANDIFF_INCEPTION", raising=False)
    with pytest.raises(InceptionUnavailable) as err:
        find_inception_weights()
    message = str(err.value)
    assert message.startswith("unavailable: ") and "landiff weights import-inception" in message
    assert str(tmp_path / ".cache/landiff/inception/pt_inception-2015-12-05.safetensors") in message
    with pytest.raises(UserError, match="--inception"):
        find_inception_weights(tmp_path / "nope.safetensors")
    monkeypatch.setenv("LANDIFF_INCEPTION", str(tmp_path / "nope.safetensors"))
    with pytest.raises(UserError, match="LANDIFF_INCEPTION"):
        find_inception_weights()
    monkeypatch.delenv("LANDIFF_INCEPTION")
    a = _write_npz(tmp_path / "a.npz", smooth_images(8, seed=1))
    assert main(["eval", "kid", "--samples", str(a), "--ref", str(a)]) == 1
    assert capsys.readouterr().out.startswith("kid: unavailable: ")


class StubExtractor:
    """A stand-in feature network: 4×4 average colours (48-d)."""

    description = "stub: 4x4 average colours"
    resize = "adaptive average pool to 4x4"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(images).permute(0, 3, 1, 2).double() / 255
        return F.adaptive_avg_pool2d(x, 4).flatten(1).numpy()


stub_extractor = StubExtractor()


def test_inception_metric_records_carry_their_provenance():
    samples = ImageSet(smooth_images(40, seed=1), "gen.npz (first 40)")
    reference = ImageSet(smooth_images(40, seed=2), "synthetic held-out")
    record = evaluate_fid(samples, reference, stub_extractor, seed=3, repeats=3)
    assert record.n_samples == 40 and record.n_reference == 40 and record.seed == 3
    assert record.reference == "synthetic held-out" and record.resize == StubExtractor.resize
    assert record.features == StubExtractor.description
    # An independent FID of the same features: moments by hand, the matrix root by scipy's sqrtm.
    linalg = pytest.importorskip("scipy.linalg")
    fa, fb = stub_extractor(samples.images), stub_extractor(reference.images)
    mu_a, mu_b = fa.sum(0) / len(fa), fb.sum(0) / len(fb)
    cov_a, cov_b = (fa - mu_a).T @ (fa - mu_a) / (len(fa) - 1), (fb - mu_b).T @ (fb - mu_b) / (len(fb) - 1)
    expected = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * linalg.sqrtm(cov_a @ cov_b).real)
    assert expected > 1e-4  # two different sets: a real distance, not 0 = 0
    assert record.estimates["fid"].value == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert record.estimates["fid"].repeats == 3 and record.estimates["fid"].std > 0
    pr = evaluate_pr(samples, samples, stub_extractor)
    assert pr.estimates["precision"].value == 1.0 and pr.estimates["recall"].value == 1.0
    line = json.loads(record.to_json())
    assert line["metric"] == "fid" and line["estimates"]["fid"]["repeats"] == 3


def test_gaussian_stats_needs_two_vectors():
    with pytest.raises(UserError):
        gaussian_stats(np.zeros((1, 4)))


# --- loading and CLI ----------------------------------------------------------------------------


def _write_npz(path: Path, images: np.ndarray) -> Path:
    np.savez(path, images=images, meta=np.array(json.dumps({"sampler": "test"})))
    return path


def test_load_samples_from_a_png_folder_skips_the_grid(tmp_path):
    images = smooth_images(3, seed=0, size=16)
    for k, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{k:06d}.png")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "grid.png")
    loaded = load_samples(tmp_path)
    np.testing.assert_array_equal(loaded.images, images)
    _write_npz(tmp_path / "samples.npz", images[:2])
    assert len(load_samples(tmp_path)) == 2  # a sample folder's samples.npz wins


def test_cli_eval_swd_on_two_npz_files(tmp_path, capsys):
    a = _write_npz(tmp_path / "a.npz", smooth_images(16, seed=1))
    b = _write_npz(tmp_path / "b.npz", smooth_images(16, seed=3, blur=1))
    assert main(["eval", "swd", "--samples", str(a), "--ref", str(a), "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "swd_32" in out and "swd            0" in out
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": "synthetic", "seed": 0, "synthetic_n": 100}))
    argv = ["eval", "swd", "--samples", str(a), "--ref", str(b), "--run", str(run), "--n", "12", "--repeats", "2"]
    assert main(argv) == 0
    record = json.loads((run / "metrics-swd.jsonl").read_text().splitlines()[-1])
    assert record["n_samples"] == 12 and record["seed"] == 0 and record["reference"].startswith(str(b))
    assert record["estimates"]["swd"]["value"] > 0 and record["estimates"]["swd"]["repeats"] == 2
    assert set(record["estimates"]) == {"swd", "swd_32", "swd_16"}
    assert main(["eval", "swd", "--samples", str(tmp_path / "missing.npz"), "--ref", str(b)]) == 2


def test_cli_eval_memorization_writes_pairs(tmp_path, capsys):
    train = smooth_images(32, seed=20)
    gen = _write_npz(tmp_path / "gen.npz", np.concatenate([train[3:4], smooth_images(3, seed=21)]))
    tr = _write_npz(tmp_path / "train.npz", train)
    ho = _write_npz(tmp_path / "heldout.npz", smooth_images(32, seed=22))
    pairs = tmp_path / "pairs.png"
    assert main(["eval", "memorization", "--samples", str(gen), "--train", str(tr), "--heldout", str(ho),
                 "--pairs", str(pairs)]) == 0
    assert "1 of 4 samples flagged" in capsys.readouterr().out
    assert Image.open(pairs).size == (2 * 33 + 1, 4 * 33 + 1)
