"""A budget-aware lambda controller: the learned gates, not the landing fallback, reach the target.

The published schedule (docs/mgas.md §4: lambda += delta, delta x4 every 2 epochs) needs hundreds of
epochs before lambda is large enough to close gates; a CPU-sized search ends long before that and
the target is then reached by the fallback. This controller plans the size trajectory over the
control points the run has and sets lambda so that the learned thresholds follow it.

1. **Plan per cell, over the phases it is searched in.** Cell c is searched (and re-pruned) in
   every phase from its stage's to the final one, `n_c` phases in all. With the keep ratio
   `r = (target - fixed) / prunable` (fixed = stem and classifier, prunable = the cells, both at
   the search start), the plan wants cell c at `r ** (j / n_c)` of its start size after the j-th of
   its phases: geometric, equal steps in log size. A phase's goal is the size with its searched
   cells on their plan and the others as they are; the final phase's goal is the target.
   **Decision:** one geometric trajectory of the whole network cannot be followed: stage 1
   searches only the first cells, a small share of the size, and lambda would grow without limit.
2. **Plan within a phase:** geometric from the phase's start size to its goal over its search
   epochs (the control points; the last is the phase's last commit).
3. **Feed-forward.** A unit's gate closes when its threshold passes its score, so the gated size
   is a step function of how far the thresholds move, and every threshold starts 0.5 below its
   score (scores start at sigmoid(0) = 0.5, thresholds at 0): nothing closes until the
   thresholds have travelled that far, then much closes at once. A controller that only looks
   at the size winds lambda up during that dead time and overshoots (measured: the gated size
   fell from 146k to 11k params in one epoch; docs/mgas.md §10). So before each search epoch the
   controller predicts the thresholds' motion over the epoch from the regularizer's gradient
   (steering.py) and picks the lambda whose predicted gated size meets the plan's next point
   (`find_lambda`, on the real exported size of a trial commit).
4. **Feedback.** CE pushes back on the thresholds of useful units, so they move less than the
   model says: after each epoch a correction factor (on lambda) is scaled by commanded / realised
   mean threshold shift (`corrected`). The size itself needs no separate feedback: each epoch's
   feed-forward starts from the gated size reached, so lagging the plan raises the next lambda
   (a larger shift is needed) and being ahead of it lowers lambda, to 0 when the gated size is at
   or below the plan's next point.
All functions are pure; `SearchState` holds the controller's numbers (checkpointed, resumable).
"""
from __future__ import annotations

import math
from typing import Callable

CORRECTION_RANGE = (0.25, 4.0)
# Lambdas the feed-forward considers. **Decision:** capped at 1: when the floors of the search
# space (one op per node, half widths) make the plan's last step unreachable, the feed-forward
# asks for ever larger lambda; at 10.7 R_size wiped out the scores and the supernet (measured),
# while at the cap the search ends a little above the target and the fallback lands it.
LAMBDA_RANGE = (1e-4, 1.0)
LAMBDA_ITERATIONS = 8  # bisection steps in log lambda: to within a factor (1e5) ** (1 / 256)
MIN_COMMAND = 0.02  # shifts below this carry too little signal to correct the model with


def keep_ratio(goal: float, total: float, cell_sizes: list[float]) -> float:
    """Share of the cells' size the target leaves once the fixed part (stem, classifier) is paid."""
    prunable = sum(cell_sizes)
    if prunable <= 0:
        return 1.0
    return min(1.0, max(1e-6, (goal - (total - prunable)) / prunable))


def phases_searching(cell: int, phase_cells: list[range]) -> list[int]:
    """Indices of the phases in which `cell` is searched (its commit cells contain it)."""
    return [j for j, cells in enumerate(phase_cells) if cell in cells]


# exponent p of the per-cell plan r ** ((j / n_c) ** p); equal has none (one share for all: cell_goal)
STAGE_PLANS = {"even": 1.0, "late": 2.0, "equal": None}


def cell_goal(cell: int, phase: int, phase_cells: list[range], *, cells_start: list[float], ratio: float,
              stage_plan: str = "even") -> float:
    """The size the plan wants `cell` at after `phase` (an intermediate phase that searches it).

    even / late: r ** ((j / n_c) ** p) of its start after the j-th of the n_c phases that search
    it. equal: every cell searched so far at the same share, r ** (k / n) after the k-th of the n
    phases that prune (docs/mgas.md 10.19)."""
    if stage_plan == "equal":
        pruning = [j for j, cells in enumerate(phase_cells) if len(cells)]
        return ratio ** ((pruning.index(phase) + 1) / len(pruning)) * cells_start[cell]
    mine = phases_searching(cell, phase_cells)
    j = mine.index(phase) + 1
    return ratio ** ((j / len(mine)) ** STAGE_PLANS[stage_plan]) * cells_start[cell]


def phase_goal(phase: int, phase_cells: list[range], *, goal: float, total_now: float,
               cells_now: list[float], cells_start: list[float], ratio: float,
               stage_plan: str = "even") -> float:
    """The size the plan wants at the end of `phase` (the target itself in the last phase).

    `stage_plan="late"` plans cell c at r ** ((j / n_c) ** 2) instead of r ** (j / n_c): the
    intermediate phases of a multi-stage search cut less and leave more to the final phase, where
    all cells compete for the target (docs/mgas.md 10.17)."""
    if phase == len(phase_cells) - 1:
        return goal
    planned = total_now
    for c in phase_cells[phase]:
        planned += cell_goal(c, phase, phase_cells, cells_start=cells_start, ratio=ratio,
                             stage_plan=stage_plan) - cells_now[c]
    return max(goal, min(planned, total_now))


PLAN_SHAPES = ("geometric", "cubic")


def planned_size(start: float, goal: float, point: int, points: int, shape: str = "geometric") -> float:
    """The plan from `start` (point 0) to `goal` (point `points` and after).

    geometric: equal steps in log size. cubic: the gradual-pruning schedule of Zhu & Gupta
    (2017), `goal + (start - goal) (1 - k/points)^3`: large cuts while the supernet is large and
    redundant, small ones at the end, where each removed unit matters most and the supernet has
    the least to spare."""
    if points <= 0 or start <= 0 or goal <= 0:
        return goal
    k = min(max(point, 0), points)
    if shape == "cubic":
        return goal + (start - goal) * (1 - k / points) ** 3
    return start * (goal / start) ** (k / points)


def find_lambda(size_at: Callable[[float], float], planned: float, *, low: float = LAMBDA_RANGE[0],
                high: float = LAMBDA_RANGE[1], iterations: int = LAMBDA_ITERATIONS) -> float:
    """The largest lambda (bisection in log lambda) whose predicted gated size size_at(lambda)
    stays above `planned` (size_at falls as lambda grows): 0 when the gated size is already on or
    below the plan, or when even `low` would jump below it; `high` when even that is not enough.

    **Decision:** the last lambda *above* the plan, not the first one below it. Where many scores
    are equal (every score is sigmoid(0) before the first search epoch) the gated size falls off
    a cliff at one threshold shift; pushing past it closes everything behind the cliff at once
    (measured: 219k -> 50k params in one epoch against a plan of 159k). Stopping at its edge
    leaves the thresholds just below the scores, where the STE's gradient is largest, and CE and
    R_size decide over the next epoch which of the tied units close."""
    if size_at(0.0) <= planned or size_at(low) <= planned:
        return 0.0
    if size_at(high) > planned:
        return high
    lo, hi = math.log(low), math.log(high)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if size_at(math.exp(mid)) <= planned else (mid, hi)
    return math.exp(lo)


def corrected(correction: float, commanded: float, realised: float) -> float:
    """Feedback on the feed-forward model: CE pushes back on the thresholds of useful
    units, so they move less than commanded (or more, when CE pulls). The correction is scaled by
    commanded / realised mean shift (at most 2x per update, within CORRECTION_RANGE), and only
    after epochs that commanded a real shift."""
    if commanded < MIN_COMMAND:
        return correction
    ratio = commanded / max(realised, commanded / 2)
    low, high = CORRECTION_RANGE
    return min(high, max(low, correction * min(2.0, max(0.5, ratio))))
