"""Exact DNA search: the merged Pareto front answers every budget exactly like brute force."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from budgetnas.errors import UserError
from budgetnas.methods.dna.pareto import (BlockCandidates, brute_force_best, merge_fronts,
                                          pareto_indices)


def _random_blocks(rng: np.random.Generator, n_blocks: int, *, states: bool) -> list[BlockCandidates]:
    blocks, widths = [], [0]
    for _ in range(n_blocks):
        n = int(rng.integers(1, 9))
        # Few distinct values, so equal costs, equal scores and exact duplicates all occur.
        cost = rng.integers(1, 6, n).astype(float)
        score = rng.integers(0, 5, n) * 0.25
        if states:
            s_in = rng.choice(widths, n)
            s_out = rng.integers(0, 2, n)
            widths = sorted(set(s_out.tolist())) or [0]
            blocks.append(BlockCandidates(cost, score, s_in, s_out))
        else:
            blocks.append(BlockCandidates(cost, score))
    return blocks


def _check_front(blocks, front, final_cost=None, fixed=0.0):
    for k in range(len(front)):  # every front point is a real network with exactly that cost/score
        picks = front.choices(k)
        state, cost, score = 0, fixed, 0.0
        for block, j in zip(blocks, picks):
            assert block.in_state[j] == state
            cost, score, state = cost + block.cost[j], score + block.score[j], int(block.out_state[j])
        cost += (final_cost or {}).get(state, 0.0)
        assert (cost, score) == (front.cost[k], front.score[k])
    assert np.all(np.diff(front.cost) > 0) and np.all(np.diff(front.score) < 0)


@pytest.mark.parametrize("states", [False, True])
def test_merged_front_equals_brute_force_for_every_budget(states):
    rng = np.random.default_rng(0 if states else 1)
    checked_infeasible = 0
    for _ in range(120):
        blocks = _random_blocks(rng, int(rng.integers(1, 5)), states=states)
        final = {0: 1.0, 1: 3.0} if states else None
        try:
            front = merge_fronts(blocks, final_cost=final, fixed_cost=2.0)
        except ValueError:  # a block reads only widths its predecessor cannot produce
            assert brute_force_best(blocks, 1e9, final_cost=final, fixed_cost=2.0) is None
            continue
        _check_front(blocks, front, final, 2.0)
        for budget in np.arange(0.0, front.cost[-1] + 2, 0.5):
            expected = brute_force_best(blocks, budget, final_cost=final, fixed_cost=2.0)
            if expected is None:
                checked_infeasible += 1
                with pytest.raises(UserError, match=f"smallest costs {front.cost[0]:g}"):
                    front.best_index(budget)
                assert budget < front.cost[0]
                continue
            k = front.best_index(budget)
            assert (front.cost[k], front.score[k]) == expected
    assert checked_infeasible > 0


def test_pareto_indices_keep_exactly_the_non_dominated_points():
    rng = np.random.default_rng(2)
    for _ in range(200):
        n = int(rng.integers(1, 15))
        cost, score = rng.integers(0, 4, n).astype(float), rng.integers(0, 4, n).astype(float)
        kept = set(pareto_indices(cost, score).tolist())
        for i in range(n):
            dominated = any((cost[j] <= cost[i] and score[j] <= score[i]
                             and (cost[j] < cost[i] or score[j] < score[i])) or
                            (cost[j] == cost[i] and score[j] == score[i] and j < i) for j in range(n))
            assert (i in kept) == (not dominated)


def test_float_costs_six_blocks_match_enumeration():
    rng = np.random.default_rng(3)
    blocks = [BlockCandidates(rng.random(4) * 100, rng.random(4)) for _ in range(6)]
    front = merge_fronts(blocks)
    combos = [(sum(blocks[i].cost[j] for i, j in enumerate(c)), sum(blocks[i].score[j] for i, j in enumerate(c)))
              for c in itertools.product(range(4), repeat=6)]
    for budget in np.quantile([c for c, _ in combos], [0.0, 0.1, 0.5, 0.9, 1.0]):
        best = min((s, c) for c, s in combos if c <= budget)
        k = front.best_index(budget)
        assert front.score[k] == pytest.approx(best[0], abs=1e-12)
        assert front.cost[k] <= budget
