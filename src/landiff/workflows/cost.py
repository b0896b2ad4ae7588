"""Compute accounting: FLOPs per training image and per generated image, counted by torch.

Counts come from :class:`torch.utils.flop_counter.FlopCounterMode` on one example (batch 1), so
they cover convolutions, matmuls and attention (the ops that dominate), not elementwise ops.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from landiff.runs.load import LoadedRun
from landiff.runs.models import build_discriminator, build_generator


def _count(fn: Callable[[], object]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def _fwd_bwd(module: torch.nn.Module, *inputs: torch.Tensor) -> int:
    def run() -> None:
        out = module(*inputs)
        out.float().sum().backward()

    flops = _count(run)
    module.zero_grad(set_to_none=True)
    return flops


def flops_per_image(loaded: LoadedRun) -> tuple[int, int]:
    """(FLOPs per training image, FLOPs per network evaluation at sampling time) on the CPU."""
    config = loaded.config
    res = config.resolution
    if loaded.diffusion is not None:
        net = loaded.model.cpu().float().train()
        x = torch.randn(1, config.net.in_channels, res, res)
        t = torch.zeros(1, dtype=torch.long)
        y = torch.zeros(1, dtype=torch.long) if config.net.num_classes else None
        train = _fwd_bwd(net, x, t, y) if y is not None else _fwd_bwd(net, x, t)
        with torch.no_grad():
            per_eval = _count(lambda: net(x, t, y) if y is not None else net(x, t))
        net.eval()
        return train, per_eval
    return _gan_flops(loaded)


def _gan_flops(loaded: LoadedRun) -> tuple[int, int]:
    """The GAN's (FLOPs per training image, FLOPs per sample), its flavours included: the lazy R1
    penalty's double backward amortised over ``r1_every`` D updates, and the relativistic loss's
    pass of the real images through D in the G update (DiffAugment and spectral norm's power
    iteration are elementwise or matrix-vector work, not counted)."""
    config = loaded.config
    res, gan = config.resolution, config.gan
    cpu = torch.device("cpu")
    g, d = build_generator(config, cpu).train(), build_discriminator(config, cpu).train()
    z = torch.randn(2, gan.z_dim)  # batch 2: batch norm needs more than one value per channel
    y = torch.zeros(2, dtype=torch.long) if gan.num_classes else None
    real = torch.randn(2, 3, res, res)
    g_forward = _count(lambda: g(z, y).detach())
    d_update = _count(lambda: d(real, y).sum().backward())  # one image through D, forward and backward
    g_update = _count(lambda: d(g(z, y), y).sum().backward())
    if gan.loss == "rsgan":
        g_update += d_update

    def penalty() -> None:
        x = real.clone().requires_grad_(True)
        with warnings.catch_warnings():  # backward(create_graph=True) warns of a reference cycle; x is dropped
            warnings.simplefilter("ignore", UserWarning)
            d(x, y).sum().backward(create_graph=True)  # (autograd.grad is not supported under the counter)
        assert x.grad is not None
        x.grad.square().sum().backward()

    r1 = _count(penalty) // gan.r1_every if gan.r1_gamma else 0
    # Each D update sees a real and a fake image per example (plus G's forward for the fake);
    # each G update backpropagates through D and G once.
    train = (gan.d_steps * (2 * d_update + g_forward + r1) + g_update) // 2
    with torch.no_grad():
        per_eval = _count(lambda: g(z, y)) // 2
    return train, per_eval
