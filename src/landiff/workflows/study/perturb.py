"""D′: the training set D with a small fraction of its images replaced, removed, or made copies of one.

The construction is exact and seeded, and the same indices change in all three variants, so the
variants differ only in *how* those images change:

* ``replace``:   the k chosen images are swapped for k images from outside D (a pool of unused images);
* ``remove``:    the k chosen images are deleted (D′ has n − k images, order otherwise kept);
* ``duplicate``: the k chosen images become copies of one other image j of D (j then appears k + 1 times).

k = max(1, round(fraction · n)). ``replace`` and ``duplicate`` keep n and every position, so the
trainer's data order (a seeded permutation of range(n)) is identical for D and D′: the two runs
differ only in the content of the k changed positions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from landiff.errors import UserError

Kind = Literal["replace", "remove", "duplicate"]
KINDS: tuple[Kind, ...] = ("replace", "remove", "duplicate")
_KIND_STREAM = {"replace": 1, "remove": 2, "duplicate": 3}


@dataclass(frozen=True)
class Perturbation:
    """One D → D′ change, as recorded in ``perturbation.json``.

    Attributes:
        kind: ``replace``, ``remove`` or ``duplicate``.
        n: images in D.
        fraction: requested share of D to change.
        seed: seed of every choice.
        changed: sorted indices of D that change (k of them).
        sources: ``replace``: pool index taken by each changed position (same order as ``changed``);
            ``duplicate``: the index j of D that every changed position copies, once per position;
            ``remove``: empty.
    """

    kind: Kind
    n: int
    fraction: float
    seed: int
    changed: tuple[int, ...]
    sources: tuple[int, ...]

    @property
    def n_after(self) -> int:
        """Images in D′."""
        return self.n - len(self.changed) if self.kind == "remove" else self.n

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "n_after": self.n_after}, indent=1) + "\n"


def changed_count(n: int, fraction: float) -> int:
    """k = max(1, round(fraction · n)), checked to leave D′ non-empty."""
    if not 0 < fraction < 1:
        raise UserError(f"--fraction must be between 0 and 1 (exclusive), got {fraction}")
    k = max(1, round(fraction * n))
    if k >= n:
        raise UserError(f"--fraction {fraction} of {n} images changes all of them; lower --fraction or use more --images")
    return k


def changed_indices(n: int, fraction: float, seed: int) -> np.ndarray:
    """The k indices of D that every variant changes (sorted), from stream (seed, 0)."""
    k = changed_count(n, fraction)
    return np.sort(np.random.default_rng([seed, 0]).choice(n, size=k, replace=False))


def make_perturbation(kind: Kind, n: int, fraction: float, seed: int, pool_size: int = 0) -> Perturbation:
    """Chooses what changes; ``pool_size`` images outside D are available to ``replace``.

    Raises:
        UserError: an unknown kind, a bad fraction, or too small a pool for ``replace``.
    """
    if kind not in KINDS:
        raise UserError(f"unknown perturbation {kind!r}; choose one of {', '.join(KINDS)}")
    changed = changed_indices(n, fraction, seed)
    rng = np.random.default_rng([seed, _KIND_STREAM[kind]])
    sources: tuple[int, ...] = ()
    if kind == "replace":
        if pool_size < len(changed):
            raise UserError(f"replacing {len(changed)} images needs as many images outside D, only {pool_size} available; "
                            "lower --images or --fraction, or add images to --data")
        sources = tuple(int(s) for s in rng.choice(pool_size, size=len(changed), replace=False))
    elif kind == "duplicate":
        kept = np.setdiff1d(np.arange(n), changed)
        sources = (int(rng.choice(kept)),) * len(changed)
    return Perturbation(kind, n, float(fraction), seed, tuple(int(c) for c in changed), sources)


def apply_perturbation(p: Perturbation, images: np.ndarray, pool: np.ndarray | None = None) -> np.ndarray:
    """D′ from D: ``images`` (n, H, W, 3) and, for ``replace``, the ``pool`` (m, H, W, 3); a new array."""
    if len(images) != p.n:
        raise ValueError(f"the perturbation is for {p.n} images, got {len(images)}")
    changed = np.array(p.changed, dtype=np.int64)
    if p.kind == "remove":
        return np.delete(images, changed, axis=0)
    out = images.copy()
    if p.kind == "replace":
        if pool is None:
            raise ValueError("replace needs the pool of images outside D")
        out[changed] = pool[np.array(p.sources, dtype=np.int64)]
    else:
        out[changed] = images[p.sources[0]]
    return out


def read_perturbation(path: Path) -> Perturbation:
    """Reads a ``perturbation.json`` written by :meth:`Perturbation.to_json`."""
    values = json.loads(Path(path).read_text(encoding="utf-8"))
    values.pop("n_after", None)
    return Perturbation(kind=values["kind"], n=int(values["n"]), fraction=float(values["fraction"]),
                        seed=int(values["seed"]), changed=tuple(values["changed"]), sources=tuple(values["sources"]))
