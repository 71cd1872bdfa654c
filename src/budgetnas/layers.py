"""Layers shared by the spaces and the searches (plain modules, no search machinery)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .depthwise import depthwise_conv2d


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1, padding: int = 0):
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
                         nn.BatchNorm2d(c_out))


def subsample(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Every `stride`-th pixel, stored densely in the input's memory format."""
    fmt = torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format
    return x[:, :, ::stride, ::stride].contiguous(memory_format=fmt)


class StridedPointwise(nn.Conv2d):
    """A 1x1 conv with a stride, computed as the stride-1 conv of every stride-th pixel.

    The same numbers (a 1x1 conv without padding reads only those pixels), and it avoids oneDNN's
    strided 1x1 backward-weights kernel for AVX2 CPUs (torch 2.14.1, oneDNN 3.12), which writes
    past its buffer with one thread on channels_last inputs of few channels: heap corruption,
    then "corrupted double-linked list" and SIGABRT (docs/reliability.md). Parameters and
    state-dict names are those of `nn.Conv2d`."""

    def __init__(self, c_in: int, c_out: int, stride: int, bias: bool = False):
        super().__init__(c_in, c_out, 1, stride=stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stride = self.stride[0]
        if stride == 1:
            return super().forward(x)
        return F.conv2d(subsample(x, stride), self.weight, self.bias)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two offset stride-2 1x1 convs (keeps all pixels in play)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        half = c_out // 2
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = StridedPointwise(c_in, half, 2)
        self.conv_2 = StridedPointwise(c_in, c_out - half, 2)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1)) if x.shape[-1] > 1 else x
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class DepthwiseConv2d(nn.Conv2d):
    """A bias-free depthwise `nn.Conv2d` whose training step uses the fast backward of
    `budgetnas.depthwise` (same numbers; evaluation, tracing and export see a plain conv)."""

    def __init__(self, channels: int, kernel: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1):
        super().__init__(channels, channels, kernel, stride, padding, dilation, groups=channels,
                         bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return depthwise_conv2d(x, self.weight, self.stride[0], self.padding[0], self.dilation[0])
        return super().forward(x)


class SepConv(nn.Sequential):
    """Two stacked depthwise-separable convs; the middle width `c_mid` is searchable in MGAS."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, kernel: int, stride: int):
        pad = kernel // 2
        super().__init__(
            nn.ReLU(inplace=False),
            DepthwiseConv2d(c_in, kernel, stride, pad),
            nn.Conv2d(c_in, c_mid, 1, bias=False),
            nn.BatchNorm2d(c_mid),
            nn.ReLU(inplace=False),
            DepthwiseConv2d(c_mid, kernel, 1, pad),
            nn.Conv2d(c_mid, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out))


class DilConv(nn.Sequential):
    """Dilated depthwise conv (dilation 2) followed by a pointwise conv."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dilation: int = 2):
        pad = dilation * (kernel - 1) // 2
        super().__init__(
            nn.ReLU(inplace=False),
            DepthwiseConv2d(c_in, kernel, stride, pad, dilation),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out))


class Pool(nn.Sequential):
    """3x3 average or max pool, optionally followed by BN (MGAS retraining adds BN to pools)."""

    def __init__(self, kind: str, channels: int, stride: int, bn: bool):
        pool = (nn.AvgPool2d(3, stride, 1, count_include_pad=False) if kind == "avg"
                else nn.MaxPool2d(3, stride, 1))
        super().__init__(pool, *([nn.BatchNorm2d(channels, affine=False)] if bn else []))


def drop_path(x: torch.Tensor, prob: float, training: bool) -> torch.Tensor:
    """Zero whole samples of a branch with probability `prob` (scaled to keep the expectation)."""
    if not training or prob <= 0.0:
        return x
    keep = 1.0 - prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x * mask / keep


class AuxiliaryHead(nn.Module):
    """Auxiliary classifier on an intermediate feature map (any resolution >= 1)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AdaptiveAvgPool2d(2),
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=False),
            nn.Conv2d(128, 256, 2, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(inplace=False))
        self.classifier = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))
