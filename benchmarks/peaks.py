"""The machine's own speed limits, measured in the same run as a benchmark.

A bf16 3×3 convolution (forward) and square fp32 / bf16 matmuls: what a UNet step could reach if
every FLOP ran in the best kernel, so achieved GFLOP/s can be read against them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import median_seconds  # noqa: E402


def _rate(fn, flops: float, device: torch.device, repeats: int) -> float:
    """GFLOP/s of ``fn`` doing ``flops`` floating-point operations per call (median over ``repeats``)."""
    return flops / median_seconds(fn, repeats, device) / 1e9


def measure_peaks(device: torch.device, quick: bool = False) -> dict[str, float]:
    """GFLOP/s of a 3×3 conv (bf16, fp32) and a square matmul (fp32, bf16) on ``device``."""
    batch, channels, size = (2, 32, 16) if quick else ((256, 256, 32) if device.type == "cuda" else (32, 128, 32))
    n = 256 if quick else (8192 if device.type == "cuda" else 2048)
    repeats = 1 if quick else 5
    x = torch.randn(batch, channels, size, size, device=device)
    w = torch.randn(channels, channels, 3, 3, device=device)
    conv_flops = 2 * batch * channels * channels * 9 * size * size
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    peaks = {}
    for dtype, name in ((torch.bfloat16, "bf16"), (torch.float32, "fp32")):
        xd, wd = x.to(dtype), w.to(dtype)
        peaks[f"conv3x3 {name}"] = _rate(lambda: F.conv2d(xd, wd, padding=1), conv_flops, device, repeats)
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        ad, bd = a.to(dtype), b.to(dtype)
        peaks[f"matmul {name}"] = _rate(lambda: ad @ bd, 2 * n**3, device, repeats)
    return peaks
