"""The multi-granularity supernet over the DARTS cell space (docs/mgas.md §2-§3).

Every cell has its own architecture tensors, all registered (state_dict, `.to()`, DDP sync):
- op level:     `alpha` [E, O] (init 0), threshold `t_op` [E, O] (init 0), committed `alive_op`;
- filter level: `beta_mid` / `beta_out` per output channel of each BN after a pointwise conv in
                sep/dil convs, `beta_pre0/1` on the preprocess outputs; thresholds `t_fil` [E, O]
                (one per op, shared by its channel vectors) and `t_pre` [2]; committed `alive_*`;
- weight level: |W| of every dw/pw conv inside sep/dil convs against `t_w` [E, O] (one per op,
                shared by its convs); committed boolean `mask` buffers.
**Decision:** the per-op thresholds t_fil and t_w live in one [E, O] tensor per cell (entries of
parameter-free ops unused) so the regularizer is a few tensor ops per cell, not a Python loop.

Forward modes: "search" applies the dynamic gates (STE); "fixed" applies only the committed masks
with open gates (warm-up, frozen-mask epochs, evaluation of the committed network) and is cheaper.

Cost-saving choices (identical results):
- filter gates are folded into the BN affine parameters (gate * BN(x) = BN with gamma*gate,
  beta*gate), so they cost no activation-sized tensor;
- the ReLU in front of the conv ops and the parameter-free pools are computed once per source
  node and shared by every edge leaving it (same input, same stride);
- the op gates of ops that end in a BN (sep/dil convs, factorized-reduce skips) are folded into
  that BN too, so only identities and pools are multiplied by their gate; committed-dead ops are
  skipped; a node's sum is accumulated in place;
- activations are channels_last and depthwise convs take the fast backward of
  `budgetnas.depthwise` (both several times faster on CPUs, same numbers).
Shapes live only in tensors (convs and BNs run functionally; depthwise groups follow the weight),
so physical pruning slices tensors in place, and a checkpoint of a pruned supernet loads into a
fresh one after resizing tensors to the saved shapes.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...depthwise import depthwise_conv2d
from ...layers import subsample
from ...spaces.darts import OPS
from .gates import gated_weight, score_gate

CONV_OPS = {"sep_conv_3x3": ("sep", 3, 1), "sep_conv_5x5": ("sep", 5, 1),
            "dil_conv_3x3": ("dil", 3, 2), "dil_conv_5x5": ("dil", 5, 2)}
POOL_OPS = ("avg_pool_3x3", "max_pool_3x3")
IS_CONV = torch.tensor([name in CONV_OPS for name in OPS])


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

    def forward(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """`weight`: the already gated weight (search mode); None = the committed mask only."""
        w = self.weight
        if weight is not None:
            w = weight
        elif self.mask is not None:
            w = w * self.mask
        if self.depthwise:
            return depthwise_conv2d(x, w, self.stride, self.padding, self.dilation)
        if w.shape[-1] == 1 and self.stride > 1:  # see layers.StridedPointwise
            return F.conv2d(subsample(x, self.stride), w)
        return F.conv2d(x, w, None, self.stride, self.padding, self.dilation)


class BN(nn.Module):
    """BatchNorm whose output may be scaled per channel by a gate (folded into gamma and beta)."""

    def __init__(self, channels: int, affine: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine else None
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.momentum = 0.1  # as nn.BatchNorm2d's; recalibration (train/bn_stats.py) changes it

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        w, b = self.weight, self.bias
        if gate is not None:
            w, b = w * gate, b * gate
        return F.batch_norm(x, self.running_mean, self.running_var, w, b, self.training, self.momentum, 1e-5)


class FactorizedReduce(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_1 = Conv(c_in, c_out // 2, 1, stride=2)
        self.conv_2 = Conv(c_in, c_out - c_out // 2, 1, stride=2)
        self.bn = BN(c_out)

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        x = F.relu(x)
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1)) if x.shape[-1] > 1 else x
        # physical pruning may leave one half without channels (all kept channels in the other)
        halves = [conv(inp) for conv, inp in ((self.conv_1, x), (self.conv_2, shifted)) if conv.weight.shape[0]]
        return self.bn(torch.cat(halves, dim=1), gate)


class PreConv(nn.Module):
    """ReLU - conv1x1 - BN: a cell's input preprocessing."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = Conv(c_in, c_out, 1)
        self.bn = BN(c_out)

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        return self.bn(self.conv(F.relu(x)), gate)


class GatedConvOp(nn.Module):
    """sep_conv / dil_conv with filter gates on its BN outputs and magnitude-gated weights.

    `forward` takes the already-ReLU'd input (the cell shares one ReLU per source node)."""

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

    def convs(self) -> list[Conv]:
        return [self.dw1, self.pw1, self.dw2, self.pw2] if self.kind == "sep" else [self.dw1, self.pw1]

    def levels(self) -> tuple[str, ...]:
        return ("mid", "out") if self.kind == "sep" else ("out",)

    def gate(self, which: str, t_fil: torch.Tensor | None) -> torch.Tensor:
        beta, alive = getattr(self, f"beta_{which}"), getattr(self, f"alive_{which}")
        if t_fil is None:  # fixed mode: committed state, gates open
            return torch.sigmoid(beta) * alive
        return score_gate(beta, t_fil, alive)

    def gated_weights(self, t_w: torch.Tensor) -> list[torch.Tensor]:
        """Every conv's weight through the magnitude gate, in one gate call: the convs of an op
        share their threshold, so their weights are gated as one flat tensor (a quarter of the
        small autograd nodes a per-conv gate would cost)."""
        convs = self.convs()
        flat = torch.cat([c.weight.reshape(-1) for c in convs])
        mask = torch.cat([c.mask.reshape(-1) for c in convs])
        pieces = gated_weight(flat, t_w, mask).split([c.weight.numel() for c in convs])
        return [p.view_as(c.weight) for p, c in zip(pieces, convs)]

    def forward(self, x_relu: torch.Tensor, t_fil: torch.Tensor | None = None,
                t_w: torch.Tensor | None = None, op_gate: torch.Tensor | None = None) -> torch.Tensor:
        """`op_gate`: the op's own gate, folded with the filter gates into the last BN (the
        output comes out already weighted, with no activation-sized multiply)."""
        w = self.gated_weights(t_w) if t_w is not None else [None] * 4
        h = self.pw1(self.dw1(x_relu, w[0]), w[1])
        if self.kind == "sep":
            h = F.relu(self.bn_mid(h, self.gate("mid", t_fil)))
            h = self.pw2(self.dw2(h, w[2]), w[3])
        gate = self.gate("out", t_fil)
        return self.bn_out(h, gate if op_gate is None else gate * op_gate)


def make_search_op(name: str, channels: int, stride: int) -> nn.Module:
    if name in CONV_OPS:
        return GatedConvOp(name, channels, stride)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels)
    return nn.Identity()  # pools: parameter-free, computed once per source node by the cell


def _pool(name: str, x: torch.Tensor, stride: int) -> torch.Tensor:
    if name == "avg_pool_3x3":
        return F.avg_pool2d(x, 3, stride, 1, count_include_pad=False)
    return F.max_pool2d(x, 3, stride, 1)


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
        n_e, n_o = len(self.edges), len(OPS)
        self.ops = nn.ModuleList(
            nn.ModuleList(make_search_op(name, channels, self.stride(src)) for name in OPS)
            for src, _ in self.edges)
        self.alpha = nn.Parameter(torch.zeros(n_e, n_o))
        self.t_op = nn.Parameter(torch.zeros(n_e, n_o))
        self.t_fil = nn.Parameter(torch.zeros(n_e, n_o))
        self.t_w = nn.Parameter(torch.zeros(n_e, n_o))
        self.register_buffer("alive_op", torch.ones(n_e, n_o, dtype=torch.bool))
        self.register_buffer("edge_node", torch.tensor([dst - 2 for _, dst in self.edges]),
                             persistent=False)
        self.register_buffer("is_conv", IS_CONV.clone(), persistent=False)

    def stride(self, src: int) -> int:
        return 2 if self.reduction and src < 2 else 1

    @property
    def channels(self) -> int:
        return self.beta_pre1.shape[0]

    def op_gates(self, search: bool) -> torch.Tensor:
        if search:
            return score_gate(self.alpha, self.t_op, self.alive_op)
        return torch.sigmoid(self.alpha) * self.alive_op

    def pre_gate(self, k: int, search: bool) -> torch.Tensor:
        beta, alive = getattr(self, f"beta_pre{k}"), getattr(self, f"alive_pre{k}")
        return score_gate(beta, self.t_pre[k], alive) if search else torch.sigmoid(beta) * alive

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, search: bool = False) -> torch.Tensor:
        gates = self.op_gates(search).flatten().unbind()
        alive = self.alive_op.tolist()
        n_o = len(OPS)
        states = [self.pre0(s0, self.pre_gate(0, search)), self.pre1(s1, self.pre_gate(1, search))]
        relu_cache: dict[int, torch.Tensor] = {}
        pool_cache: dict[tuple[int, str], torch.Tensor] = {}
        for node in range(2, self.steps + 2):
            node_sum = _NodeSum()
            for e, (src, dst) in enumerate(self.edges):
                if dst != node:
                    continue
                for o, name in enumerate(OPS):
                    if not alive[e][o]:
                        continue
                    x, g = states[src], gates[e * n_o + o]
                    if name in CONV_OPS:
                        if src not in relu_cache:
                            relu_cache[src] = F.relu(x)
                        t_fil = self.t_fil[e, o] if search else None
                        t_w = self.t_w[e, o] if search else None
                        node_sum.add(self.ops[e][o](relu_cache[src], t_fil, t_w, g))
                    elif name in POOL_OPS:
                        key = (src, name)
                        if key not in pool_cache:
                            pool_cache[key] = _pool(name, x, self.stride(src))
                        node_sum.add(pool_cache[key], g)
                    elif isinstance(self.ops[e][o], FactorizedReduce):
                        node_sum.add(self.ops[e][o](x, g))
                    else:
                        node_sum.add(self.ops[e][o](x), g)
            total = node_sum.total
            if total is None:  # cannot happen once every node keeps an op; guard for safety
                total = torch.zeros_like(states[1][:, :, ::self.stride(0), ::self.stride(0)])
            states.append(_DenseGrad.apply(total))
        return torch.cat(states[2:], dim=1)


class _DenseGrad(torch.autograd.Function):
    """Identity whose backward hands on a densely stored gradient. A node's gradient arrives as a
    channel slice of the cell output's gradient (the backward of `cat`), a strided view in
    channels_last; the ops feeding the node take it straight into BN backward (their gate is
    folded into the BN), which is several times slower on strided tensors than one copy."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        if grad.dim() == 4 and not grad.is_contiguous() and not grad.is_contiguous(
                memory_format=torch.channels_last):
            return grad.contiguous(memory_format=torch.channels_last)
        return grad


class _NodeSum:
    """sum_k g_k * out_k over a node's incoming ops. Ops with a BN at the end come in already
    weighted (their gate folded into the BN); the others (identity, pools) are weighted here.
    The running sum is updated in place once it is a tensor of its own (never a shared input
    such as a cached pool or an identity's source)."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.owned = False

    def add(self, out: torch.Tensor, gate: torch.Tensor | None = None) -> None:
        if self.total is None:
            self.total, self.owned = (out, False) if gate is None else (out * gate, True)
        elif not self.owned:
            self.total = self.total + out if gate is None else torch.addcmul(self.total, out, gate)
            self.owned = True
        elif gate is None:
            self.total.add_(out)
        else:
            self.total.addcmul_(out, gate)


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
        # Heads of stages 1 and 2 (stage 3 uses the classifier); named so cost counts skip them.
        self.stage_heads = nn.ModuleList(
            StageHead(self.cells[max(end - 1, 0)].channels * steps, num_classes) for _, end in bounds[:2])
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor, *, upto: int | None = None, head: int | None = None,
                search: bool = False) -> torch.Tensor:
        """Run cells [0, upto) and the stage head `head` (None = the real classifier)."""
        upto = self.layers if upto is None else upto
        # channels_last: the depthwise convs that dominate a step are several times faster in it
        # on CPUs (oneDNN), and no slower on GPUs.
        s0 = s1 = self.stem(x.contiguous(memory_format=torch.channels_last))
        for cell in self.cells[:upto]:
            s0, s1 = s1, cell(s0, s1, search)
        if head is not None:
            return self.stage_heads[head](s1)
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))


ARCH_GROUPS = {"alpha": ("alpha",), "beta": ("beta_mid", "beta_out", "beta_pre0", "beta_pre1"),
               "t_op": ("t_op",), "t_fil": ("t_fil", "t_pre"), "t_w": ("t_w",)}


def arch_group(name: str) -> str | None:
    """Which architecture optimizer group a parameter belongs to (None = a weight)."""
    leaf = name.rsplit(".", 1)[-1]
    for group, leaves in ARCH_GROUPS.items():
        if leaf in leaves:
            return group
    return None


def reset_thresholds(net: MGASSupernet) -> None:
    """Stage start: every threshold back to 0, so every non-pruned unit is active again."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if arch_group(name) in ("t_op", "t_fil", "t_w"):
                p.zero_()
