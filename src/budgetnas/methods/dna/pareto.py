"""Exact constrained search: every budget answered from one merged Pareto front.

A network picks one candidate per block; its cost is the sum of the candidates' costs (plus a
fixed part) and its score the sum of their scores (lower is better). Finding the best network
under a budget is a multiple-choice knapsack. Instead of a heuristic depth-first search per
budget, we keep for every block only its Pareto front of (cost, score), then merge the fronts
block by block: the Minkowski sum of two fronts followed by dominance pruning is exactly the
front of the combined choice, so after the last block the front holds the optimum of *every*
budget (the best network under budget B is the last front point with cost <= B).

Blocks may couple through a *state*: a candidate reads its input width (`in_state`) and sets the
next block's input width (`out_state`), which changes the next block's costs. Fronts are then
kept per state (a dynamic program over states), which is still exact.

Ties: among networks with equal cost the lower score wins; among networks with equal cost and
score the first in block-by-block candidate order wins. Summation order is block 0, 1, ... so the
sums are bit-identical to summing a chosen network's parts in that order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import UserError


@dataclass
class BlockCandidates:
    """One block's candidates (over all its cells). States default to a single state 0."""

    cost: np.ndarray
    score: np.ndarray
    in_state: np.ndarray | None = None
    out_state: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.cost = np.asarray(self.cost, dtype=np.float64)
        self.score = np.asarray(self.score, dtype=np.float64)
        n = len(self.cost)
        if len(self.score) != n or n == 0:
            raise ValueError("a block needs as many scores as costs, and at least one candidate")
        self.in_state = np.zeros(n, np.int64) if self.in_state is None else np.asarray(self.in_state, np.int64)
        self.out_state = np.zeros(n, np.int64) if self.out_state is None else np.asarray(self.out_state, np.int64)


def pareto_indices(cost: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points, by increasing cost (and strictly decreasing score).

    A point survives iff every point of lower or equal cost has a strictly higher score, where
    earlier indices win exact ties."""
    cost = np.asarray(cost, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    if len(cost) == 0:
        return np.zeros(0, np.int64)
    order = np.lexsort((np.arange(len(cost)), score, cost))
    s = score[order]
    best_before = np.concatenate([[np.inf], np.minimum.accumulate(s)[:-1]])
    return order[s < best_before]


@dataclass
class _Level:
    """The fronts after some block, all states concatenated."""

    cost: np.ndarray
    score: np.ndarray
    state: np.ndarray
    prev: np.ndarray  # index into the previous level (-1 for the start)
    cand: np.ndarray  # candidate index in this block


@dataclass
class MergedFront:
    """The whole-network Pareto front: cost ascending, score strictly descending."""

    cost: np.ndarray
    score: np.ndarray
    levels: list = field(repr=False)
    last: np.ndarray = field(repr=False)  # index into the last level per front point

    def __len__(self) -> int:
        return len(self.cost)

    def choices(self, k: int) -> list[int]:
        """The candidate index of every block for front point `k`."""
        picks = []
        idx = int(self.last[k])
        for level in reversed(self.levels):
            picks.append(int(level.cand[idx]))
            idx = int(level.prev[idx])
        return picks[::-1]

    def best_index(self, budget: float, *, unit: str = "cost", where: str = "target") -> int:
        """The best network with cost <= budget; a UserError names the smallest feasible cost."""
        k = int(np.searchsorted(self.cost, budget, side="right")) - 1
        if k < 0:
            raise UserError(f"no network of this space fits a budget of {budget:g} {unit}; the "
                            f"smallest costs {self.cost[0]:g} {unit}", where=where,
                            fix=f"raise the budget to at least {self.cost[0]:g}")
        return k


def _prune(cost, score, state, prev, cand) -> _Level:
    """Dominance pruning separately within each state (fronts are per state)."""
    keep = []
    for s in np.unique(state):
        idx = np.flatnonzero(state == s)
        keep.append(idx[pareto_indices(cost[idx], score[idx])])
    keep = np.concatenate(keep) if keep else np.zeros(0, np.int64)
    return _Level(cost[keep], score[keep], state[keep], prev[keep], cand[keep])


def merge_fronts(blocks: list[BlockCandidates], *, start_state: int = 0,
                 final_cost: dict[int, float] | None = None, fixed_cost: float = 0.0) -> MergedFront:
    """Merge the blocks' fronts into the front of whole networks.

    `fixed_cost` is added before block 0 (stem); `final_cost[state]` after the last block (a head
    whose cost depends on the last width). Costs of candidates with an `in_state` that the
    previous block cannot produce are never used."""
    level = _Level(np.array([float(fixed_cost)]), np.array([0.0]), np.array([start_state]),
                   np.array([-1]), np.array([-1]))
    levels = []
    for block in blocks:
        parts = []
        for s_in in np.unique(level.state):
            a = np.flatnonzero(level.state == s_in)
            for s_out in np.unique(block.out_state[block.in_state == s_in]):
                b_all = np.flatnonzero((block.in_state == s_in) & (block.out_state == s_out))
                b = b_all[pareto_indices(block.cost[b_all], block.score[b_all])]  # block front
                cost = (level.cost[a][:, None] + block.cost[b][None, :]).ravel()
                score = (level.score[a][:, None] + block.score[b][None, :]).ravel()
                parts.append((cost, score, np.full(len(cost), s_out),
                              np.repeat(a, len(b)), np.tile(b, len(a))))
        if not parts:
            raise ValueError("no candidate of this block reads a width the previous block produces")
        level = _prune(*(np.concatenate(p) for p in zip(*parts)))
        levels.append(level)
    extra = np.array([(final_cost or {}).get(int(s), 0.0) for s in level.state])
    total = level.cost + extra
    keep = pareto_indices(total, level.score)
    return MergedFront(total[keep], level.score[keep], levels, keep)


def brute_force_best(blocks: list[BlockCandidates], budget: float, *, start_state: int = 0,
                     final_cost: dict[int, float] | None = None,
                     fixed_cost: float = 0.0) -> tuple[float, float] | None:
    """(cost, score) of the best network under `budget` by trying every combination (tests only)."""
    best = None

    def walk(i: int, state: int, cost: float, score: float) -> None:
        nonlocal best
        if i == len(blocks):
            total = cost + (final_cost or {}).get(state, 0.0)
            if total <= budget and (best is None or (score, total) < (best[1], best[0])):
                best = (total, score)
            return
        block = blocks[i]
        for j in np.flatnonzero(block.in_state == state):
            walk(i + 1, int(block.out_state[j]), cost + block.cost[j], score + block.score[j])

    walk(0, start_state, float(fixed_cost), 0.0)
    return best
