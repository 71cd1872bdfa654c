"""The loss terms of the learned discretisation (docs/mgas.md §4): R_size and R_thr, and the optimizers
of weights and architecture tensors."""
from __future__ import annotations

import torch

from .settings import SearchSettings
from .supernet import GatedConvOp, MGASSupernet, arch_group


def make_optimizers(net: MGASSupernet, s: SearchSettings) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    lrs = {"alpha": s.lr_alpha, "beta": s.lr_beta, "t_op": s.lr_threshold,
           "t_fil": s.lr_threshold, "t_w": s.lr_weight_threshold}
    groups: dict[str, list] = {k: [] for k in lrs}
    weights = []
    for name, p in net.named_parameters():
        group = arch_group(name)
        (groups[group] if group else weights).append(p)
    # foreach: one multi-tensor update instead of a Python loop over the supernet's thousands of
    # small tensors (the default on CPUs is the loop)
    w_opt = torch.optim.SGD(weights, lr=s.lr_weights, momentum=0.9, weight_decay=s.weight_decay,
                            foreach=True)
    a_opt = torch.optim.SGD([{"params": ps, "lr": lrs[k], "name": k} for k, ps in groups.items()],
                            lr=1.0, momentum=0.9, weight_decay=0.0, foreach=True)
    return w_opt, a_opt


def regularizers(net: MGASSupernet, cells: range, mu: float) -> tuple[torch.Tensor, torch.Tensor]:
    """R_size and R_thr of docs/mgas.md §4, a few tensor ops per cell.

    R_size = sum_nodes sum_{live o} log(1 + n_act * s_o / sum_{o' on node} s_o') * (1 + mu * cost_o),
    with n_act counted per node (**Decision**, the original reused one node's count).
    R_thr  = sum over live ops of exp(-t_op) (+ exp(-t_fil) + exp(-t_w) for conv ops), plus the
    preprocess filter thresholds exp(-t_pre) (**Decision**: they are thresholds of live units too).
    """
    r_size = r_thr = None
    for c in cells:
        cell = net.cells[c]
        alive = cell.alive_op.to(cell.alpha.dtype)
        s = torch.sigmoid(cell.alpha) * alive
        node = cell.edge_node
        denom = s.new_zeros(cell.steps).index_add_(0, node, s.sum(1))
        n_act = s.new_zeros(cell.steps).index_add_(0, node, alive.sum(1))
        share = s / denom[node].clamp_min(1e-12).unsqueeze(1)
        term = torch.log1p(n_act[node].unsqueeze(1) * share) * alive
        if mu:
            term = term * (1.0 + mu * op_costs(cell))
        conv_alive = alive * cell.is_conv.to(alive.dtype)
        thr = ((torch.exp(-cell.t_op) * alive).sum() + (torch.exp(-cell.t_fil) * conv_alive).sum()
               + (torch.exp(-cell.t_w) * conv_alive).sum() + torch.exp(-cell.t_pre).sum())
        r_size = term.sum() if r_size is None else r_size + term.sum()
        r_thr = thr if r_thr is None else r_thr + thr
    return r_size, r_thr


def op_costs(cell) -> torch.Tensor:
    """Soft weight count of each op: share of its weights still committed (0 for parameter-free
    ops). Only used when mu > 0."""
    cost = torch.zeros(cell.alpha.shape, device=cell.alpha.device)
    for e, row in enumerate(cell.ops):
        for o, op in enumerate(row):
            if isinstance(op, GatedConvOp):
                live = sum(int(c.mask.sum()) for c in op.convs())
                cost[e, o] = live / max(1, sum(c.mask.numel() for c in op.convs()))
    return cost


