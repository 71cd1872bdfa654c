"""Training a NAG generator: REINFORCE phases with adaptive query rounds between them."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .model import NAGModel


Oracle = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray, np.ndarray]"]


def train(model: NAGModel, oracle: Oracle | None = None, *, iteration: int = 0, phase: int = 0,
          log: list[dict] | None = None, on_step: Callable[[int], None] | None = None,
          on_phase_end: Callable[[int, int], None] | None = None,
          on_query: Callable[[int, int], None] | None = None) -> list[dict]:
    """Train the generator from (iteration, phase) to the end, with a query round after every
    phase but the last when the settings have a query budget.

    oracle(rows) -> (found, acc, cost): reveals rows (found=False where the source lacks one; those
    cost no query). on_step(iteration), on_phase_end(iteration, phase) and on_query(iteration,
    next_phase) let the caller checkpoint. Returns the log (one row per 50 iterations)."""
    s = model.settings
    log = [] if log is None else log
    ends = s.phase_ends()
    if s.query_budget and oracle is None:
        raise ValueError("a query budget needs an oracle")
    while True:
        for it in range(iteration, ends[phase]):
            row = model.train_step(it)
            if (it + 1) % 50 == 0:
                log.append(row)
            iteration = it + 1
            if on_step:
                on_step(iteration)
        if on_phase_end:
            on_phase_end(iteration, phase)
        if phase == len(ends) - 1:
            return log
        rounds_left = len(ends) - 1 - phase
        quota = math.ceil(max(0, s.query_budget - len(model.known)) / rounds_left)
        rows = model.propose(quota, seed=phase)
        if len(rows):
            found, acc, cost = oracle(rows)
            found = np.asarray(found, dtype=bool)
            model.reveal(rows[found], np.asarray(acc)[found], np.asarray(cost)[found])
        if len(model.known) > s.query_budget:  # pragma: no cover - guarded by the quota
            raise AssertionError("query budget exceeded")
        model.refit()
        log.append({"iteration": iteration, "query_round": phase + 1, "revealed": len(model.known),
                    "acc_discount": model.acc_discount, "margin": model.margin})
        phase += 1
        if on_query:
            on_query(iteration, phase)


def table_oracle(table, acc: np.ndarray, cost: np.ndarray) -> Oracle:
    """An oracle that reveals rows of a table (rows it lacks are not found)."""
    def oracle(rows: np.ndarray):
        idx = [table.index_of(r) for r in rows]
        found = np.array([i is not None for i in idx], dtype=bool)
        safe = np.array([i if i is not None else 0 for i in idx], dtype=np.int64)
        return found, acc[safe], cost[safe]
    return oracle
