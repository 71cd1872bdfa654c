"""The DARTS supernet over the DARTS cell space with MGAS's 7 ops (no `none`), and the standard
derivation of cells from its architecture weights.

Every edge is a mixed op, the softmax of its row of architecture weights over the 7 ops; all
normal cells share `alphas_normal` and all reduction cells `alphas_reduce`, as in DARTS.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...layers import FactorizedReduce, ReLUConvBN
from ...spaces.darts import OPS, make_op
from ...spaces.darts_cells import INPUTS_PER_NODE, STEM_MULTIPLIER, STEPS, cell_edges, cell_widths, reduction_cells


class MixedOp(nn.Module):
    def __init__(self, channels: int, stride: int):
        super().__init__()
        # Pools get BN (affine-free) so their scale matches the conv ops', as in DARTS.
        self.ops = nn.ModuleList(make_op(name, channels, stride, None, True) for name in OPS)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self.ops))


class SearchCell(nn.Module):
    def __init__(self, c_pp: int, c_p: int, channels: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = FactorizedReduce(c_pp, channels) if reduction_prev else ReLUConvBN(c_pp, channels)
        self.preprocess1 = ReLUConvBN(c_p, channels)
        self.edges = cell_edges(STEPS)
        self.ops = nn.ModuleList(MixedOp(channels, 2 if reduction and src < 2 else 1)
                                 for src, _ in self.edges)
        self.out_channels = channels * STEPS

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        k = 0
        for dst in range(2, STEPS + 2):
            total = 0
            for src in range(dst):
                total = total + self.ops[k](states[src], weights[k])
                k += 1
            states.append(total)
        return torch.cat(states[2:], dim=1)


class DartsSupernet(nn.Module):
    def __init__(self, *, channels: int, layers: int, in_channels: int, num_classes: int):
        super().__init__()
        c_stem = STEM_MULTIPLIER * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_stem))
        reductions = set(reduction_cells(layers))
        self.cells = nn.ModuleList()
        c_pp, c_p, reduction_prev = c_stem, c_stem, False
        for i, width in enumerate(cell_widths(channels, layers)):
            cell = SearchCell(c_pp, c_p, width, i in reductions, reduction_prev)
            self.cells.append(cell)
            c_pp, c_p, reduction_prev = c_p, cell.out_channels, cell.reduction
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        n_edges = len(cell_edges(STEPS))
        # Small random start, as in DARTS (all ops nearly equal).
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(n_edges, len(OPS)))
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(n_edges, len(OPS)))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas_normal, self.alphas_reduce]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("alphas_")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normal = F.softmax(self.alphas_normal, dim=-1)
        reduce = F.softmax(self.alphas_reduce, dim=-1)
        if self.training:  # depthwise convs train several times faster channels_last on CPUs
            x = x.contiguous(memory_format=torch.channels_last)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, reduce if cell.reduction else normal)
        return self.classifier(self.global_pooling(s1).flatten(1))

    def genotype(self) -> list[list[dict]]:
        """Derived edges of every cell (each cell its own copy of the normal or reduce cell)."""
        return derive_network(self.alphas_normal, self.alphas_reduce, len(self.cells))


def derive_network(alphas_normal: torch.Tensor, alphas_reduce: torch.Tensor, layers: int) -> list[list[dict]]:
    """Standard DARTS derivation of the shared normal and reduce cells, copied into every cell."""
    normal = derive_cell(F.softmax(alphas_normal.detach().float(), dim=-1))
    reduce = derive_cell(F.softmax(alphas_reduce.detach().float(), dim=-1))
    reductions = set(reduction_cells(layers))
    return [[dict(e) for e in (reduce if i in reductions else normal)] for i in range(layers)]


def derive_cell(weights: torch.Tensor, steps: int = STEPS) -> list[dict]:
    """Standard DARTS derivation from one cell's op weights (edges x ops, softmax rows): every node
    keeps the 2 incoming edges whose strongest op is strongest, each with that op. Ties go to the
    earlier input and the earlier op (deterministic)."""
    edges = cell_edges(steps)
    weights = weights.detach().cpu()
    chosen = []
    for dst in range(2, steps + 2):
        rows = [(k, src) for k, (src, d) in enumerate(edges) if d == dst]
        strength = [(-float(weights[k].max()), src, k) for k, src in rows]
        for _, src, k in sorted(strength)[:INPUTS_PER_NODE]:
            chosen.append({"from": src, "to": dst, "op": OPS[int(weights[k].argmax())]})
    return sorted(chosen, key=lambda e: (e["to"], e["from"]))
