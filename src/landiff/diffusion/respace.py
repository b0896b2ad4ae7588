"""Respacing: pick K of the T timesteps and build the process that jumps between them (Improved DDPM §4).

Respacing is explicit: :func:`respace_betas` returns the new β's *and* the map from respaced index to
original timestep, and :class:`~landiff.diffusion.GaussianDiffusion` hands the network the original t.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from landiff.errors import UserError


def space_timesteps(num_steps: int, spec: int | str | Sequence[int]) -> list[int]:
    """Chooses which original timesteps to keep.

    Args:
        num_steps: T of the original process.
        spec: one of
            - an int K: K steps spread evenly over [0, T−1] (both ends included);
            - a list/comma string of per-section counts, e.g. ``"10,15,20"``: [0, T) is split into
              that many equal sections and each keeps its count, evenly spread (Improved DDPM);
            - ``"ddimK"``: the DDIM-style integer stride s with len(range(0, T, s)) == K.

    Returns:
        Sorted, distinct original timesteps.
    """
    if isinstance(spec, str):
        text = spec.strip()
        if text.startswith("ddim"):
            return _ddim_stride(num_steps, _parse_int(text[4:], spec))
        counts = [_parse_int(part, spec) for part in text.split(",")]
    elif isinstance(spec, int):
        counts = [spec]
    else:
        counts = [int(c) for c in spec]
    return _section_counts(num_steps, counts)


def _parse_int(text: str, spec: object) -> int:
    try:
        return int(text)
    except ValueError:
        raise UserError(f"timestep spacing {spec!r} is not understood; use K, 'a,b,c' or 'ddimK' (--steps)") from None


def _ddim_stride(num_steps: int, count: int) -> list[int]:
    for stride in range(1, num_steps + 1):
        steps = list(range(0, num_steps, stride))
        if len(steps) == count:
            return steps
    raise UserError(f"no integer stride gives exactly {count} of {num_steps} steps; pick another K for 'ddimK'")


def _section_counts(num_steps: int, counts: list[int]) -> list[int]:
    sections = len(counts)
    base, extra = divmod(num_steps, sections)
    start = 0
    kept: list[int] = []
    for i, count in enumerate(counts):
        size = base + (1 if i < extra else 0)
        if not 1 <= count <= size:
            raise UserError(f"cannot keep {count} steps in a section of {size} (T={num_steps}); use 1..{size}")
        stride = (size - 1) / (count - 1) if count > 1 else 0.0
        kept.extend(start + int(round(j * stride)) for j in range(count))
        start += size
    return sorted(set(kept))


def respace_betas(alphas_cumprod: np.ndarray, use_timesteps: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """β's of the process that visits only ``use_timesteps``, with the same ᾱ at each kept step.

    β'_i = 1 − ᾱ_{t_i} / ᾱ_{t_{i−1}} (with ᾱ_{t_{−1}} = 1), so q(x_{t_i} | x0) is unchanged.

    Args:
        alphas_cumprod: ᾱ of the original process, shape (T,).
        use_timesteps: original timesteps to keep (any order, distinct, in [0, T)).

    Returns:
        ``(betas, timestep_map)``: float64 (K,) and int64 (K,) with timestep_map[i] = t_i.
    """
    steps = np.asarray(sorted(set(int(t) for t in use_timesteps)), dtype=np.int64)
    num_steps = len(alphas_cumprod)
    if len(steps) == 0 or steps[0] < 0 or steps[-1] >= num_steps:
        raise UserError(f"timesteps to keep must be a non-empty subset of 0..{num_steps - 1}")
    kept = alphas_cumprod[steps]
    previous = np.concatenate([[1.0], kept[:-1]])
    return 1.0 - kept / previous, steps
