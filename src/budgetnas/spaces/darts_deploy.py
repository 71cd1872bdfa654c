"""The inference form of a DARTS-space network (`DartsSpace.deploy`): what can be merged, merged.

Searched cells keep several ops per edge; run one by one, each is a chain of small layers, and
at batch 1 the time goes to the number of layers, not to arithmetic. For inference (export,
latency) every cell is rebuilt, computing exactly the same function (up to float rounding):
- BatchNorms are folded into the convolutions before them (`folding.fold_batchnorm`);
- the ReLU in front of the conv ops is computed once per source node, not once per op;
- the separable convs of one edge become one chain: the first depthwise convs one grouped conv
  (kernels zero-padded to the largest), the pointwise convs one grouped conv, the second depthwise
  convs one grouped conv, and the last pointwise convs one conv over all of them, which is their
  sum; the dilated convs of an edge likewise;
- dead filters go: a middle channel whose pointwise weights are all zero and whose folded bias is
  not positive is zero after the ReLU and is dropped;
- a pool of one kind is computed once per source node, however many edges carry it, and the BN
  after it becomes a per-channel multiply-add into the node (its shifts summed once per node);
- the factorized reduces (stride-2 skips) reading one source are one 1x1 conv over the input and
  its one-pixel shift, each reduce a channel range of the output.
Searched CIFAR-10 networks keep ~120 pools and skips in 5 cells (docs/bench_quality.md); the last
two rules took one from 2.1x to 1.65x the batch-1 latency of a DARTS V2 network of its size.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..folding import fold_batchnorm
from ..layers import DilConv, FactorizedReduce, Pool, SepConv, subsample


def deploy_darts(model: nn.Module) -> nn.Module:
    model = fold_batchnorm(model)
    model.auxiliary_head = None
    model.aux_cell = -1
    for i, cell in enumerate(model.cells):
        model.cells[i] = DeployedCell(cell)
    return model


class DeployedCell(nn.Module):
    """A cell as a plan of terms summed into its nodes. A term reads a source node through a
    module computed once per source (the ReLU, each kind of pool, the merged factorized reduces)
    or through its own module (a merged conv chain, an identity)."""

    def __init__(self, cell: nn.Module):
        super().__init__()
        self.preprocess0, self.preprocess1 = cell.preprocess0, cell.preprocess1
        self.steps, self.concat = cell.steps, list(cell.concat)
        edges: dict[tuple[int, int], list[nn.Module]] = {}
        for op, src, dst in zip(cell.ops, cell.edge_from, cell.edge_to):
            edges.setdefault((src, dst), []).append(op)
        ordered = sorted(edges.items(), key=lambda kv: (kv[0][1], kv[0][0]))
        self.parts = nn.ModuleList()  # a term's own module (conv chains, identities)
        self.shared = nn.ModuleDict()  # per source: "pool_MaxPool2d_0", "reduce_1", ...
        reduces = _merge_reduces(ordered, self.shared)
        # (kind, source, node, module index or shared key, the pool's scale index or the reduce's
        # channel range); pool terms first in a node (the first one adds the node's summed shift)
        self.plan: list[tuple[str, int, int, int | str, int | tuple[int, int]]] = []
        pool_plan, other_plan, scales, shifts = [], [], [], {}
        for (src, dst), ops in ordered:
            for group in _groups([op for op in ops if isinstance(op, (SepConv, DilConv))]):
                self.parts.append(MergedConvs(group))
                other_plan.append(("relu", src, dst, len(self.parts) - 1, -1))
            for op in ops:
                if isinstance(op, Pool):
                    key = f"pool_{type(op[0]).__name__}_{src}"
                    self.shared[key] = self.shared[key] if key in self.shared else op[0]
                    scale, shift = _affine(op)
                    if shift is not None:
                        shifts[dst] = shifts.get(dst, 0) + shift
                    scales.append(scale)
                    pool_plan.append(("pool", src, dst, key, len(scales) - 1))
                elif isinstance(op, FactorizedReduce):
                    other_plan.append(("reduce", src, dst, f"reduce_{src}", reduces.pop(id(op))))
                elif not isinstance(op, (SepConv, DilConv)):
                    self.parts.append(op)
                    other_plan.append(("raw", src, dst, len(self.parts) - 1, -1))
        self.plan = sorted(pool_plan + other_plan, key=lambda t: (t[2], t[0] != "pool"))
        for i, scale in enumerate(scales):
            self.register_buffer(f"scale{i}", scale)
        for dst, shift in shifts.items():
            self.register_buffer(f"shift{dst}", shift)
        self.shifted_nodes = set(shifts)
        self.relu_sources = sorted({src for kind, src, *_ in self.plan if kind in ("relu", "reduce")})

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        once: dict[str, torch.Tensor] = {}  # what is computed once per source
        sums: dict[int, torch.Tensor] = {}
        for kind, src, dst, which, term in self.plan:
            while len(states) <= src:  # every node's inputs are summed before it is read
                states.append(sums.pop(len(states)))
            if kind == "pool":
                pooled = self._once(once, str(which), states[src])
                scale = getattr(self, f"scale{term}", None)
                base = sums.get(dst)
                if base is None and dst in self.shifted_nodes:
                    base = getattr(self, f"shift{dst}")
                if scale is None:
                    sums[dst] = pooled if base is None else base + pooled
                else:  # BN after the pool: one multiply-add into the node, its shift once per node
                    sums[dst] = pooled * scale if base is None else torch.addcmul(base, pooled, scale)
                continue
            if kind == "raw":
                out = self.parts[which](states[src])
            else:
                relu = self._once(once, f"relu_{src}", states[src])
                out = self.parts[which](relu) if kind == "relu" else \
                    self._once(once, str(which), relu)[:, term[0]:term[1]]
            sums[dst] = out if dst not in sums else sums[dst] + out
        while len(states) < self.steps + 2:
            states.append(sums.pop(len(states)))
        return torch.cat([states[i] for i in self.concat], dim=1)

    def _once(self, cache: dict[str, torch.Tensor], key: str, x: torch.Tensor) -> torch.Tensor:
        if key not in cache:
            cache[key] = F.relu(x) if key.startswith("relu_") else self.shared[key](x)
        return cache[key]


def _affine(pool: nn.Module) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The eval-mode BN after a pool as a per-channel (scale, shift); (None, None) without one."""
    if len(pool) < 2:
        return None, None
    bn = pool[1]
    scale = 1.0 / torch.sqrt(bn.running_var + bn.eps)
    shift = -bn.running_mean * scale
    if bn.weight is not None:
        scale, shift = scale * bn.weight, shift * bn.weight + bn.bias
    return scale.detach().view(1, -1, 1, 1).clone(), shift.detach().view(1, -1, 1, 1).clone()


def _merge_reduces(ordered: list, shared: nn.ModuleDict) -> dict[int, tuple[int, int]]:
    """The factorized reduces reading one source, as one `MergedReduces` in `shared`; returns
    each reduce's channel range in its output."""
    by_source: dict[int, list[nn.Module]] = {}
    for (src, _), ops in ordered:
        by_source.setdefault(src, []).extend(op for op in ops if isinstance(op, FactorizedReduce))
    ranges: dict[int, tuple[int, int]] = {}
    for src, reduces in by_source.items():
        if reduces:
            merged = MergedReduces(reduces)
            shared[f"reduce_{src}"] = merged
            ranges.update({id(op): r for op, r in zip(reduces, merged.ranges)})
    return ranges


class MergedReduces(nn.Module):
    """k factorized reduces of one (ReLU'd) input as one 1x1 conv over [x, x shifted by a pixel],
    both subsampled; reduce j is a channel range of the output (block-diagonal weight)."""

    def __init__(self, reduces: list[nn.Module]):
        super().__init__()
        rows, biases, self.ranges, start = [], [], [], 0
        for fr in reduces:
            for i, conv in enumerate((fr.conv_1, fr.conv_2)):
                w = conv.weight.detach().flatten(1)
                zeros = torch.zeros_like(w)
                rows.append(torch.cat([w, zeros] if i == 0 else [zeros, w], dim=1))
                biases.append(conv.bias.detach() if conv.bias is not None else w.new_zeros(len(w)))
            width = fr.conv_1.out_channels + fr.conv_2.out_channels
            self.ranges.append((start, start + width))
            start += width
        weight = torch.cat(rows)
        self.conv = _conv(weight.view(*weight.shape, 1, 1), torch.cat(biases))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1)) if x.shape[-1] > 1 else x
        return self.conv(torch.cat([subsample(x, 2), subsample(shifted, 2)], dim=1))


def _groups(convs: list[nn.Module]) -> list[list[nn.Module]]:
    """Conv ops of one edge that can share a chain: same kind, stride and dilation."""
    groups: dict[tuple, list[nn.Module]] = {}
    for op in convs:
        dw = op[1]
        groups.setdefault((type(op), dw.stride, dw.dilation), []).append(op)
    return list(groups.values())


def _pad_kernel(weight: torch.Tensor, size: int) -> torch.Tensor:
    pad = (size - weight.shape[-1]) // 2
    return F.pad(weight, (pad, pad, pad, pad))


class MergedConvs(nn.Module):
    """k separable (or dilated) convs reading the same ReLU'd input, as one chain summing them."""

    def __init__(self, ops: list[nn.Module]):
        super().__init__()
        with torch.no_grad():
            self._build(ops)

    def _build(self, ops: list[nn.Module]) -> None:
        dw1 = [op[1] for op in ops]
        c, k = dw1[0].weight.shape[0], len(ops)
        size = max(d.weight.shape[-1] for d in dw1)
        dilation, stride = dw1[0].dilation[0], dw1[0].stride[0]
        self.k, self.c = k, c
        # channel-major (c*k + j) as a grouped conv produces them
        w = torch.stack([_pad_kernel(d.weight, size) for d in dw1], dim=1).reshape(c * k, 1, size, size)
        self.dw1 = _conv(w, None, stride=stride, padding=dilation * (size - 1) // 2, dilation=dilation, groups=c)
        self.separable = isinstance(ops[0], SepConv)
        if not self.separable:  # dilated: dw -> pw(+BN): one pw over all ops sums them
            w = torch.cat([op[2].weight for op in ops], dim=1)  # inputs op-major
            self.pw = _conv(w, sum(op[2].bias for op in ops))
            return
        live = [_live_mid(op) for op in ops]
        mid = max(len(idx) for idx in live)
        like = {"dtype": w.dtype, "device": w.device}
        pw1_w = torch.zeros(k * mid, c, 1, 1, **like)
        pw1_b = torch.zeros(k * mid, **like)
        dw2_w = torch.zeros(k * mid, 1, size, size, **like)
        pw2_w = torch.zeros(ops[0][6].weight.shape[0], k * mid, 1, 1, **like)
        for j, (op, idx) in enumerate(zip(ops, live)):
            rows = slice(j * mid, j * mid + len(idx))
            pw1_w[rows], pw1_b[rows] = op[2].weight[idx], op[2].bias[idx]
            dw2_w[rows] = _pad_kernel(op[5].weight[idx], size)
            pw2_w[:, rows] = op[6].weight[:, idx]
        self.pw1 = _conv(pw1_w, pw1_b, groups=k)
        self.dw2 = _conv(dw2_w, None, padding=(size - 1) // 2, groups=k * mid)
        self.pw2 = _conv(pw2_w, sum(op[6].bias for op in ops))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dw1(x)
        n, _, height, width = h.shape
        h = h.view(n, self.c, self.k, height, width).transpose(1, 2).reshape(n, self.k * self.c, height, width)
        if not self.separable:
            return self.pw(h)
        return self.pw2(self.dw2(F.relu(self.pw1(h))))


def _live_mid(op: nn.Module) -> torch.Tensor:
    """Middle channels that can be non-zero after the ReLU."""
    pw1 = op[2]
    alive = (pw1.weight.flatten(1) != 0).any(1) | (pw1.bias > 0)
    idx = alive.nonzero().flatten()
    return idx if len(idx) else torch.zeros(1, dtype=torch.long)


def _conv(weight: torch.Tensor, bias: torch.Tensor | None, *, stride: int = 1, padding: int = 0,
          dilation: int = 1, groups: int = 1) -> nn.Conv2d:
    out_c, in_per_group, kh, _ = weight.shape
    conv = nn.Conv2d(in_per_group * groups, out_c, kh, stride, padding, dilation, groups, bias=bias is not None)
    conv.weight = nn.Parameter(copy.deepcopy(weight.detach()), requires_grad=False)
    if bias is not None:
        conv.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
    return conv.eval()
