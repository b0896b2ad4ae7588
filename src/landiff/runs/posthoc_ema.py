"""Post-hoc EMA (Karras et al. 2023, "Analyzing and Improving the Training Dynamics of Diffusion
Models", EDM2, arXiv 2312.02696 §3 and App. C): choose the EMA length after training.

A power-function EMA with exponent γ averages the weights θ_τ seen so far with a weight ∝ τ^γ:
after t updates θ̂_t = β_t θ̂_{t−1} + (1 − β_t) θ_t with β_t = (1 − 1/t)^{γ+1}, which gives update
τ the weight (τ^{γ+1} − (τ−1)^{γ+1}) / t^{γ+1}: the integral over [τ−1, τ] of the density

    p_{t,γ}(s) = (γ + 1) s^γ / t^{γ+1} on [0, t].

Its length is stated as σ_rel, the standard deviation of p relative to t:
σ_rel² = (γ + 1) / ((γ + 2)² (γ + 3)), so σ_rel 0.05 is γ ≈ 16.97 and 0.10 is γ ≈ 6.94. Training
keeps two such EMAs and saves them every few steps (the snapshots); an EMA of any other length,
at any snapshot time, is then approximately Σ_k x_k θ̂_k for the x that makes Σ_k x_k p_k closest to
the target p in L2 — a linear least-squares problem whose Gram matrix has the closed form

    ⟨p_{a}, p_{b}⟩ = (γ_a + 1)(γ_b + 1) m^{γ_a+γ_b+1} / ((γ_a + γ_b + 1) t_a^{γ_a+1} t_b^{γ_b+1}),  m = min(t_a, t_b).

This module is the maths, the snapshot files (``RUN/ema-snapshots/step-N.safetensors``, never
rotated away by ``--keep``) and the reconstruction; :mod:`landiff.train.ema` keeps the EMAs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors.torch
import torch

from landiff.errors import UserError
from landiff.runs.checkpoint import landiff_meta, load_checkpoint, prefixed, read_header, unprefixed
from landiff.runs.files import atomic_write_bytes

SIGMA_REL_RANGE = (0.01, 0.25)  # γ from about 0.3 to 5000
POSTHOC_SIGMA_RELS = (0.05, 0.10)  # the two EMAs training keeps (EDM2 §3.2)
SNAPSHOT_DIR = "ema-snapshots"
_NAME = re.compile(r"^step-(\d{9,})\.safetensors$")


def sigma_rel_to_gamma(sigma_rel: float) -> float:
    """γ of the power profile with relative width ``sigma_rel`` (the root of EDM2 eq. 2 with γ > 0)."""
    low, high = SIGMA_REL_RANGE
    if not (isinstance(sigma_rel, (int, float)) and low <= sigma_rel <= high):
        raise UserError(f"an EMA length (sigma_rel) must be a number in [{low}, {high}] (EDM2 uses 0.05 to 0.2), "
                        f"got {sigma_rel!r:.40}")
    # σ_rel(γ) decreases on γ > 0; bisection in log γ is exact to float precision in 200 halvings.
    lo, hi = math.log(1e-3), math.log(1e7)
    for _ in range(200):
        mid = (lo + hi) / 2
        if gamma_to_sigma_rel(math.exp(mid)) > sigma_rel:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


def gamma_to_sigma_rel(gamma: float) -> float:
    return math.sqrt((gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3)))


ArrayLike = np.ndarray | float


def profile_dot(t_a: ArrayLike, gamma_a: ArrayLike, t_b: ArrayLike, gamma_b: ArrayLike) -> np.ndarray:
    """⟨p_{t_a,γ_a}, p_{t_b,γ_b}⟩ in L2 (broadcasting), computed in log space so large t and γ do not overflow."""
    t_a, gamma_a, t_b, gamma_b = (np.asarray(v, dtype=np.float64) for v in (t_a, gamma_a, t_b, gamma_b))
    m = np.minimum(t_a, t_b)
    log = (np.log(gamma_a + 1) + np.log(gamma_b + 1) + (gamma_a + gamma_b + 1) * np.log(m)
           - np.log(gamma_a + gamma_b + 1) - (gamma_a + 1) * np.log(t_a) - (gamma_b + 1) * np.log(t_b))
    return np.exp(log)


def _normal_equations(snapshots: Sequence[tuple[int, float]], target: tuple[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """(Gram matrix of the snapshots' profiles, their inner products with the target's)."""
    t = np.array([s[0] for s in snapshots], dtype=np.float64)
    gamma = np.array([s[1] for s in snapshots], dtype=np.float64)
    if len(t) == 0 or np.any(t < 1):
        raise ValueError("post-hoc EMA needs snapshots taken after at least one update")
    gram = profile_dot(t[:, None], gamma[:, None], t[None, :], gamma[None, :])
    return gram, profile_dot(t, gamma, float(target[0]), float(target[1]))


def solve_coefficients(snapshots: Sequence[tuple[int, float]], target: tuple[int, float]) -> np.ndarray:
    """x minimising ‖Σ_k x_k p_{t_k,γ_k} − p_target‖² over the snapshots (t_k updates, γ_k); float64 (K,)."""
    gram, rhs = _normal_equations(snapshots, target)
    x, *_ = np.linalg.lstsq(gram, rhs, rcond=1e-12)
    return x


def reconstruction_error(snapshots: Sequence[tuple[int, float]], target: tuple[int, float], x: np.ndarray) -> float:
    """‖Σ x_k p_k − p_target‖ / ‖p_target‖: how far the reconstructed profile is from the asked one."""
    gram, rhs = _normal_equations(snapshots, target)
    target_sq = float(profile_dot(target[0], target[1], target[0], target[1]))
    residual = float(x @ gram @ x - 2 * x @ rhs + target_sq)
    return math.sqrt(max(residual, 0.0) / target_sq)


@dataclass(frozen=True)
class Snapshot:
    """One saved set of power EMAs: their weights by σ_rel, after ``updates`` EMA updates."""

    path: Path
    step: int
    updates: int
    sigma_rels: tuple[float, ...]


def snapshot_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / SNAPSHOT_DIR / f"step-{step:09d}.safetensors"


def write_snapshot(run_dir: Path, step: int, updates: int, emas: dict[float, dict[str, torch.Tensor]]) -> Path:
    """Saves the power EMAs (σ_rel → state dict) after ``updates`` updates at training step ``step`` (atomically)."""
    tensors: dict[str, torch.Tensor] = {}
    for index, state in enumerate(emas.values()):
        tensors.update(prefixed(f"ema{index}", state))
    meta = {"kind": "posthoc-ema-snapshot", "step": step, "updates": updates, "sigma_rels": list(emas)}
    path = snapshot_path(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    contiguous = {name: t.detach().contiguous().cpu() for name, t in tensors.items()}
    atomic_write_bytes(path, safetensors.torch.save(contiguous, metadata={"landiff": json.dumps(meta)}))
    return path


def list_snapshots(run_dir: Path, up_to_step: int | None = None) -> list[Snapshot]:
    """The run's snapshots in step order (those after ``up_to_step`` left out), headers only."""
    folder = Path(run_dir) / SNAPSHOT_DIR
    found = []
    for path in sorted(folder.glob("step-*.safetensors")) if folder.is_dir() else []:
        match = _NAME.match(path.name)
        if not match or (up_to_step is not None and int(match.group(1)) > up_to_step):
            continue
        try:
            meta = landiff_meta(read_header(path))
        except ValueError:
            meta = None
        if not isinstance(meta, dict) or meta.get("kind") != "posthoc-ema-snapshot":
            raise UserError(f"{path} is not a post-hoc EMA snapshot; move it out of {folder}")
        found.append(Snapshot(path, int(meta["step"]), int(meta["updates"]), tuple(float(s) for s in meta["sigma_rels"])))
    return found


def reconstruct(
    sources: Sequence[tuple[int, float, dict[str, torch.Tensor]]], target_updates: int, sigma_rel: float
) -> tuple[dict[str, torch.Tensor], float]:
    """The EMA of length ``sigma_rel`` after ``target_updates`` updates from power-EMA states
    ``(updates, σ_rel, state dict)``; returns the state dict (float32 accumulation in float64) and
    the relative profile error (:func:`reconstruction_error`). Non-float entries come from the last source."""
    profiles = [(updates, sigma_rel_to_gamma(rel)) for updates, rel, _ in sources]
    target = (target_updates, sigma_rel_to_gamma(sigma_rel))
    x = solve_coefficients(profiles, target)
    out: dict[str, torch.Tensor] = {}
    last = sources[-1][2]
    for name, value in last.items():
        if not value.is_floating_point():
            out[name] = value.clone()
            continue
        total = torch.zeros(value.shape, dtype=torch.float64)
        for coefficient, (_, _, state) in zip(x, sources, strict=True):
            total += float(coefficient) * state[name].double()
        out[name] = total.to(value.dtype)
    return out, reconstruction_error(profiles, target, x)


def snapshot_sources(snapshot: Snapshot) -> list[tuple[int, float, dict[str, torch.Tensor]]]:
    """The (updates, σ_rel, state dict) of every EMA in one snapshot file."""
    tensors, _ = load_checkpoint(snapshot.path)
    return [(snapshot.updates, rel, unprefixed(f"ema{index}", tensors)) for index, rel in enumerate(snapshot.sigma_rels)]
