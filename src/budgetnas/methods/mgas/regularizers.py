"""The loss terms of the learned discretisation (docs/mgas.md §4): R_size and R_thr, and the optimizers
of weights and architecture tensors."""
from __future__ import annotations

import torch

from .opcost import op_costs
from .settings import SearchSettings
from .supernet import MGASSupernet, arch_group


def filter_threshold_lr(s: SearchSettings) -> float:
    """t_fil's learning rate: its own setting, or t_op's (as published)."""
    return s.lr_threshold if s.lr_filter_threshold is None else s.lr_filter_threshold


def make_optimizers(net: MGASSupernet, s: SearchSettings) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    lrs = {"alpha": s.lr_alpha, "beta": s.lr_beta, "t_op": s.lr_threshold,
           "t_fil": filter_threshold_lr(s), "t_w": s.lr_weight_threshold}
    groups: dict[str, list] = {k: [] for k in lrs}
    weights = []
    for name, p in net.named_parameters():
        group = arch_group(name)
        (groups[group] if group else weights).append(p)
    # foreach: one multi-tensor update instead of a Python loop over the supernet's thousands of
    # small tensors (the default on CPUs is the loop)
    w_opt = torch.optim.SGD(weights, lr=s.lr_weights, momentum=0.9, weight_decay=s.weight_decay,
                            foreach=True)
    # budget controller: the thresholds may step without momentum (threshold_momentum), so that
    # lambda sets how far they move in an epoch with no carry-over (controller.py, 3)
    momentum = {k: (s.threshold_momentum if k.startswith("t_") else 0.9) for k in groups}
    a_opt = torch.optim.SGD([{"params": ps, "lr": lrs[k], "name": k, "momentum": momentum[k]}
                             for k, ps in groups.items()],
                            lr=1.0, momentum=0.9, weight_decay=0.0, foreach=True)
    return w_opt, a_opt


def regularizers(net: MGASSupernet, cells: range, mu: float) -> tuple[torch.Tensor, torch.Tensor]:
    """R_size and R_thr of docs/mgas.md §4, a few tensor ops per cell.

    R_size = sum_nodes sum_{live o} log(1 + n_act * s_o / sum_{o' on node} s_o') * (1 + mu * cost_o),
    with n_act counted per node (**Decision**, the original reused one node's count) and cost_o
    the op's latency price (opcost.py).
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

