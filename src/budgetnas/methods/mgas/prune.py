"""Committing masks, physical filter pruning and regrowth (docs/mgas.md §3, §6)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .derive import CellPlan
from .supernet import (BN, Conv, FactorizedReduce, GatedConvOp, MGASSupernet, PreConv, SuperCell,
                       stage_bounds)


# ---------------------------------------------------------------- committing the dynamic masks
def snapshot(net: MGASSupernet) -> dict[str, torch.Tensor]:
    """Every committed mask (boolean buffers), to try a commit and undo it."""
    return {n: b.clone() for n, b in net.named_buffers() if b.dtype == torch.bool}


def restore(net: MGASSupernet, saved: dict[str, torch.Tensor]) -> None:
    buffers = dict(net.named_buffers())
    for name, value in saved.items():
        buffers[name].copy_(value)


def _take(candidates: torch.Tensor, margin: torch.Tensor, fraction: float) -> torch.Tensor:
    """The `fraction` share of the candidate positions with the lowest margins."""
    n = int(candidates.sum())
    k = math.ceil(fraction * n - 1e-9)
    if k <= 0:
        return torch.zeros_like(candidates)
    if k >= n:
        return candidates.clone()
    scores = torch.where(candidates, margin, torch.full_like(margin, math.inf))
    chosen = torch.zeros(candidates.numel(), dtype=torch.bool, device=candidates.device)
    chosen[torch.topk(scores.flatten(), k, largest=False).indices] = True
    return chosen.view_as(candidates)


@torch.no_grad()
def commit(net: MGASSupernet, *, cells: range, fraction: float = 1.0,
           force: str | None = None) -> int:
    """Commit closed gates of `cells` into the stored masks; returns how many ops died.

    force=None: units whose gate is closed now, at every level; `fraction` < 1 commits only the
    share of them nearest to pruning (the finer steps that land on the target).
    force="ops" / "weights": only that level, any live unit, lowest margin first (score minus
    threshold): how the search lands on the target when the learned gates have not got there
    in the epochs allowed. Ops go first (whole low-score ops hurt least), weights if needed."""
    def pick(alive: torch.Tensor, margin: torch.Tensor, level: str) -> torch.Tensor:
        if force is None:
            return _take(alive & (margin <= 0), margin, fraction)
        if force == level:
            return _take(alive.clone(), margin, fraction)
        return torch.zeros_like(alive)

    died = 0
    for c in cells:
        cell: SuperCell = net.cells[c]
        for k in (0, 1):
            beta, alive = getattr(cell, f"beta_pre{k}"), getattr(cell, f"alive_pre{k}")
            alive &= ~pick(alive, torch.sigmoid(beta) - cell.t_pre[k], "filters")
            if not alive.any():
                alive[torch.argmax(beta)] = True
        for e, row in enumerate(cell.ops):
            for o, op in enumerate(row):
                if isinstance(op, GatedConvOp) and bool(cell.alive_op[e, o]):
                    for which in op.levels():
                        beta, alive = getattr(op, f"beta_{which}"), getattr(op, f"alive_{which}")
                        alive &= ~pick(alive, torch.sigmoid(beta) - cell.t_fil[e, o], "filters")
                    for conv in op.convs():
                        conv.mask &= ~pick(conv.mask, conv.weight.abs() - cell.t_w[e, o], "weights")
        dead = pick(cell.alive_op, torch.sigmoid(cell.alpha) - cell.t_op, "ops") | _empty_ops(cell)
        before = int(cell.alive_op.sum())
        cell.alive_op &= ~dead
        protect_nodes(cell)
        died += before - int(cell.alive_op.sum())
    return died


def _empty_ops(cell: SuperCell) -> torch.Tensor:
    """Conv ops with no live output filter or a conv without live weights are dead."""
    dead = torch.zeros_like(cell.alive_op)
    for e, row in enumerate(cell.ops):
        for o, op in enumerate(row):
            if isinstance(op, GatedConvOp):
                empty = not op.alive_out.any() or any(not c.mask.any() for c in op.convs())
                if op.kind == "sep":
                    empty = empty or not op.alive_mid.any()
                dead[e, o] = empty
    return dead


def protect_nodes(cell: SuperCell) -> None:
    """Decision: every node keeps at least one op — the one with the largest sigmoid(alpha)
    among its ops (deterministic), revived with its masks intact if it was just pruned."""
    for node in range(2, cell.steps + 2):
        rows = [e for e, (_, dst) in enumerate(cell.edges) if dst == node]
        if cell.alive_op[rows].any():
            continue
        scores = cell.alpha.detach()[rows]
        flat = int(torch.argmax(scores))
        e, o = rows[flat // scores.shape[1]], flat % scores.shape[1]
        cell.alive_op[e, o] = True
        op = cell.ops[e][o]
        if isinstance(op, GatedConvOp):  # a revived conv op needs something alive inside
            for which in ("mid", "out") if op.kind == "sep" else ("out",):
                alive = getattr(op, f"alive_{which}")
                if not alive.any():
                    alive.fill_(True)
            for conv in op.convs():
                if not conv.mask.any():
                    conv.mask.fill_(True)


# ---------------------------------------------------------------- physical pruning
class Slicer:
    """Replaces parameters by sliced copies and rebuilds the optimizers around them.

    A new `nn.Parameter` per sliced tensor (not a `.data` swap, which leaves autograd's cached
    shape behind); each optimizer gets the new parameter in place of the old one, with the
    surviving slice of its momentum (**Decision**, docs/mgas.md §6)."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]):
        self.optimizers = optimizers

    def param(self, module: nn.Module, name: str, index) -> None:
        old = getattr(module, name)
        new = nn.Parameter(old.detach()[index].clone(), requires_grad=old.requires_grad)
        setattr(module, name, new)
        for opt in self.optimizers:
            for group in opt.param_groups:
                group["params"] = [new if q is old else q for q in group["params"]]
            state = opt.state.pop(old, None)
            if state:
                opt.state[new] = {k: (v[index].clone() if isinstance(v, torch.Tensor) and v.shape == old.shape
                                      else v) for k, v in state.items()}

    def buffer(self, module: nn.Module, name: str, index) -> None:
        setattr(module, name, getattr(module, name)[index].clone())

    def conv(self, conv: Conv, out_idx=None, in_idx=None) -> None:
        idx = (slice(None) if out_idx is None else out_idx,
               slice(None) if in_idx is None or conv.depthwise else in_idx)
        self.param(conv, "weight", _index2(idx))
        if conv.mask is not None:
            conv.mask = conv.mask[_index2(idx)].clone()

    def bn(self, bn: BN, idx) -> None:
        for name in ("weight", "bias"):
            if getattr(bn, name) is not None:
                self.param(bn, name, idx)
        self.buffer(bn, "running_mean", idx)
        self.buffer(bn, "running_var", idx)


def _index2(idx):
    out_idx, in_idx = idx
    if isinstance(in_idx, slice):
        return out_idx
    if isinstance(out_idx, slice):
        return (slice(None), in_idx)
    return (out_idx.view(-1, 1), in_idx.view(1, -1))


@torch.no_grad()
def physical_prune(net: MGASSupernet, plans: list[CellPlan],
                   optimizers: list[torch.optim.Optimizer]) -> None:
    """Rebuild every cell at its planned width by slicing weights, masks, full BN state and
    the optimizers' momentum (the surviving slices keep training where they were)."""
    s = Slicer(optimizers)
    outputs: list[torch.Tensor | None] = []  # kept output channels of each cell (concat order)
    for c, (cell, plan) in enumerate(zip(net.cells, plans)):
        old_width = cell.channels
        in0 = outputs[c - 2] if c >= 2 else None
        in1 = outputs[c - 1] if c >= 1 else None
        keep = plan.keep
        _slice_pre(s, cell.pre0, keep, in0)
        _slice_pre(s, cell.pre1, keep, in1)
        for k in (0, 1):
            s.param(cell, f"beta_pre{k}", keep)
            s.buffer(cell, f"alive_pre{k}", keep)
        for e, row in enumerate(cell.ops):
            for o, op in enumerate(row):
                if isinstance(op, GatedConvOp):
                    _slice_op(s, op, keep, plan.mids.get((e, o)))
                elif isinstance(op, FactorizedReduce):
                    _slice_fr(s, op, keep, keep)
        outputs.append(torch.cat([keep + n * old_width for n in range(cell.steps)]))
    # The heads read the (now narrower) outputs of their cells: slice their input columns.
    for k, (_, end) in enumerate(stage_bounds(net.layers, 3)[:2]):
        s.param(net.stage_heads[k].classifier, "weight", (slice(None), outputs[max(end - 1, 0)]))
    s.param(net.classifier, "weight", (slice(None), outputs[-1]))


def _slice_pre(s: Slicer, pre: nn.Module, keep: torch.Tensor, in_idx) -> None:
    if isinstance(pre, PreConv):
        s.conv(pre.conv, keep, in_idx)
        s.bn(pre.bn, keep)
    else:
        _slice_fr(s, pre, keep, in_idx)


def _slice_fr(s: Slicer, fr: FactorizedReduce, keep: torch.Tensor, in_idx) -> None:
    half = fr.conv_1.weight.shape[0]
    s.conv(fr.conv_1, keep[keep < half], in_idx)
    s.conv(fr.conv_2, keep[keep >= half] - half, in_idx)
    s.bn(fr.bn, keep)


def _slice_op(s: Slicer, op: GatedConvOp, keep: torch.Tensor, mid: torch.Tensor | None) -> None:
    s.conv(op.dw1, keep)
    if op.kind == "sep":
        if mid is None:  # a dead op (no plan entry): keep its middle channels as they are
            mid = torch.arange(op.alive_mid.numel(), device=op.alive_mid.device)
        s.conv(op.pw1, mid, keep)
        s.bn(op.bn_mid, mid)
        s.param(op, "beta_mid", mid)
        s.buffer(op, "alive_mid", mid)
        s.conv(op.dw2, mid)
        s.conv(op.pw2, keep, mid)
    else:
        s.conv(op.pw1, keep, keep)
    s.bn(op.bn_out, keep)
    s.param(op, "beta_out", keep)
    s.buffer(op, "alive_out", keep)


# ---------------------------------------------------------------- regrow
@torch.no_grad()
def regrow(net: MGASSupernet, pruned: list[tuple[int, int, int]], *, ratio: float,
           alpha_momentum: dict[int, torch.Tensor], generator: torch.Generator,
           optimizers: list[torch.optim.Optimizer]) -> list[tuple[int, int, int]]:
    """Bring back `ratio` of the ops pruned in this stage, sampled by importance
    (layer importance x op-type importance, each a 50/50 mix of normalised mean |momentum of
    alpha| and mean sigmoid(alpha) over live ops). Regrown ops start afresh: new weights,
    beta = 0, full masks, their old alpha."""
    candidates = [p for p in pruned if not bool(net.cells[p[0]].alive_op[p[1], p[2]])]
    n = int(round(ratio * len(candidates)))
    if n == 0:
        return []
    cells = sorted({c for c, _, _ in candidates})
    layer_mom, layer_sig, op_mom, op_sig = {}, {}, {}, {}
    for c in cells:
        cell = net.cells[c]
        live = cell.alive_op
        mom = alpha_momentum.get(c, torch.zeros_like(cell.alpha)).abs()
        sig = torch.sigmoid(cell.alpha)
        layer_mom[c] = float(mom[live].mean()) if live.any() else 0.0
        layer_sig[c] = float(sig[live].mean()) if live.any() else 0.0
        counts = live.sum(0).clamp_min(1)
        op_mom[c] = (mom * live).sum(0) / counts
        op_sig[c] = (sig * live).sum(0) / counts
    layer_imp = _mix(torch.tensor([layer_mom[c] for c in cells]), torch.tensor([layer_sig[c] for c in cells]))
    weights = []
    for c, e, o in candidates:
        op_imp = _mix(op_mom[c], op_sig[c])
        weights.append(float(layer_imp[cells.index(c)] * op_imp[o]) + 1e-12)
    picks = torch.multinomial(torch.tensor(weights, dtype=torch.float64), n, replacement=False,
                              generator=generator).tolist()
    grown = [candidates[i] for i in sorted(picks)]
    for c, e, o in grown:
        regrow_op(net, c, e, o, optimizers)
    return grown


@torch.no_grad()
def regrow_op(net: MGASSupernet, c: int, e: int, o: int, optimizers: list[torch.optim.Optimizer]) -> None:
    """Bring op (cell c, edge e, op o) back: fresh weights, beta 0, full masks, its old alpha."""
    net.cells[c].alive_op[e, o] = True
    _refresh(net.cells[c].ops[e][o], optimizers)


def _mix(momentum: torch.Tensor, sigmoid: torch.Tensor) -> torch.Tensor:
    def norm(t: torch.Tensor) -> torch.Tensor:
        t = t.double()
        return t / t.sum() if t.sum() > 0 else torch.full_like(t, 1.0 / max(1, t.numel()))
    return 0.5 * norm(momentum) + 0.5 * norm(sigmoid)


def _refresh(op: nn.Module, optimizers: list[torch.optim.Optimizer]) -> None:
    for module in op.modules():
        if isinstance(module, Conv):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.mask is not None:
                module.mask.fill_(True)
        elif isinstance(module, BN):
            module.weight.fill_(1.0)
            module.bias.zero_()
            module.running_mean.zero_()
            module.running_var.fill_(1.0)
    if isinstance(op, GatedConvOp):
        op.beta_out.zero_()
        op.alive_out.fill_(True)
        if op.kind == "sep":
            op.beta_mid.zero_()
            op.alive_mid.fill_(True)
    for p in op.parameters():
        for opt in optimizers:
            state = opt.state.get(p)
            if state and state.get("momentum_buffer") is not None:
                state["momentum_buffer"].zero_()
