"""Ratings with a per-candidate least-squares adapter (one cell per stage), all 15,625 cells.

Why: the trained adapter (1x1 conv + BN to the teacher's width) is shared by every path, but the
cell output of different cells lives in different feature spaces (an identity on edge 0-3 passes
the input's features, a convolution there its own), so one adapter cannot suit them all and the
rating then mostly measures how close a cell's features happen to be to what the shared adapter
expects. Here every cell gets its own best linear map: fitted by ridge least squares on the R
recalibration rows (teacher's stage output ~ W z + b, z = the cell output), then scored on the S
held-out rows. The score is the held-out MSE of that map: how much of the teacher's stage output
the cell's features can explain linearly.

Exact and cheap with the same decomposition as `moments`: z = P_g + Q_e + U_f, so the
channel-by-channel Gram matrices of z and its cross products with the target are sums of blocks
computed once per context; each cell then costs one small (width x width) solve, batched.
"""
from __future__ import annotations

import torch

from .block import N_OPS, NB201BlockSupernet, all_cells, cell_index, effective_cell
from .moments import E, F, G, _sum2
from .rating import _zero_safe, apply_op

RIDGE = 1e-4  # relative to the mean diagonal of the Gram matrix


class _Parts:
    """Five parts (one per op; zeros for `none`), R-centred, as (5, C, n) for R and S rows."""

    def __init__(self, parts: list, n_recal: int, shape: tuple):
        rows, c = shape[0], shape[1]
        cols = torch.zeros(N_OPS, c, rows, shape[2] * shape[3])
        for o, part in enumerate(parts):
            if part is not None:
                cols[o] = part.reshape(rows, c, -1).transpose(0, 1)
        cols -= cols[:, :, :n_recal].mean((2, 3), keepdim=True)
        self.r = cols[:, :, :n_recal].reshape(N_OPS * c, -1)
        self.s = cols[:, :, n_recal:].reshape(N_OPS * c, -1)
        self.c = c

    def gram(self, other: "_Parts", side: str) -> torch.Tensor:
        a, b = (self.r, other.r) if side == "r" else (self.s, other.s)
        return (a @ b.T).double().reshape(N_OPS, self.c, N_OPS, self.c).permute(0, 2, 1, 3)  # (5, 5, C, C)

    def cross(self, y: torch.Tensor, side: str) -> torch.Tensor:
        a = self.r if side == "r" else self.s
        return (a @ y.T).double().reshape(N_OPS, self.c, -1)  # (5, C, T)


def _candidate_errors(grams: dict, cross: dict, y_sq_s: float, c: int) -> torch.Tensor:
    """Held-out squared error of the 125 cells of one context with their own ridge fits."""
    out = {}
    for side in ("r", "s"):
        g = grams[side]
        zz = (g["pp"][G, G] + g["qq"][E, E] + g["uu"][F, F] + g["pq"][G, E] + g["pq"][G, E].transpose(1, 2)
              + g["pu"][G, F] + g["pu"][G, F].transpose(1, 2) + g["qu"][E, F] + g["qu"][E, F].transpose(1, 2))
        zy = cross[side]["p"][G] + cross[side]["q"][E] + cross[side]["u"][F]  # (125, C, T)
        out[side] = (zz, zy)
    zz_r, zy_r = out["r"]
    scale = zz_r.diagonal(dim1=1, dim2=2).mean(1).clamp_min(1e-12)[:, None, None]
    eye = torch.eye(c, dtype=torch.float64)
    w = torch.linalg.solve(zz_r + RIDGE * scale * eye, zy_r)  # (125, C, T): y ~ w^T z
    zz_s, zy_s = out["s"]
    fit = (w * (zz_s @ w)).sum((1, 2))  # tr(w^T zz w)
    return y_sq_s - 2 * (w * zy_s).sum((1, 2)) + fit


@torch.no_grad()
def rate_linear(block: NB201BlockSupernet, x: torch.Tensor, y_all: torch.Tensor, n_recal: int) -> torch.Tensor:
    """(15625,) held-out MSE of every cell with its own least-squares adapter.

    `y_all`: teacher targets of all R + S rows (the fit uses the first R)."""
    if len(block.cells) != 1:
        raise ValueError("rate_linear needs one cell per stage")
    block.eval()
    edges = block.cells[0].edges
    h = block.prefix(x)
    t = y_all.shape[1]
    y_cols = y_all.transpose(0, 1).reshape(t, y_all.shape[0], -1)
    y_cols = y_cols - y_cols[:, :n_recal].mean((1, 2), keepdim=True)
    y = {"r": y_cols[:, :n_recal].reshape(t, -1), "s": y_cols[:, n_recal:].reshape(t, -1)}
    y_sq_s = float(y["s"].double().pow(2).sum())
    shape = (x.shape[0], block.width, *h.shape[2:])
    group = lambda parts: _Parts(parts, n_recal, shape)  # noqa: E731
    from_input = {k: [apply_op(edges[k], o, h, n_recal) for o in range(N_OPS)] for k in (0, 1)}
    p = group([apply_op(edges[3], o, h, n_recal) for o in range(N_OPS)])
    sides = ("r", "s")
    pp = {s: p.gram(p, s) for s in sides}
    cp = {s: p.cross(y[s], s) for s in sides}
    result = torch.full((N_OPS ** 6,), float("nan"), dtype=torch.float64)
    for a in range(N_OPS):
        n1 = from_input[0][a]
        to2 = [_zero_safe(edges[2], o, n1, h, n_recal) for o in range(N_OPS)]
        q = group([_zero_safe(edges[4], o, n1, h, n_recal) for o in range(N_OPS)])
        qq, pq = {s: q.gram(q, s) for s in sides}, {s: p.gram(q, s) for s in sides}
        cq = {s: q.cross(y[s], s) for s in sides}
        for c in range(N_OPS):
            for d in range(N_OPS):
                u = group([_zero_safe(edges[5], o, _sum2(from_input[1][c], to2[d]), h, n_recal)
                           for o in range(N_OPS)])
                grams = {s: {"pp": pp[s], "qq": qq[s], "pq": pq[s], "uu": u.gram(u, s),
                             "pu": p.gram(u, s), "qu": q.gram(u, s)} for s in sides}
                cross = {s: {"p": cp[s], "q": cq[s], "u": u.cross(y[s], s)} for s in sides}
                base = ((a * N_OPS + c) * N_OPS + d) * N_OPS ** 3
                result[base:base + N_OPS ** 3] = _candidate_errors(grams, cross, y_sq_s, block.width) / y["s"].numel()
    canonical = [cell_index(effective_cell(cc)) for cc in all_cells()]
    for i, j in enumerate(canonical):
        if i != j:
            result[i] = result[j]
    return result


def _centred_rows(t: torch.Tensor, n_recal: int) -> torch.Tensor:
    """(rows*H*W, C) float64, centred by the mean of the first n_recal rows."""
    cols = t.double().permute(0, 2, 3, 1).reshape(t.shape[0], -1, t.shape[1])
    cols = cols - cols[:n_recal].mean((0, 1))
    return cols.reshape(-1, t.shape[1])


@torch.no_grad()
def lstsq_error(z: torch.Tensor, y_all: torch.Tensor, n_recal: int) -> float:
    """Held-out MSE of the ridge least-squares map from one cell's output `z` (R + S rows) to the
    target (fitted on the R rows); the direct counterpart of `rate_linear` for any depth."""
    zc, yc = _centred_rows(z, n_recal), _centred_rows(y_all, n_recal)
    n = n_recal * z.shape[2] * z.shape[3]
    gram = zc[:n].T @ zc[:n]
    ridge = RIDGE * max(float(gram.diagonal().mean()), 1e-12)
    w = torch.linalg.solve(gram + ridge * torch.eye(z.shape[1], dtype=torch.float64), zc[:n].T @ yc[:n])
    return float((yc[n:] - zc[n:] @ w).pow(2).mean())
