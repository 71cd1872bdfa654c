"""The elastic MBConv supernet: every network of the `mbconv` decision view is a part of it.

One `ElasticNetwork` holds, per stage, `max(depths)` layers at the largest kernel and expansion.
A subnet is chosen with `set_active(subnet)` and then run like any module:

- **elastic depth:** a stage of depth d runs its first d layers;
- **elastic expansion:** a layer of expansion e uses the first `c_in * e` middle channels of the
  expand, depthwise, SE and project weights (`sort_channels` keeps the most important first);
- **elastic kernel:** a k x k depthwise kernel is the centre of the next larger one passed
  through a learned k^2 x k^2 transform (one per layer and kernel size, shared by the channels,
  starting as the identity), so 3x3 = T3(centre(T5(centre(7x7)))).

Parameter names are those of `spaces.mbconv.MBConvNetwork` (`stages.1.0.expand.0.weight`, ...)
plus the transforms (`stages.1.0.kernel_transforms.5`), so a subnet's weights are slices of the
supernet's (`subnets.extract`).

BatchNorm: every subnet normalises with its own batch statistics in training, but only subnets
run while `track_bn` is on update the running statistics (the sandwich step turns it on for the
largest network only). A subnet's own statistics come from recalibration (`subnets.calibrate_bn`).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...spaces.mbconv import CONFIG_DEFAULTS, make_activation, make_first, make_head, make_stem, se_width


@dataclass(frozen=True)
class Choices:
    """The elastic dimensions (the `mbconv` decision view's values)."""

    depths: tuple[int, ...] = (2, 3, 4)
    kernels: tuple[int, ...] = (3, 5, 7)
    expansions: tuple[int, ...] = (3, 4, 6)


# A subnet: per stage, one (kernel, expansion) pair per active layer (the depth is the length).
Subnet = tuple[tuple[tuple[int, int], ...], ...]


def batch_norm(bn: nn.BatchNorm2d, x: torch.Tensor, track: bool) -> torch.Tensor:
    """`bn` on the first x.shape[1] channels. Running statistics are used in eval mode and updated
    in training only when `track` (momentum None = cumulative average, as `nn.BatchNorm2d`)."""
    c = x.shape[1]
    update = bn.training and track
    factor = 0.0
    if update:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    use_running = not bn.training or update
    return F.batch_norm(x, bn.running_mean[:c] if use_running else None,
                        bn.running_var[:c] if use_running else None, bn.weight[:c], bn.bias[:c],
                        bn.training, factor, bn.eps)


class ElasticMBConv(nn.Module):
    """An MBConv layer at the largest kernel and expansion that can run any smaller one."""

    def __init__(self, cfg: dict, c_in: int, c_out: int, stride: int, choices: Choices):
        super().__init__()
        self.c_in, self.c_out, self.stride = c_in, c_out, stride
        self.kernels = tuple(sorted(choices.kernels))
        k_max, mid = self.kernels[-1], c_in * max(choices.expansions)
        act = cfg["activation"]
        self.expand = nn.Sequential(nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid), make_activation(act))
        self.depthwise = nn.Sequential(nn.Conv2d(mid, mid, k_max, stride, k_max // 2, groups=mid, bias=False),
                                       nn.BatchNorm2d(mid), make_activation(act))
        self.se = None
        if cfg["se_ratio"] > 0:
            squeeze = se_width(c_in, cfg["se_ratio"])
            self.se = nn.Module()
            self.se.reduce = nn.Conv2d(mid, squeeze, 1)
            self.se.act = make_activation(act)
            self.se.expand = nn.Conv2d(squeeze, mid, 1)
        self.project = nn.Sequential(nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.kernel_transforms = nn.ParameterDict(
            {str(k): nn.Parameter(torch.eye(k * k)) for k in self.kernels[:-1]})
        self.residual = stride == 1 and c_in == c_out
        self.active = (k_max, max(choices.expansions))
        self.track_bn = True

    def kernel(self, k: int, mid: int) -> torch.Tensor:
        """The (mid, 1, k, k) depthwise kernel: centres of ever smaller kernels, each transformed.

        **Decision:** the transform is applied at every step down (7 -> 5 -> 3), as the smaller
        kernel is the centre of the *transformed* larger one, so a 3x3 shares what 5x5 learned."""
        weight = self.depthwise[0].weight[:mid]
        size = weight.shape[-1]
        for smaller in reversed(self.kernels):
            if smaller >= size:
                continue
            if smaller < k:
                break
            cut = (size - smaller) // 2
            centre = weight[:, :, cut:cut + smaller, cut:cut + smaller].reshape(mid, smaller * smaller)
            weight = (centre @ self.kernel_transforms[str(smaller)].t()).view(mid, 1, smaller, smaller)
            size = smaller
        return weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, e = self.active
        mid, track = self.c_in * e, self.track_bn
        conv, bn, act = self.expand
        h = act(batch_norm(bn, F.conv2d(x, conv.weight[:mid]), track))
        conv, bn, act = self.depthwise
        h = F.conv2d(h, self.kernel(k, mid), None, self.stride, k // 2, 1, mid)
        h = act(batch_norm(bn, h, track))
        if self.se is not None:
            s = F.adaptive_avg_pool2d(h, 1)
            s = self.se.act(F.conv2d(s, self.se.reduce.weight[:, :mid], self.se.reduce.bias))
            s = F.conv2d(s, self.se.expand.weight[:mid], self.se.expand.bias[:mid])
            h = h * torch.sigmoid(s)
        conv, bn = self.project
        h = batch_norm(bn, F.conv2d(h, conv.weight[:, :mid]), track)
        return x + h if self.residual else h

    @torch.no_grad()
    def sort_channels(self) -> torch.Tensor:
        """Reorder the middle channels by importance (L1 norm of their project weights, largest
        first), so the first `c_in * e` channels are the ones a smaller expansion keeps. Returns
        the permutation (the optimizer state is permuted with it)."""
        order = torch.argsort(self.project[0].weight.abs().sum(dim=(0, 2, 3)), descending=True, stable=True)
        for tensor, dim in self.channel_tensors():
            tensor.copy_(tensor.index_select(dim, order))
        return order

    def channel_tensors(self) -> list[tuple[torch.Tensor, int]]:
        """Every tensor indexed by the middle channels, with the dimension they lie along."""
        out = [(self.expand[0].weight, 0), (self.depthwise[0].weight, 0), (self.project[0].weight, 1)]
        for bn in (self.expand[1], self.depthwise[1]):
            out += [(bn.weight, 0), (bn.bias, 0), (bn.running_mean, 0), (bn.running_var, 0)]
        if self.se is not None:
            out += [(self.se.reduce.weight, 1), (self.se.expand.weight, 0), (self.se.expand.bias, 0)]
        return out


class ElasticNetwork(nn.Module):
    """The supernet of a template config and stage widths (named like `MBConvNetwork`)."""

    def __init__(self, config: dict, widths: list[int], choices: Choices = Choices()):
        super().__init__()
        cfg = {**CONFIG_DEFAULTS, **config}
        self.config, self.widths, self.choices = config, list(widths), choices
        self.stem = make_stem(cfg)
        self.first = make_first(cfg)
        c = cfg["first_channels"]
        self.stages = nn.ModuleList()
        for width, stride in zip(widths, cfg["strides"]):
            layers = []
            for j in range(max(choices.depths)):
                layers.append(ElasticMBConv(cfg, c, width, stride if j == 0 else 1, choices))
                c = width
            self.stages.append(nn.ModuleList(layers))
        self.head = make_head(cfg, c)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cfg["head_channels"], cfg["num_classes"])
        self.active: Subnet = self.largest()
        self.track_bn = True

    # ---------------------------------------------------------------- subnets
    def largest(self) -> Subnet:
        c = self.choices
        return tuple(((max(c.kernels), max(c.expansions)),) * max(c.depths) for _ in self.widths)

    def smallest(self) -> Subnet:
        c = self.choices
        return tuple(((min(c.kernels), min(c.expansions)),) * min(c.depths) for _ in self.widths)

    def set_active(self, subnet: Subnet, *, track_bn: bool = True) -> None:
        """Run `subnet` from now on; only with `track_bn` does training update running statistics."""
        self.active, self.track_bn = subnet, track_bn
        for stage, layers in zip(self.stages, subnet):
            for layer, choice in zip(stage, layers):
                layer.active, layer.track_bn = tuple(choice), track_bn

    def layers(self) -> list[ElasticMBConv]:
        return [layer for stage in self.stages for layer in stage]

    def fixed_bns(self) -> list[nn.BatchNorm2d]:
        """The BatchNorms outside the elastic layers (stem, MB1 layer, head)."""
        parts = (self.stem, self.first, self.head)
        return [m for part in parts for m in part.modules() if isinstance(m, nn.BatchNorm2d)]

    # ---------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with untracked(self.fixed_bns(), enabled=self.training and not self.track_bn):
            x = self.first(self.stem(x))
            for stage, layers in zip(self.stages, self.active):
                for layer in stage[:len(layers)]:
                    x = layer(x)
            x = self.head(x)
        return self.classifier(self.pool(x).flatten(1))


@contextlib.contextmanager
def untracked(bns: list[nn.BatchNorm2d], *, enabled: bool) -> Iterator[None]:
    """Within the block, plain BatchNorms in training normalise with batch statistics but leave
    their running statistics alone (with `track_running_stats` off, `nn.BatchNorm2d` passes no
    running buffers), as the elastic layers do when they do not track."""
    if not enabled:
        yield
        return
    saved = [bn.track_running_stats for bn in bns]
    for bn in bns:
        bn.track_running_stats = False
    try:
        yield
    finally:
        for bn, value in zip(bns, saved):
            bn.track_running_stats = value
