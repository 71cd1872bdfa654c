"""Fast exact MSE ratings of all 15,625 cells from per-channel moments (one cell per stage).

The cell output is a sum of three parts, one per edge into the output node:
P_g = op g on edge 0-3 (reads the input), Q_e = op e on edge 1-3 (reads node 1, fixed by the op
on edge 0-1), U_f = op f on edge 2-3 (reads node 2, fixed by the ops on edges 0-1, 0-2, 1-2).
With the adapter's 1x1 conv applied to each part (it is linear) and its BN recalibrated on the R
rows, the block output of cell (a, c, d, g, e, f) is, per channel k, y_hat = s_k z~ + beta_k, where
z~ = P~ + Q~ + U~ are the parts centred by their own R-mean and s_k = gamma_k / sqrt(var_R(z~)+eps).
Its squared error over the S rows and var_R only need per-channel Gram matrices of the parts
(and their sums and inner products with the target on S). The P-P, P-Q and Q-Q blocks are
computed once per op on edge 0-1; each context (a, c, d) adds one batched product of its five
U parts with all fifteen parts, and its 125 cells are then scored with a few gathers. Exact up to
float rounding (centring first keeps the variance well conditioned); no adapter: y_hat = z.

Only the MSE has this closed form; the relative L1 needs every candidate's tensor (`rate_tree`).
"""
from __future__ import annotations

import torch

from .block import N_OPS, NB201BlockSupernet, all_cells, cell_index, effective_cell
from .rating import _adapted, _zero_safe, apply_op


class _Group:
    """Five parts (one per op, zeros for `none`) split into R and S columns: (T, 5, n)."""

    def __init__(self, parts: list[torch.Tensor | None], n_recal: int, shape: tuple, centre: bool):
        rows, t = shape[0], shape[1]
        cols = torch.empty(t, N_OPS, rows, shape[2] * shape[3])
        for o, part in enumerate(parts):
            if part is None:
                cols[:, o].zero_()
            else:
                cols[:, o] = part.reshape(rows, t, -1).transpose(0, 1)
        if centre:
            cols -= cols[:, :, :n_recal].mean((2, 3), keepdim=True)
        self.r = cols[:, :, :n_recal].reshape(t, N_OPS, -1)
        self.s = cols[:, :, n_recal:].reshape(t, N_OPS, -1)
        self.sum_s = self.s.sum(2).double()  # (T, 5); torch sums pairwise, float32 is accurate here

    def gram(self, other: "_Group", side: str) -> torch.Tensor:
        a, b = (self.r, other.r) if side == "r" else (self.s, other.s)
        return torch.bmm(a, b.transpose(1, 2)).double()  # (T, 5, 5)

    def dot(self, y_cols: torch.Tensor) -> torch.Tensor:
        return torch.bmm(self.s, y_cols.unsqueeze(2)).squeeze(2).double()  # (T, 5)


_GRID = torch.tensor([(g, e, f) for g in range(N_OPS) for e in range(N_OPS) for f in range(N_OPS)])
G, E, F = _GRID[:, 0], _GRID[:, 1], _GRID[:, 2]


def _quad(pp, qq, uu, pq, pu, qu) -> torch.Tensor:
    """sum over the three chosen parts of all pairwise inner products -> (T, 125)."""
    return (pp[:, G, G] + qq[:, E, E] + uu[:, F, F]
            + 2 * (pq[:, G, E] + pu[:, G, F] + qu[:, E, F]))


def _context_errors(p, q, u, pp, qq, pq, y_cols, y_sum, y_sq, bn, n_r: int) -> torch.Tensor:
    """Total squared error over S of the 125 cells of one context."""
    grams = {side: (u.gram(u, side), p.gram(u, side), q.gram(u, side)) for side in ("s",) + (("r",) if bn else ())}
    uu, pu, qu = grams["s"]
    sq_s = _quad(pp["s"], qq["s"], uu, pq["s"], pu, qu)
    zy = p.dot(y_cols)[:, G] + q.dot(y_cols)[:, E] + u.dot(y_cols)[:, F]
    if bn is None:
        return (sq_s - 2 * zy + y_sq[:, None]).sum(0)
    uu_r, pu_r, qu_r = grams["r"]
    var = (_quad(pp["r"], qq["r"], uu_r, pq["r"], pu_r, qu_r) / (n_r - 1)).clamp_min(0.0)
    sum_s = p.sum_s[:, G] + q.sum_s[:, E] + u.sum_s[:, F]
    s = bn.weight.double()[:, None] / torch.sqrt(var + bn.eps)
    beta = bn.bias.double()[:, None]
    n_s = y_cols.shape[1]
    err = (s ** 2 * sq_s + 2 * s * beta * sum_s - 2 * s * zy + n_s * beta ** 2
           - 2 * beta * y_sum[:, None] + y_sq[:, None])
    return err.sum(0)


@torch.no_grad()
def rate_moments(block: NB201BlockSupernet, x: torch.Tensor, y: torch.Tensor, n_recal: int,
                 progress=None) -> torch.Tensor:
    """(15625,) MSE over the S rows of every cell, in `all_cells()` order."""
    if len(block.cells) != 1:
        raise ValueError("rate_moments needs one cell per stage")
    block.eval()
    edges = block.cells[0].edges
    h = block.prefix(x)
    y_cols = y.transpose(0, 1).reshape(y.shape[1], -1)
    y_sum, y_sq = y_cols.double().sum(1), (y_cols.double() ** 2).sum(1)
    bn = block.adapter[1] if block.adapter is not None else None
    shape = (x.shape[0], y.shape[1], *y.shape[2:])
    group = lambda parts: _Group([_adapted(block, t) for t in parts], n_recal, shape, bn is not None)  # noqa: E731
    sides = ("s", "r") if bn is not None else ("s",)
    from_input = {k: [apply_op(edges[k], o, h, n_recal) for o in range(N_OPS)] for k in (0, 1)}
    p = group([apply_op(edges[3], o, h, n_recal) for o in range(N_OPS)])
    pp = {side: p.gram(p, side) for side in sides}
    result = torch.full((N_OPS ** 6,), float("nan"), dtype=torch.float64)
    for a in range(N_OPS):
        n1 = from_input[0][a]
        to2 = [_zero_safe(edges[2], o, n1, h, n_recal) for o in range(N_OPS)]
        q = group([_zero_safe(edges[4], o, n1, h, n_recal) for o in range(N_OPS)])
        qq = {side: q.gram(q, side) for side in sides}
        pq = {side: p.gram(q, side) for side in sides}
        for c in range(N_OPS):
            for d in range(N_OPS):
                n2 = _sum2(from_input[1][c], to2[d])
                u = group([_zero_safe(edges[5], o, n2, h, n_recal) for o in range(N_OPS)])
                base = ((a * N_OPS + c) * N_OPS + d) * N_OPS ** 3
                err = _context_errors(p, q, u, pp, qq, pq, y_cols, y_sum, y_sq, bn, n_recal * shape[2] * shape[3])
                result[base:base + N_OPS ** 3] = err / y_cols.numel()
        if progress is not None:
            progress(a + 1, N_OPS)
    canonical = [cell_index(effective_cell(c)) for c in all_cells()]
    for i, j in enumerate(canonical):  # dead edges: the exact same function as the canonical cell
        if i != j:
            result[i] = result[j]
    return result


def _sum2(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    if a is None:
        return b
    return a if b is None else a + b
