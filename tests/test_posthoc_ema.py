"""Post-hoc EMA (EDM2, arXiv 2312.02696): the power-function EMA, the least-squares reconstruction of
an EMA of another length from snapshots, and the run-level path (snapshots that outlive checkpoint
rotation, ``load_run(ema_length=…)``, ``sample --ema-length``, provenance, refusals, exact resume)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from landiff.cli.main import main
from landiff.errors import UserError
from landiff.metrics.provenance import provenance_for
from landiff.runs.checkpoint import list_checkpoints, load_checkpoint, unprefixed
from landiff.runs.config import validate
from landiff.runs.load import load_run
from landiff.runs.posthoc_ema import (
    gamma_to_sigma_rel,
    list_snapshots,
    reconstruct,
    sigma_rel_to_gamma,
    solve_coefficients,
)
from landiff.train import train
from landiff.train.ema import PowerEMA
from tiny_runs import four_step_unet, tiny_gan


def test_sigma_rel_and_gamma_are_edm2s():
    """EDM2 §3.1: σ_rel 0.05 ↔ γ ≈ 16.97 and 0.10 ↔ γ ≈ 6.94; the two maps invert each other."""
    assert sigma_rel_to_gamma(0.05) == pytest.approx(16.97, abs=0.01)
    assert sigma_rel_to_gamma(0.10) == pytest.approx(6.94, abs=0.01)
    for rel in (0.01, 0.07, 0.2, 0.25):
        assert gamma_to_sigma_rel(sigma_rel_to_gamma(rel)) == pytest.approx(rel, rel=1e-9)
    with pytest.raises(UserError, match="EMA length"):
        sigma_rel_to_gamma(0.3)


def _trajectory(steps: int, dim: int = 40) -> torch.Tensor:
    """A drifting, oscillating weight vector: what an EMA has to smooth."""
    g = torch.Generator().manual_seed(0)
    walk = torch.randn(steps, dim, generator=g, dtype=torch.float64).cumsum(0) / 10
    waves = torch.sin(torch.arange(steps, dtype=torch.float64)[:, None] / 50 * torch.linspace(0.2, 3, dim)[None, :])
    return walk + waves


def _tracked(trajectory: torch.Tensor, sigma_rel: float, every: int = 0) -> tuple[torch.Tensor, list]:
    """A PowerEMA of a one-parameter module fed ``trajectory``; snapshots (updates, σ_rel, state) every ``every``."""
    module = torch.nn.Linear(trajectory.shape[1], 1, bias=False).double()
    ema, snaps = PowerEMA(module, sigma_rel), []
    for t, theta in enumerate(trajectory, start=1):
        with torch.no_grad():
            module.weight.copy_(theta[None, :])
        ema.update(module)
        if every and t % every == 0:
            snaps.append((t, sigma_rel, {k: v.clone() for k, v in ema.model.state_dict().items()}))
    return ema.model.weight[0].detach().clone(), snaps


def test_power_ema_is_the_power_weighted_average():
    """After t updates each update τ has weight (τ^{γ+1} − (τ−1)^{γ+1}) / t^{γ+1} (the first update is copied)."""
    trajectory = _trajectory(300)
    got, _ = _tracked(trajectory, 0.1)
    gamma = sigma_rel_to_gamma(0.1)
    tau = torch.arange(1, 301, dtype=torch.float64)
    weights = (tau ** (gamma + 1) - (tau - 1) ** (gamma + 1)) / 300 ** (gamma + 1)
    assert weights.sum().item() == pytest.approx(1.0)
    torch.testing.assert_close(got, (weights[:, None] * trajectory).sum(0), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("target", [0.03, 0.07, 0.15, 0.2])
def test_reconstruction_matches_a_directly_tracked_ema(target):
    """From EDM2's two EMAs (0.05, 0.10) saved every 50 of 1000 updates, the EMA of another length is
    within 2 % of a directly tracked one, relative to how far that EMA is from the current weights
    (measured: 0.8 % at 0.03, ≤ 0.2 % from 0.07 to 0.2)."""
    trajectory = _trajectory(1000)
    _, first = _tracked(trajectory, 0.05, every=50)
    _, second = _tracked(trajectory, 0.10, every=50)
    direct, _ = _tracked(trajectory, target)
    state, error = reconstruct(first + second, 1000, target)
    rebuilt = state["weight"][0]
    scale = (direct - trajectory[-1]).abs().max()
    assert ((rebuilt - direct).abs().max() / scale).item() < 0.02
    assert error < 0.05


def test_a_tracked_length_is_reproduced_exactly():
    x = solve_coefficients([(100, 6.9), (200, 6.9), (200, 17.0)], (200, 17.0))
    np.testing.assert_allclose(x, [0, 0, 1], atol=1e-8)


def test_combinations_are_refused():
    with pytest.raises(UserError, match="--ema-snapshot-every only applies with --posthoc-ema"):
        validate(four_step_unet(ema_snapshot_every=10))
    with pytest.raises(UserError, match="--posthoc-ema/--ema-snapshot-every/--ema-length only apply to diffusion"):
        validate(tiny_gan(posthoc_ema=True))


def test_a_posthoc_run_keeps_snapshots_and_samples_any_length(tmp_path, capsys):
    run = tmp_path / "run"
    config = four_step_unet(posthoc_ema=True, ema_snapshot_every=1, checkpoint_every=2, keep_checkpoints=1, train_steps=6)
    train(config, run, log=lambda _: None)
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [6]  # rotated
    snaps = list_snapshots(run)
    assert [s.step for s in snaps] == [1, 2, 3, 4, 5, 6] and snaps[0].sigma_rels == (0.05, 0.1)  # all kept
    tensors, _ = load_checkpoint(list_checkpoints(run / "checkpoints")[-1][1])
    tracked = load_run(run, ema_length=0.1)
    for name, value in unprefixed("ema.posthoc1", tensors).items():  # a tracked length comes back as itself
        torch.testing.assert_close(tracked.ema_model.state_dict()[name], value, rtol=1e-4, atol=1e-6)
    assert tracked.ema_error == pytest.approx(0.0, abs=1e-6)
    other = load_run(run, ema_length=0.2)
    a, b = other.ema_model.state_dict(), tracked.ema_model.state_dict()
    assert other.ema_error < 0.2 and any(not torch.equal(a[k], b[k]) for k in a)
    assert provenance_for(other, sampler="dpm++", steps=4).weights == "ema-0.2"
    assert provenance_for(load_run(run), sampler="dpm++", steps=4).weights == "ema"
    assert main(["sample", "--run", str(run), "--n", "2", "--steps", "3", "--ema-length", "0.15",
                 "--out", str(tmp_path / "s")]) == 0
    assert "post-hoc EMA sigma_rel 0.15" in capsys.readouterr().out
    meta = json.loads(str(np.load(tmp_path / "s" / "samples.npz", allow_pickle=False)["meta"]))
    assert meta["provenance"]["weights"] == "ema-0.15"
    assert main(["sample", "--run", str(run), "--n", "1", "--ema-length", "0.15", "--no-ema"]) == 2
    assert "pass one" in capsys.readouterr().err


def test_ema_length_needs_a_posthoc_run(tmp_path, capsys):
    run = tmp_path / "plain"
    train(four_step_unet(train_steps=2), run, log=lambda _: None)
    with pytest.raises(UserError, match="trained with --posthoc-ema"):
        load_run(run, ema_length=0.1)
    assert main(["sample", "--run", str(run), "--n", "1", "--ema-length", "0.1", "--out", str(tmp_path / "s")]) == 2
    assert "--posthoc-ema" in capsys.readouterr().err


def test_resume_with_posthoc_ema_is_bit_exact(tmp_path):
    config = dataclasses.replace(four_step_unet(posthoc_ema=True, ema_snapshot_every=2), checkpoint_every=100)
    train(config, tmp_path / "straight", log=lambda _: None)
    train(config, tmp_path / "resumed", stop_after=3, log=lambda _: None)
    train(config, tmp_path / "resumed", log=lambda _: None)
    for run_a, run_b in ((tmp_path / "straight", tmp_path / "resumed"),):
        a, _ = load_checkpoint(list_checkpoints(run_a / "checkpoints")[-1][1])
        b, _ = load_checkpoint(list_checkpoints(run_b / "checkpoints")[-1][1])
        assert any(k.startswith("ema.posthoc0.") for k in a)
        for key in a:
            if not key.startswith("rng."):
                assert torch.equal(a[key], b[key]), key
        snaps_a, snaps_b = list_snapshots(run_a), list_snapshots(run_b)
        assert [s.step for s in snaps_a] == [s.step for s in snaps_b] == [2, 4]
        for x, y in zip(snaps_a, snaps_b, strict=True):
            tx, _ = load_checkpoint(x.path)
            ty, _ = load_checkpoint(y.path)
            assert all(torch.equal(tx[k], ty[k]) for k in tx)


def test_the_tiny_preset_samples_its_post_hoc_length_and_tiny_v1_keeps_the_old_recipe():
    """tiny = the first wave's recipe (tiny-v1) with its LR annealed by a cosine and post-hoc EMA on,
    sampled at σ_rel 0.1; the lineage presets share tiny-v1's net and optimiser."""
    from landiff.runs.config import RECIPES, recipe

    new, old = recipe("tiny"), recipe("tiny-v1")
    assert (new.posthoc_ema, new.ema_length) == (True, 0.1)
    assert (old.posthoc_ema, old.ema_length) == (False, 0.0)
    assert new.optim.decay == "cosine" and old.optim.decay == "none"
    assert dataclasses.replace(new, posthoc_ema=False, ema_length=0.0, preset="tiny-v1",
                               optim=dataclasses.replace(new.optim, decay="none")) == old
    for name in ("ddpm-tiny", "iddpm-tiny", "edm-tiny"):
        lineage = recipe(name)
        assert (lineage.net, lineage.optim, lineage.ema_decay) == (old.net, old.optim, old.ema_decay), name
        validate(lineage)
    assert recipe("ddpm-tiny").diffusion.schedule == "linear"
    assert recipe("iddpm-tiny").diffusion.loss == "hybrid"
    assert recipe("edm-tiny").diffusion.formulation == "edm"
    assert set(RECIPES) >= {"tiny", "tiny-v1", "ddpm-tiny", "iddpm-tiny", "edm-tiny"}


def test_post_hoc_ema_does_not_change_what_trains(tmp_path):
    """The power EMAs sit beside training: the net, the fixed EMA and the optimiser come out bit-identical,
    which is why one run per seed measures both the old recipe (fixed EMA) and the new (post-hoc)."""
    train(four_step_unet(), tmp_path / "plain", log=lambda _: None)
    train(four_step_unet(posthoc_ema=True, ema_snapshot_every=1), tmp_path / "posthoc", log=lambda _: None)
    a, _ = load_checkpoint(list_checkpoints(tmp_path / "plain" / "checkpoints")[-1][1])
    b, _ = load_checkpoint(list_checkpoints(tmp_path / "posthoc" / "checkpoints")[-1][1])
    assert set(a) < set(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_run_samples_its_own_ema_length_unless_told_otherwise(tmp_path, capsys):
    run = tmp_path / "run"
    train(four_step_unet(posthoc_ema=True, ema_snapshot_every=1, ema_length=0.1), run, log=lambda _: None)
    tensors, _ = load_checkpoint(list_checkpoints(run / "checkpoints")[-1][1])
    default = load_run(run)
    assert default.ema_length == 0.1
    for name, value in unprefixed("ema.posthoc1", tensors).items():  # σ_rel 0.1 is the second tracked EMA
        torch.testing.assert_close(default.ema_model.state_dict()[name], value, rtol=1e-4, atol=1e-6)
    fixed = load_run(run, ema_length=0)
    assert fixed.ema_length is None
    for name, value in unprefixed("ema.net", tensors).items():
        assert torch.equal(fixed.ema_model.state_dict()[name], value), name
    assert provenance_for(default, sampler="dpm++", steps=4).weights == "ema-0.1"
    assert provenance_for(fixed, sampler="dpm++", steps=4).weights == "ema"
    assert main(["sample", "--run", str(run), "--n", "1", "--steps", "3", "--ema-length", "0",
                 "--out", str(tmp_path / "s")]) == 0
    meta = json.loads(str(np.load(tmp_path / "s" / "samples.npz", allow_pickle=False)["meta"]))
    assert meta["provenance"]["weights"] == "ema"


def test_the_sampling_length_is_checked_and_may_change_on_resume(tmp_path, capsys):
    with pytest.raises(UserError, match="needs --posthoc-ema"):
        validate(four_step_unet(ema_length=0.05))
    with pytest.raises(UserError, match=r"--ema-length must be 0 \(the fixed EMA\) or a sigma_rel"):
        validate(four_step_unet(posthoc_ema=True, ema_length=0.005))
    with pytest.raises(UserError, match="only apply to diffusion"):
        validate(tiny_gan(ema_length=0.05))
    base = ["train", "--run", str(tmp_path / "r"), "--steps", "2", "--batch", "2", "--resolution", "16",
            "--synthetic-n", "8", "--preview-count", "0", "--channels", "8", "--channel-mult", "1,2",
            "--attention", "", "--res-blocks", "1", "--head-channels", "8", "--decay", "none"]
    assert main([*base, "--no-posthoc-ema", "--dry-run"]) == 0  # the preset's length goes with its post-hoc EMA
    resolved = json.loads(capsys.readouterr().out)
    assert (resolved["posthoc_ema"], resolved["ema_length"]) == (False, 0.0)
    assert main([*base, "--no-posthoc-ema", "--ema-length", "0.1"]) == 2
    assert "needs --posthoc-ema" in capsys.readouterr().err
    assert main([*base, "--posthoc-ema", "--no-posthoc-ema"]) == 2
    assert "contradict" in capsys.readouterr().err
    assert main(base) == 0
    assert load_run(tmp_path / "r").ema_length == 0.1
    longer = [*base[:3], "--steps", "3", *base[5:]]
    assert main([*longer, "--ema-length", "0.05"]) == 0  # a sampling choice: a resume may change it
    assert load_run(tmp_path / "r").ema_length == 0.05  # from the next checkpoint on
