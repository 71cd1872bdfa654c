"""Selection with verification: the generator proposes, the oracle confirms.

Picking among generated samples by *predicted* accuracy alone (the paper's selection) loses to
random search on NAS-Bench-201 for three of five costs (docs/bench_nag.md): the predictor's error
near the front (~0.8 pp) is larger than the gaps between the best architectures. So for each
budget the `count` best-scored generated candidates that fit the budget and are not measured yet
are measured (each one query, counted in the query budget), and the pick is the best *measured*
candidate within the budget.

**Decision:** verification queries are reserved out of the query budget before training, so
NAG never spends more evaluations than the baselines it is compared with.
"""
from __future__ import annotations

import numpy as np

from .model import NAGModel
from .training import Oracle


def reveal(model: NAGModel, oracle: Oracle, rows: np.ndarray) -> int:
    """Measure `rows` (not yet revealed) and add them to the model's revealed rows; returns how
    many were found."""
    if not len(rows):
        return 0
    found, acc, cost = oracle(np.asarray(rows))
    found = np.asarray(found, dtype=bool)
    model.reveal(np.asarray(rows)[found], np.asarray(acc)[found], np.asarray(cost)[found])
    return int(found.sum())


def verified_select(model: NAGModel, budget: float, oracle: Oracle, *, count: int, seed: int = 0,
                    include_known: bool = False, require_measured: bool = False,
                    k: int | None = None) -> dict:
    """The best measured candidate for `budget` after measuring the `count` most promising
    unmeasured generated ones (with include_known, revealed rows compete too). With
    require_measured, the pick is always measured (one more query when none of the candidates
    within the budget is)."""
    rows = model.pool(budget, k=k, seed=seed, include_known=include_known)
    _, _, measured, score, feasible = model.judge(rows, budget)
    order = [i for i in np.argsort(-score, kind="stable") if feasible[i] and not measured[i]]
    queried = reveal(model, oracle, rows[order[:count]]) if count else 0
    pick = model.pick(rows, budget, measured_first=True)
    if require_measured and not pick["measured"]:
        queried += reveal(model, oracle, np.array([pick["row"]]))
        pick = model.pick(rows, budget, measured_first=True)
    pick["verified"] = queried
    return pick
