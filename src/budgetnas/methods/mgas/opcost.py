"""cost_o of R_size's mu term (docs/mgas.md §4): what keeping op o costs, differentiably.

    cost_o = open_o * overhead_o

- `open_o` = step(sigmoid(alpha_o) - t_op_o) with the STE: the cost is paid only while the op's
  gate is open, and its gradient pushes t_op up (and alpha down) in proportion to the cost, so
  op count has a real price, not only the shares of R_size.
- `overhead_o`: a per-op price independent of width, the op's share of batch-1 latency measured
  on one CPU thread (docs/mgas.md §10): a small network's latency is almost all per-op overhead,
  about 1 for a sep conv (two dw+pw pairs), 0.5 for a dil conv (one), 0.1 for a pool with its BN
  and for a factorized reduce, 0 for an identity skip.
**Decision:** latency shares rather than a flat price per op, so that cheap ops (pools, skips)
are not pruned in place of expensive ones. **Decision:** no parameter count in the cost (the
spec's "soft filter/weight count"): the size is the controller's job, and a soft-parameter term
whose gradient reached t_fil and t_w pruned every conv weight of the network in one measured
run (mu 0.2; docs/mgas.md §10). The balance between the levels is set by the thresholds' learning
rates instead.
"""
from __future__ import annotations

import torch

from ...spaces.darts import OPS
from .gates import step
from .supernet import SuperCell

OVERHEAD = {"skip_connect": 0.0, "sep_conv_3x3": 1.0, "sep_conv_5x5": 1.0, "dil_conv_3x3": 0.5,
            "dil_conv_5x5": 0.5, "avg_pool_3x3": 0.1, "max_pool_3x3": 0.1}
REDUCE_SKIP_OVERHEAD = 0.1  # a skip at stride 2 is a factorized reduce (two 1x1 convs + BN)


def overheads(cell: SuperCell) -> torch.Tensor:
    """[E, O] per-op overhead of the cell (skips of stride-2 edges are factorized reduces)."""
    table = torch.tensor([[OVERHEAD[name] for name in OPS] for _ in cell.edges])
    skip = OPS.index("skip_connect")
    for e, (src, _) in enumerate(cell.edges):
        if cell.stride(src) == 2:
            table[e, skip] = REDUCE_SKIP_OVERHEAD
    return table.to(cell.alpha.device)


def op_costs(cell: SuperCell) -> torch.Tensor:
    """[E, O] cost_o of every op of the cell (0 for committed-dead ops)."""
    open_ = step(torch.sigmoid(cell.alpha) - cell.t_op) * cell.alive_op.to(cell.alpha.dtype)
    return open_ * overheads(cell)
