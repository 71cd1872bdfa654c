"""Scores, costs and the exact search for DNA over the NAS-Bench-201 space.

Block scores (lower is better) are normalised errors of each block (MSE / Var(teacher target) or
the relative L1, see `blockwise.rate_nb201_block`): unitless and comparable across blocks.
A network's score is the sum over its blocks (`combine_scores` also offers a per-block
standardisation, measured to make no difference, docs/bench_dna.md).

Two searches, both exact:
- same cell in every stage (the benchmark's space): score and cost are known for all 15,625
  cells; the best under a budget is the lowest score among cells that fit (ties: lower cost,
  then lower index). The front (cost ascending, score strictly descending) answers every budget.
- one cell per stage: 3 x 15,625 candidates with per-stage costs; `pareto.merge_fronts` merges
  the per-stage Pareto fronts exactly.
Costs are those of the *exported* network (default: the benchmark's C=16, 5 cells per stage),
from the per-op table of `cost.nb201` (checked there against full builds).
"""
from __future__ import annotations

import numpy as np

from ....errors import UserError
from .block import all_cells
from ..pareto import BlockCandidates, merge_fronts, pareto_indices

COMBINES = ("sum", "zsum")


def combine_scores(block_scores: list[np.ndarray], how: str = "sum") -> np.ndarray:
    """Network scores from per-block scores (each an array over all cells)."""
    scores = np.asarray(block_scores, dtype=np.float64)
    if how == "zsum":  # each block standardised over the cells first
        scores = (scores - scores.mean(1, keepdims=True)) / scores.std(1, keepdims=True).clip(1e-12)
    elif how != "sum":
        raise ValueError(how)
    total = np.zeros(scores.shape[1])
    for row in scores:  # block order, as the search sums
        total = total + row
    return total


def cell_costs(config: dict) -> dict[str, np.ndarray]:
    """params and MACs of the network `config` with each of the 15,625 cells in every stage."""
    from ....cost.nb201 import nb201_costs

    return nb201_costs(np.array(all_cells(), dtype=np.int64), config)


def stage_costs(config: dict, metric: str) -> tuple[float, list[np.ndarray]]:
    """(fixed cost, per-stage cost of every cell) for networks with one cell per stage.

    Per edge and op, the cost of one cell position at stage s is measured on built cells; the
    cost of a network is the fixed part plus, per stage, cells_per_stage x the cell's cost."""
    from ....cost import count_macs, count_params
    from ....spaces.nb201 import CONFIG_DEFAULTS, OPS, Cell
    from ....cost.nb201 import nb201_op_costs

    cfg = {**CONFIG_DEFAULTS, **config}
    base = float(nb201_op_costs(cfg)["base"][metric])
    per_stage = []
    for s in range(3):
        width, size = cfg["C"] * 2 ** s, cfg["input_size"] // 2 ** s
        op_cost = np.zeros((6, len(OPS)))
        for k in range(6):
            for o, op in enumerate(OPS):
                ops = ["none"] * 6
                ops[k] = op
                cell = Cell(ops, width)
                op_cost[k, o] = (count_params(cell) if metric == "params"
                                 else count_macs(cell, (width, size, size)))
        rows = np.array(all_cells(), dtype=np.int64)
        per_stage.append(cfg["cells_per_stage"] * op_cost[np.arange(6)[None, :], rows].sum(1))
    return base, per_stage


def best_same_cell(score: np.ndarray, cost: np.ndarray, budget: float, *, unit: str, where: str) -> int:
    """Index of the best-scored cell with cost <= budget (ties: lower cost, then lower index)."""
    feasible = np.flatnonzero(cost <= budget)
    if len(feasible) == 0:
        smallest = float(cost.min())
        raise UserError(f"no network of this space fits a budget of {budget:g} {unit}; the smallest "
                        f"costs {smallest:g} {unit}", where=where, fix=f"raise the budget to at least {smallest:g}")
    order = np.lexsort((feasible, cost[feasible], score[feasible]))
    return int(feasible[order[0]])


def same_cell_front(score: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Cell indices of the (cost, score) Pareto front, cost ascending."""
    return pareto_indices(cost, score)


def per_stage_search(block_scores: list[np.ndarray], base: float, per_stage: list[np.ndarray]):
    """The merged front of networks with one cell per stage (see `pareto.merge_fronts`)."""
    blocks = [BlockCandidates(cost, score) for cost, score in zip(per_stage, block_scores)]
    return merge_fronts(blocks, fixed_cost=base)
