"""Rating every NB201 cell of a block supernet against the teacher, with exact BN recalibration.

Recalibration (decision): every BN on a candidate's path gets the mean and (unbiased) variance of
its input computed on R fixed recalibration images of the search-training split; the candidate is
then scored on S held-out images (never the test split). R and S travel together as one tensor
[R; S], so one forward pass recalibrates (statistics from the first R rows) and scores (the last
S rows). Statistics are over all R images at once, so they do not depend on a batch size.

Scores: rel-L1 = mean|y_hat - y| / std(y) and MSE = mean (y_hat - y)^2 over the S images, y being
the (optionally normalised) teacher stage output.

Two evaluators give the same numbers:
- `rate_direct`: one full forward per candidate (any number of cells per stage);
- `rate_tree` (one cell per stage): the cell's nodes are computed in a nested loop over the ops
  of the edges they depend on (node 1 on edge 0-1; node 2 on edges 0-1, 0-2, 1-2; the output on
  all six), so every convolution runs once per distinct input instead of once per candidate:
  690 op applications instead of ~46,000, and each candidate costs a few additions. Because a BN's
  input is fixed by the upstream ops in the loop, recalibration stays exact.
Cells whose effective cell (dead edges set to `none`) is another cell copy its scores.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ....spaces.nb201 import EDGES
from .block import (CONV1, CONV3, N_OPS, NONE, POOL, SKIP, NB201BlockSupernet, all_cells,
                          cell_index, effective_cell)


def recal_bn(z: torch.Tensor, bn: nn.BatchNorm2d, n_recal: int) -> torch.Tensor:
    """BN of `z` with statistics from its first `n_recal` rows (eval-mode formula)."""
    head = z[:n_recal]
    mean = head.mean((0, 2, 3))
    var = head.var((0, 2, 3), unbiased=True)
    scale = bn.weight / torch.sqrt(var + bn.eps)
    return z * scale.view(1, -1, 1, 1) + (bn.bias - mean * scale).view(1, -1, 1, 1)


def apply_op(edge: nn.ModuleList, op: int, v: torch.Tensor, n_recal: int) -> torch.Tensor | None:
    """Edge op `op` on node value `v`; None means 'adds nothing' (the none op)."""
    if op == NONE:
        return None
    if op == SKIP:
        return v
    if op == POOL:
        return edge[POOL](v)
    relu_conv_bn = edge[op]
    return recal_bn(relu_conv_bn[1](F.relu(v)), relu_conv_bn[2], n_recal)


def _sum(parts: list[torch.Tensor | None]) -> torch.Tensor | None:
    total = None
    for p in parts:
        if p is not None:
            total = p if total is None else total + p
    return total


def _finish(block: NB201BlockSupernet, z: torch.Tensor | None, like: torch.Tensor,
            n_recal: int) -> torch.Tensor:
    """Cell output (None = zeros) -> block output through the adapter (1x1 conv already applied to
    the parts when `block.adapter` is set, see `_adapted`)."""
    if z is None:
        channels = block.adapter[0].out_channels if block.adapter is not None else block.width
        z = torch.zeros(like.shape[0], channels, *like.shape[2:], dtype=like.dtype)
    return recal_bn(z, block.adapter[1], n_recal) if block.adapter is not None else z


def _zero_safe(edge: nn.ModuleList, op: int, v: torch.Tensor | None, like: torch.Tensor,
               n_recal: int) -> torch.Tensor | None:
    """`apply_op` where a zero node is given as None: convs then see explicit zeros."""
    if v is None:
        if op not in (CONV1, CONV3):
            return None  # none, skip and pooling of zeros add nothing
        v = torch.zeros_like(like)  # a conv's BN turns zeros into its bias
    return apply_op(edge, op, v, n_recal)


@torch.no_grad()
def forward_recal(block: NB201BlockSupernet, x: torch.Tensor, cell: tuple[int, ...],
                  n_recal: int, *, adapter: bool = True) -> torch.Tensor:
    """The block's output for `cell` on [R; S] rows with every path BN recalibrated on R
    (`adapter=False`: the cell output, before the adapter)."""
    h = block.prefix(x)
    for position in block.cells:
        nodes: list[torch.Tensor | None] = [h]
        for target in (1, 2, 3):
            nodes.append(_sum([_zero_safe(position.edges[k], cell[k], nodes[s], h, n_recal)
                               for k, (s, t) in enumerate(EDGES) if t == target]))
        h = nodes[3] if nodes[3] is not None else torch.zeros_like(h)
    if block.adapter is not None and adapter:
        return recal_bn(block.adapter[0](h), block.adapter[1], n_recal)
    return h


def _scores(y_hat: torch.Tensor, y: torch.Tensor, y_std: float) -> tuple[float, float]:
    diff = y_hat - y
    return float(diff.abs().mean()) / max(y_std, 1e-12), float(diff.pow(2).mean())


@torch.no_grad()
def rate_direct(block: NB201BlockSupernet, x: torch.Tensor, y: torch.Tensor, n_recal: int,
                cells: list[tuple[int, ...]] | None = None) -> dict[tuple[int, ...], tuple[float, float]]:
    """{cell: (rel-L1, MSE)} by a full forward per distinct effective cell (default: all)."""
    block.eval()
    y_std = float(y.std())
    done: dict[tuple[int, ...], tuple[float, float]] = {}
    out = {}
    for cell in cells if cells is not None else all_cells():
        eff = effective_cell(cell)
        if eff not in done:
            done[eff] = _scores(forward_recal(block, x, eff, n_recal)[n_recal:], y, y_std)
        out[cell] = done[eff]
    return out


@torch.no_grad()
def rate_tree(block: NB201BlockSupernet, x: torch.Tensor, y: torch.Tensor, n_recal: int,
              progress=None) -> torch.Tensor:
    """(15625, 2) tensor of (rel-L1, MSE) in `all_cells()` order; one cell per stage only."""
    if len(block.cells) != 1:
        raise ValueError("rate_tree needs one cell per stage; use rate_direct")
    block.eval()
    edges = block.cells[0].edges
    h = block.prefix(x)
    y_std = float(y.std())
    result = torch.full((N_OPS ** 6, 2), float("nan"), dtype=torch.float64)
    canonical = [cell_index(effective_cell(c)) for c in all_cells()]
    from_input = {k: [apply_op(edges[k], o, h, n_recal) for o in range(N_OPS)] for k in (0, 1, 3)}
    out03 = [_adapted(block, t) for t in from_input[3]]
    for a in range(N_OPS):
        n1 = from_input[0][a]
        to2 = [_zero_safe(edges[2], o, n1, h, n_recal) for o in range(N_OPS)]
        out13 = [_adapted(block, _zero_safe(edges[4], o, n1, h, n_recal)) for o in range(N_OPS)]
        for c in range(N_OPS):
            for d in range(N_OPS):
                _rate_context(block, result, canonical, (a, c, d), _sum([from_input[1][c], to2[d]]),
                              out03, out13, h, y, y_std, n_recal)
        if progress is not None:
            progress(a + 1, N_OPS)
    for i, j in enumerate(canonical):
        if i != j:
            result[i] = result[j]
    return result


def _rate_context(block, result, canonical, context, n2, out03, out13, h, y, y_std, n_recal) -> None:
    """Score the 125 cells sharing ops (a, c, d) on edges 0-1, 0-2, 1-2."""
    a, c, d = context
    edges = block.cells[0].edges
    base = ((a * N_OPS + c) * N_OPS + d) * N_OPS ** 3
    wanted = [(g, e, f) for g in range(N_OPS) for e in range(N_OPS) for f in range(N_OPS)
              if canonical[base + (g * N_OPS + e) * N_OPS + f] == base + (g * N_OPS + e) * N_OPS + f]
    out23 = {}
    for f in {f for _, _, f in wanted}:
        out23[f] = _adapted(block, _zero_safe(edges[5], f, n2, h, n_recal))
    for g, e, f in wanted:
        z = _finish(block, _sum([out03[g], out13[e], out23[f]]), h, n_recal)
        result[base + (g * N_OPS + e) * N_OPS + f] = torch.tensor(_scores(z[n_recal:], y, y_std))


def _adapted(block: NB201BlockSupernet, part: torch.Tensor | None) -> torch.Tensor | None:
    """The adapter's 1x1 conv applied to one summand of the cell output (it is linear, so the
    sum of converted parts equals the converted sum)."""
    if part is None or block.adapter is None:
        return part
    return block.adapter[0](part)

