"""The Inception-v3 used by FID: the 2015-12-05 TensorFlow graph, re-expressed as a PyTorch module.

Szegedy et al. 2016, "Rethinking the Inception Architecture", with the quirks of the TF graph that
TTUR's reference FID code runs (Heusel et al. 2017), as documented by pytorch-fid:

* average pools inside the A, C and E blocks ignore the zero padding (TF's ``SAME`` pooling
  divides by the number of real pixels: ``count_include_pad=False``);
* the last E block (``Mixed_7c``) max-pools in its pool branch where the paper average-pools;
* 1008 output classes and no auxiliary head.

Parameter names follow torchvision's ``inception_v3`` (``Conv2d_1a_3x3.conv.weight``,
``Mixed_5b.branch_pool.bn.running_var`` …), so the state dict of pytorch-fid's published
``pt_inception-2015-12-05-6726825d.pth`` loads unchanged. :meth:`FIDInceptionV3.forward` returns the
2048-d "pool3" features (global average pool after ``Mixed_7c``) for inputs already resized to
299×299 and scaled to [−1, 1]; see :mod:`landiff.metrics.features` for the fixed resize path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FEATURE_DIM = 2048
INPUT_SIZE = 299
NUM_CLASSES = 1008


class BasicConv2d(nn.Module):
    """Convolution without bias → BatchNorm (ε = 0.001, TF's value) → ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3×3 stride-1 average pool that divides by the number of real (unpadded) pixels, like TF."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35×35 block: 1×1, 5×5, double 3×3 and pool branches → 224 + pool_features channels."""

    def __init__(self, in_ch: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_ch, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_ch, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_ch, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_tf_avg_pool(x))], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 → 17: strided 3×3, strided double 3×3 and max pool → 480 + in_ch channels."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_ch, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    """17×17 block with factorised 7×7 convolutions (1×7 then 7×1) → 768 channels."""

    def __init__(self, in_ch: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_ch, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_ch, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_ch, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_ch, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            d = layer(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_tf_avg_pool(x))], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 → 8: strided 3×3, 7×7-then-strided-3×3 and max pool → 512 + in_ch channels."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_ch, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_ch, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """8×8 block with split 1×3 / 3×1 outputs → 2048 channels.

    Args:
        in_ch: input channels.
        pool: ``"avg"`` (TF-style average pool, Mixed_7b) or ``"max"`` (the graph's Mixed_7c).
    """

    def __init__(self, in_ch: int, pool: str) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_ch, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_ch, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_ch, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(s), self.branch3x3_2b(s)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.pool == "max" else _tf_avg_pool(x)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """Inception-v3 as in the FID graph; ``forward`` gives pool3 features (N, 2048).

    Input: (N, 3, 299, 299) float in [−1, 1]. ``fc`` (2048 → 1008 logits) is kept so that the
    published state dict loads strictly; the features do not use it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)  # 32 x 149 x 149
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)  # 32 x 147 x 147
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)  # 64 x 147 x 147 → max pool → 73 x 73
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)  # 80 x 73 x 73
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)  # 192 x 71 x 71 → max pool → 35 x 35
        self.Mixed_5b = InceptionA(192, pool_features=32)  # 256 x 35 x 35
        self.Mixed_5c = InceptionA(256, pool_features=64)  # 288 x 35 x 35
        self.Mixed_5d = InceptionA(288, pool_features=64)  # 288 x 35 x 35
        self.Mixed_6a = InceptionB(288)  # 768 x 17 x 17
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)  # 768 x 17 x 17
        self.Mixed_7a = InceptionD(768)  # 1280 x 8 x 8
        self.Mixed_7b = InceptionE(1280, pool="avg")  # 2048 x 8 x 8
        self.Mixed_7c = InceptionE(2048, pool="max")  # 2048 x 8 x 8
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))  # pool3: global average pool → (N, 2048)
