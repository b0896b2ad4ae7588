"""landiff: diffusion models (DDPM, Improved DDPM, ADM) and a DCGAN baseline, trained and compared.

Notation (kept from the papers; equation numbers refer to Ho et al. 2020 "DDPM" and
Nichol & Dhariwal 2021 "Improved DDPM"):

==========================  =================================================================
name                        meaning
==========================  =================================================================
``T``                       number of diffusion steps; timesteps are indices ``t`` in [0, T)
``betas`` (β_t)             forward noise variances, DDPM eq. 2
``alphas`` (α_t)            1 − β_t
``alphas_cumprod`` (ᾱ_t)    ∏_{s≤t} α_s; q(x_t | x0) = N(√ᾱ_t x0, (1 − ᾱ_t) I), DDPM eq. 4
``x0``, ``x_t``             clean data in [−1, 1] and its noised version at step t
``eps`` (ε)                 the standard normal noise of q_sample: x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε
``posterior_variance`` β̃_t  (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t, DDPM eq. 7
``posterior_mean_coef1/2``  μ̃_t(x_t, x0) = coef1 · x0 + coef2 · x_t, DDPM eq. 7
``pred_x0``                 the network's estimate of x0
``v``                       √ᾱ_t ε − √(1−ᾱ_t) x0 (Salimans & Ho 2022)
``L_t``                     KL(q(x_{t−1}|x_t,x0) ‖ p(x_{t−1}|x_t)) for t > 0, decoder NLL at t = 0;
                            always in bits per dimension here (Improved DDPM eq. 4–6)
==========================  =================================================================
"""

import importlib
from typing import Any

from landiff import _moved

__version__ = "0.1.0"
__all__ = ["Pipeline", "__version__"]

_moved.install()  # deprecated import paths of moved modules, for one release

# Names resolved on first use (PEP 562), so that `import landiff` stays light: it imports no torch
# until `landiff.Pipeline` (or `from landiff import Pipeline`) is asked for. Not imported under
# TYPE_CHECKING either: the layer contracts count such imports, and lower layers import `landiff`
# for __version__ (train/components.py). Type checkers see `landiff.pipeline.Pipeline` with its full signature.
_LAZY = {"Pipeline": "landiff.pipeline"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'landiff' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
