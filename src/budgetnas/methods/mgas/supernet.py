"""The multi-granularity supernet over the DARTS cell space (mgas.md §2-§3).

Every cell has its own architecture tensors. Three gate levels:
- op:     alpha[e, o] (init 0), threshold t_op[e, o] (init 0), committed `alive_op`;
- filter: beta per output channel of each BN that follows a pointwise conv inside sep/dil convs
          and of the two preprocess outputs; one threshold per op (t_fil) and per preprocess (t_pre);
          committed `alive_*` vectors;
- weight: |W| against one threshold per op (t_w), committed boolean `mask` per conv weight.

Shapes live only in tensors (convs and BNs run functionally, depthwise groups follow the weight),
so physical pruning can slice tensors in place and a checkpoint of a pruned supernet can be loaded
by resizing tensors to the saved shapes.
"""
from __future__ import annotations


import torch
import torch.nn as nn
import torch.nn.functional as F

from ...spaces.darts import OPS
from .gates import magnitude_mask, score_gate

CONV_OPS = {"sep_conv_3x3": ("sep", 3, 1), "sep_conv_5x5": ("sep", 5, 1),
            "dil_conv_3x3": ("dil", 3, 2), "dil_conv_5x5": ("dil", 5, 2)}


class Conv(nn.Module):
    """A bias-free conv whose weight may carry a committed mask and a magnitude gate."""

    def __init__(self, c_in: int, c_out: int, kernel: int, *, stride: int = 1, dilation: int = 1,
                 depthwise: bool = False, maskable: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c_out, 1 if depthwise else c_in, kernel, kernel))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        self.stride, self.dilation, self.depthwise = stride, dilation, depthwise
        self.padding = dilation * (kernel - 1) // 2
        if maskable:
            self.register_buffer("mask", torch.ones_like(self.weight, dtype=torch.bool))
        else:
            self.mask = None

    def effective_weight(self, t_w: torch.Tensor | None) -> torch.Tensor:
        w = self.weight
        if self.mask is not None:
            w = w * self.mask
            if t_w is not None:
                w = w * magnitude_mask(self.weight, t_w)
        return w

    def forward(self, x: torch.Tensor, t_w: torch.Tensor | None = None) -> torch.Tensor:
        w = self.effective_weight(t_w)
        groups = w.shape[0] if self.depthwise else 1
        return F.conv2d(x, w, None, self.stride, self.padding, self.dilation, groups)


class BN(nn.Module):
    def __init__(self, channels: int, affine: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine else None
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training, 0.1, 1e-5)


class FactorizedReduce(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_1 = Conv(c_in, c_out // 2, 1, stride=2)
        self.conv_2 = Conv(c_in, c_out - c_out // 2, 1, stride=2)
        self.bn = BN(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1)) if x.shape[-1] > 1 else x
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class PreConv(nn.Module):
    """ReLU - conv1x1 - BN: a cell's input preprocessing."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = Conv(c_in, c_out, 1)
        self.bn = BN(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(F.relu(x)))


class GatedConvOp(nn.Module):
    """sep_conv / dil_conv with filter gates on its BN outputs and magnitude-masked weights."""

    def __init__(self, name: str, channels: int, stride: int):
        super().__init__()
        kind, k, dil = CONV_OPS[name]
        self.kind = kind
        self.dw1 = Conv(channels, channels, k, stride=stride, dilation=dil, depthwise=True, maskable=True)
        self.pw1 = Conv(channels, channels, 1, maskable=True)
        if kind == "sep":
            self.bn_mid = BN(channels)
            self.dw2 = Conv(channels, channels, k, depthwise=True, maskable=True)
            self.pw2 = Conv(channels, channels, 1, maskable=True)
            self.beta_mid = nn.Parameter(torch.zeros(channels))
            self.register_buffer("alive_mid", torch.ones(channels, dtype=torch.bool))
        self.bn_out = BN(channels)
        self.beta_out = nn.Parameter(torch.zeros(channels))
        self.register_buffer("alive_out", torch.ones(channels, dtype=torch.bool))
        self.t_fil = nn.Parameter(torch.zeros(()))
        self.t_w = nn.Parameter(torch.zeros(()))

    def convs(self) -> list[Conv]:
        return [self.dw1, self.pw1, self.dw2, self.pw2] if self.kind == "sep" else [self.dw1, self.pw1]

    def filter_gate(self, which: str) -> torch.Tensor:
        beta, alive = getattr(self, f"beta_{which}"), getattr(self, f"alive_{which}")
        return score_gate(beta, self.t_fil) * alive

    def forward(self, x: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        t_w = None if frozen else self.t_w
        h = self.pw1(self.dw1(F.relu(x), t_w), t_w)
        if self.kind == "sep":
            h = self.bn_mid(h) * self._gate("mid", frozen).view(1, -1, 1, 1)
            h = self.pw2(self.dw2(F.relu(h), t_w), t_w)
        return self.bn_out(h) * self._gate("out", frozen).view(1, -1, 1, 1)

    def _gate(self, which: str, frozen: bool) -> torch.Tensor:
        if frozen:  # masks frozen: committed state only, gates open
            alive = getattr(self, f"alive_{which}")
            return torch.sigmoid(getattr(self, f"beta_{which}")) * alive
        return self.filter_gate(which)


def make_search_op(name: str, channels: int, stride: int) -> nn.Module:
    if name in CONV_OPS:
        return GatedConvOp(name, channels, stride)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels)
    pool = nn.AvgPool2d(3, stride, 1, count_include_pad=False) if name == "avg_pool_3x3" \
        else nn.MaxPool2d(3, stride, 1)
    return pool


class SuperCell(nn.Module):
    def __init__(self, c_pp: int, c_p: int, channels: int, reduction: bool, reduction_prev: bool,
                 steps: int = 4):
        super().__init__()
        self.reduction, self.reduction_prev, self.steps = reduction, reduction_prev, steps
        self.pre0 = FactorizedReduce(c_pp, channels) if reduction_prev else PreConv(c_pp, channels)
        self.pre1 = PreConv(c_p, channels)
        self.beta_pre0 = nn.Parameter(torch.zeros(channels))
        self.beta_pre1 = nn.Parameter(torch.zeros(channels))
        self.t_pre = nn.Parameter(torch.zeros(2))
        self.register_buffer("alive_pre0", torch.ones(channels, dtype=torch.bool))
        self.register_buffer("alive_pre1", torch.ones(channels, dtype=torch.bool))
        self.edges = [(i, j + 2) for j in range(steps) for i in range(j + 2)]
        self.ops = nn.ModuleList(
            nn.ModuleList(make_search_op(name, channels, 2 if reduction and src < 2 else 1)
                          for name in OPS) for src, _ in self.edges)
        self.alpha = nn.Parameter(torch.zeros(len(self.edges), len(OPS)))
        self.t_op = nn.Parameter(torch.zeros(len(self.edges), len(OPS)))
        self.register_buffer("alive_op", torch.ones(len(self.edges), len(OPS), dtype=torch.bool))

    @property
    def channels(self) -> int:
        return self.beta_pre1.shape[0]

    def op_gates(self, frozen: bool = False) -> torch.Tensor:
        if frozen:
            return torch.sigmoid(self.alpha) * self.alive_op
        return score_gate(self.alpha, self.t_op) * self.alive_op

    def pre_gate(self, k: int, frozen: bool = False) -> torch.Tensor:
        beta, alive = getattr(self, f"beta_pre{k}"), getattr(self, f"alive_pre{k}")
        g = torch.sigmoid(beta) if frozen else score_gate(beta, self.t_pre[k])
        return (g * alive).view(1, -1, 1, 1)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        gates = self.op_gates(frozen)
        alive = self.alive_op.tolist()
        states = [self.pre0(s0) * self.pre_gate(0, frozen), self.pre1(s1) * self.pre_gate(1, frozen)]
        for node in range(2, self.steps + 2):
            total = 0
            for e, (src, dst) in enumerate(self.edges):
                if dst != node:
                    continue
                for o, op in enumerate(self.ops[e]):
                    if not alive[e][o]:
                        continue
                    out = op(states[src], frozen) if isinstance(op, GatedConvOp) else op(states[src])
                    total = total + gates[e, o] * out
            states.append(total)
        return torch.cat(states[2:], dim=1)


class StageHead(nn.Module):
    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(F.adaptive_avg_pool2d(F.relu(x), 1).flatten(1))


def stage_bounds(layers: int, stages: int) -> list[tuple[int, int]]:
    """Cell ranges of the stages; multi-stage search splits at the reduction cells."""
    if stages == 1:
        return [(0, layers)]
    cuts = [0, layers // 3, 2 * layers // 3, layers]
    return [(cuts[k], cuts[k + 1]) for k in range(3)]


class MGASSupernet(nn.Module):
    def __init__(self, *, channels: int, layers: int, in_channels: int, num_classes: int,
                 stem_multiplier: int = 3, steps: int = 4):
        super().__init__()
        self.layers, self.steps, self.num_classes = layers, steps, num_classes
        self.in_channels = in_channels
        c_stem = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_stem))
        self.reduction_cells = sorted({layers // 3, 2 * layers // 3} - {0}) if layers >= 3 else []
        c_pp, c_p, c, red_prev = c_stem, c_stem, channels, False
        self.cells = nn.ModuleList()
        self.stage_widths = []
        for i in range(layers):
            red = i in self.reduction_cells
            if red:
                c *= 2
            self.cells.append(SuperCell(c_pp, c_p, c, red, red_prev, steps))
            self.stage_widths.append(c)
            c_pp, c_p, red_prev = c_p, c * steps, red
        bounds = stage_bounds(layers, 3)
        self.stage_heads = nn.ModuleList(
            StageHead(self.cells[end - 1].channels * steps, num_classes) for _, end in bounds[:2])
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor, *, upto: int | None = None, head: int | None = None,
                frozen: bool = False) -> torch.Tensor:
        """Run cells [0, upto) and the stage head `head` (None = the real classifier)."""
        upto = self.layers if upto is None else upto
        s0 = s1 = self.stem(x)
        for cell in self.cells[:upto]:
            s0, s1 = s1, cell(s0, s1, frozen)
        if head is not None:
            return self.stage_heads[head](s1)
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))


ARCH_GROUPS = {"alpha": ("alpha",), "beta": ("beta_mid", "beta_out", "beta_pre0", "beta_pre1"),
               "t_op": ("t_op",), "t_fil": ("t_fil", "t_pre"), "t_w": ("t_w",)}


def arch_group(name: str) -> str | None:
    leaf = name.rsplit(".", 1)[-1]
    for group, leaves in ARCH_GROUPS.items():
        if leaf in leaves:
            return group
    return None


def reset_thresholds(net: MGASSupernet) -> None:
    with torch.no_grad():
        for name, p in net.named_parameters():
            if arch_group(name) in ("t_op", "t_fil", "t_w"):
                p.zero_()


