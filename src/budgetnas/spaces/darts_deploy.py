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
  not positive is zero after the ReLU and is dropped.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..folding import fold_batchnorm
from ..layers import DilConv, SepConv


def deploy_darts(model: nn.Module) -> nn.Module:
    model = fold_batchnorm(model)
    model.auxiliary_head = None
    model.aux_cell = -1
    for i, cell in enumerate(model.cells):
        model.cells[i] = DeployedCell(cell)
    return model


class DeployedCell(nn.Module):
    def __init__(self, cell: nn.Module):
        super().__init__()
        self.preprocess0, self.preprocess1 = cell.preprocess0, cell.preprocess1
        self.steps, self.concat = cell.steps, list(cell.concat)
        edges: dict[tuple[int, int], list[nn.Module]] = {}
        for op, src, dst in zip(cell.ops, cell.edge_from, cell.edge_to):
            edges.setdefault((src, dst), []).append(op)
        self.plan: list[tuple[int, int, str]] = []  # (source, node, "relu" | "raw") per module
        self.parts = nn.ModuleList()
        for (src, dst), ops in sorted(edges.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            convs = [op for op in ops if isinstance(op, (SepConv, DilConv))]
            for group in _groups(convs):
                self.parts.append(MergedConvs(group))
                self.plan.append((src, dst, "relu"))
            for op in ops:
                if not isinstance(op, (SepConv, DilConv)):
                    self.parts.append(op)
                    self.plan.append((src, dst, "raw"))
        self.relu_sources = sorted({src for src, _, kind in self.plan if kind == "relu"})

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        relu: dict[int, torch.Tensor] = {}
        sums: dict[int, torch.Tensor] = {}
        for part, (src, dst, kind) in zip(self.parts, self.plan):
            while len(states) <= src:  # every node's inputs are summed before it is read
                states.append(sums.pop(len(states)))
            if kind == "relu":
                if src not in relu:
                    relu[src] = F.relu(states[src])
                out = part(relu[src])
            else:
                out = part(states[src])
            sums[dst] = out if dst not in sums else sums[dst] + out
        while len(states) < self.steps + 2:
            states.append(sums.pop(len(states)))
        return torch.cat([states[i] for i in self.concat], dim=1)


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
