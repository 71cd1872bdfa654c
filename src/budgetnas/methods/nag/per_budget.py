"""Baselines that query a table directly (each query reveals one row's true accuracy and cost).

- random search: `queries` random architectures, shared by all budgets; per budget the most
  accurate one within it.
- regularized evolution per budget (Real et al., 2019): population 50, tournament 10, one mutated
  decision per child, oldest removed; fitness = accuracy if within budget, else -cost.
- reward shaping, evolved with the same loop and fitness function replaced by
  MnasNet: A * (L / B) ** -0.07 (soft: the reward is raised below the budget and lowered above)
  TuNAS:   A - 0.07 * |L / B - 1| * 100 (accuracy in percent; absolute-value reward).
Picks are the best *feasible* queried architecture under each method's own ranking (the measured
cost is known for every queried row); with none feasible, the cheapest queried one.

A query reveals one distinct row: asking again for a row already revealed is free (a cache), so
every method spends exactly its number of queries on distinct rows. Each function also returns
how many rows it revealed (`return_queries=True`).
"""
from __future__ import annotations

from collections import deque
from typing import Callable

import numpy as np

from .table import Table

Fitness = Callable[[float, float, float], float]


def constrained(acc: float, cost: float, budget: float) -> float:
    return acc if cost <= budget else -cost


def mnasnet(acc: float, cost: float, budget: float) -> float:
    return acc * (cost / budget) ** -0.07


def tunas(acc: float, cost: float, budget: float) -> float:
    return acc - 0.07 * 100.0 * abs(cost / budget - 1.0)


FITNESS: dict[str, Fitness] = {"evolution": constrained, "mnasnet": mnasnet, "tunas": tunas}


def _pick(idx: list[int], acc: np.ndarray, cost: np.ndarray, budget: float,
          score: Callable[[int], float] | None = None) -> int:
    feasible = [i for i in idx if cost[i] <= budget]
    if not feasible:
        return min(idx, key=lambda i: cost[i])
    return max(feasible, key=score or (lambda i: acc[i]))


def random_search(table: Table, acc: np.ndarray, cost: np.ndarray, budgets: list[float], *,
                  queries: int, seed: int, return_queries: bool = False):
    rng = np.random.default_rng(seed)
    idx = list(rng.choice(len(table), size=min(queries, len(table)), replace=False))
    picks = [_pick(idx, acc, cost, b) for b in budgets]
    return (picks, len(set(idx))) if return_queries else picks


def evolve(table: Table, acc: np.ndarray, cost: np.ndarray, budget: float, *, queries: int, seed: int,
           fitness: Fitness = constrained, population: int = 50, tournament: int = 10,
           return_queries: bool = False):
    """Regularized evolution for one budget; returns the picked row (and the distinct rows revealed)."""
    rng = np.random.default_rng(seed)
    space = table.space
    queried: dict[int, None] = {}  # distinct revealed rows, in order
    pop: deque[int] = deque()

    def query(row: np.ndarray) -> int | None:
        i = table.index_of(space.canonical(row))
        if i is not None:
            queried.setdefault(i, None)
        return i

    draws = 0
    while len(pop) < min(population, queries) and len(queried) < queries and draws < 50 * queries:
        draws += 1
        i = query(space.sample_batch(rng, 1)[0])
        if i is not None:
            pop.append(i)
    tries = 0
    while len(queried) < queries and tries < 50 * queries:
        tries += 1
        contenders = [pop[int(k)] for k in rng.choice(len(pop), size=min(tournament, len(pop)), replace=False)]
        parent = max(contenders, key=lambda i: fitness(acc[i], cost[i], budget))
        child = table.rows[parent].copy()
        d = int(rng.integers(len(space)))
        options = [v for v in range(space.sizes[d]) if v != child[d]]
        if not options:
            continue
        child[d] = options[int(rng.integers(len(options)))]
        i = query(child)
        if i is None:  # not in the table (e.g. a gated slot of a partial table)
            continue
        pop.append(i)
        pop.popleft()
    pick = _pick(list(queried), acc, cost, budget, lambda i: fitness(acc[i], cost[i], budget))
    return (pick, len(queried)) if return_queries else pick


def per_budget(method: str, table: Table, acc: np.ndarray, cost: np.ndarray, budgets: list[float], *,
               queries: int, seed: int, return_queries: bool = False):
    """`queries` table queries in total, split evenly over the budgets (each budget's search is
    independent, so the total is the sum of theirs)."""
    each = max(1, queries // len(budgets))
    runs = [evolve(table, acc, cost, b, queries=each, seed=seed + 7919 * k, fitness=FITNESS[method],
                   return_queries=True) for k, b in enumerate(budgets)]
    picks = [p for p, _ in runs]
    return (picks, sum(n for _, n in runs)) if return_queries else picks


# --- the same baselines against an oracle (a supernet: each query one subnet evaluation) ----------

Measure = Callable[[tuple], "tuple[float, float]"]  # canonical row -> (accuracy, cost)


def distinct_samples(space, n: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    seen: dict[tuple[int, ...], None] = {}
    for _ in range(100):
        for row in space.sample_batch(rng, n):
            seen.setdefault(tuple(int(v) for v in row), None)
            if len(seen) == n:
                return list(seen)
    return list(seen)


def best_within(results: dict, budget: float, fitness: Fitness = constrained) -> tuple:
    """The queried row with the best fitness among those within the budget (else the cheapest)."""
    feasible = [r for r, (_, c) in results.items() if c <= budget]
    if not feasible:
        return min(results, key=lambda r: results[r][1])
    return max(feasible, key=lambda r: fitness(results[r][0], results[r][1], budget))


def random_search_space(space, measure: Measure, budgets: list[float], *, queries: int,
                        seed: int) -> tuple[list[tuple], dict]:
    """`queries` distinct random architectures shared by all budgets: (picks, results)."""
    rows = distinct_samples(space, queries, np.random.default_rng(seed))
    results = {r: measure(r) for r in rows}
    return [best_within(results, b) for b in budgets], results


def evolve_space(space, measure: Measure, budget: float, *, queries: int, seed: int,
                 fitness: Fitness = constrained, population: int = 50, tournament: int = 10) -> tuple[tuple, dict]:
    """Regularized evolution for one budget in a decision space: (pick, results). A mutation
    that only changes an inactive decision (the same network) is drawn again, not counted."""
    rng = np.random.default_rng(seed)
    results: dict[tuple, tuple[float, float]] = {}
    pop: deque[tuple] = deque()

    def query(row) -> tuple:
        key = space.canonical(row)
        if key not in results:
            results[key] = measure(key)
        return key

    for row in distinct_samples(space, min(population, queries), rng):
        pop.append(query(row))
    tries = 0
    while len(results) < queries and tries < 50 * queries:
        tries += 1
        contenders = [pop[int(k)] for k in rng.choice(len(pop), size=min(tournament, len(pop)), replace=False)]
        parent = max(contenders, key=lambda r: fitness(*results[r], budget))
        child = list(parent)
        d = int(rng.integers(len(space)))
        child[d] = int(rng.choice([v for v in range(space.sizes[d]) if v != child[d]] or [child[d]]))
        if space.canonical(child) == parent:
            continue
        pop.append(query(child))
        pop.popleft()
    return best_within(results, budget, fitness), results
