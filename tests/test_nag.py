"""NAG on a small enumerable space whose true Pareto front is known (all 1,024 architectures).

Accuracy and cost are sums of per-decision effects (plus a fixed pseudo-random interaction), so
bigger choices cost more and usually help; the generator learns from 400 of the rows and is judged
against the front of all of them."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from budgetnas.errors import UserError
from budgetnas.methods.nag.files import load_model, save_model
from budgetnas.methods.nag.model import NAGModel
from budgetnas.methods.nag.networks import concordance, encode
from budgetnas.methods.nag.per_budget import per_budget, random_search
from budgetnas.methods.nag.settings import Settings
from budgetnas.methods.nag.table import load_table
from budgetnas.spaces.decisions import Decision, DecisionSpace

TRAIN_BUDGETS = [6.0, 9.0, 12.0]
UNSEEN_BUDGETS = [7.5, 10.5]


def synthetic_rows() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(123)
    rows = np.array(list(np.ndindex(4, 4, 4, 4, 4)))
    gain = np.sort(rng.uniform(0, 4, size=(5, 4)), axis=1)
    price = np.sort(rng.uniform(0.2, 3.5, size=(5, 4)), axis=1)
    inter = rng.normal(0, 0.3, size=(4, 4))
    acc = 70 + gain[np.arange(5), rows].sum(1) + inter[rows[:, 0], rows[:, 1]]
    cost = price[np.arange(5), rows].sum(1)
    return rows, acc, cost


@pytest.fixture(scope="module")
def synthetic_csv(tmp_path_factory):
    rows, acc, cost = synthetic_rows()
    path = tmp_path_factory.mktemp("nag") / "synthetic.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arch", "acc", "latency_ms"])
        for r, a, c in zip(rows, acc, cost):
            w.writerow(["-".join(map(str, r)), f"{a:.4f}", f"{c:.4f}"])
    return path


@pytest.fixture(scope="module")
def trained(synthetic_csv):
    torch.set_num_threads(1)
    table = load_table(synthetic_csv)
    acc, cost = table.column("acc"), table.column("latency_ms")
    revealed = np.random.default_rng(0).choice(len(table), 400, replace=False)
    settings = Settings(iterations=800, train_budgets=TRAIN_BUDGETS, predictor_epochs=80,
                        evaluator_steps=600, select_samples=200, seed=0)
    model = NAGModel.fit(table.space, table.rows[revealed], acc[revealed], cost[revealed], settings)
    for it in range(settings.iterations):
        model.train_step(it)
    return table, acc, cost, model


def front(acc, cost, budget):
    return acc[cost <= budget].max()


def test_table_infers_choices(synthetic_csv):
    table = load_table(synthetic_csv)
    assert len(table) == 1024 and table.space.sizes == [4] * 5
    assert set(table.columns) == {"acc", "latency_ms"}


def test_evaluator_ranks_pairs(trained):
    table, acc, cost, model = trained
    enc = encode(table.space, table.rows)
    for budget in TRAIN_BUDGETS + UNSEEN_BUDGETS:
        with torch.no_grad():
            scores = model.evaluator(enc, torch.tensor(model.norm(budget))).numpy()
        assert concordance(scores, acc, cost, budget) > 0.8


def test_picks_are_feasible_monotone_and_near_the_front(trained):
    table, acc, cost, model = trained
    budgets = sorted(TRAIN_BUDGETS + UNSEEN_BUDGETS)
    picked = []
    for b in budgets:
        pick = model.select(b, seed=1)  # generated candidates only
        i = table.index_of(pick["row"])
        assert cost[i] <= b, f"pick over budget {b}: {cost[i]}"
        picked.append(acc[i])
    assert all(later >= earlier for earlier, later in zip(picked, picked[1:])), picked
    regret = [front(acc, cost, b) - a for b, a in zip(budgets, picked)]
    assert np.mean(regret) < 0.6 and max(regret) < 1.5, regret


def test_generator_depends_on_the_budget(trained):
    table, acc, cost, model = trained
    low = model.sample(TRAIN_BUDGETS[0], 64, seed=0)
    high = model.sample(TRAIN_BUDGETS[-1], 64, seed=0)
    mean_cost = lambda rows: np.mean([cost[table.index_of(r)] for r in rows])
    assert mean_cost(low) < mean_cost(high)


def test_save_load_gives_the_same_picks(trained, tmp_path):
    table, acc, cost, model = trained
    save_model(model, tmp_path / "generator")
    loaded = load_model(tmp_path / "generator.json", table.space)
    for b in UNSEEN_BUDGETS:
        assert loaded.select(b, seed=3)["row"] == model.select(b, seed=3)["row"]
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))


def test_baselines_pick_feasible_rows(trained):
    table, acc, cost, _ = trained
    budgets = TRAIN_BUDGETS + UNSEEN_BUDGETS
    for picks in (random_search(table, acc, cost, budgets, queries=200, seed=0),
                  per_budget("evolution", table, acc, cost, budgets, queries=500, seed=0)):
        assert all(cost[i] <= b for i, b in zip(picks, budgets))
    for method in ("mnasnet", "tunas"):
        picks = per_budget(method, table, acc, cost, budgets, queries=500, seed=0)
        assert len(picks) == len(budgets)


def test_gated_decisions_encode_inactive_slots_as_zero():
    space = DecisionSpace([Decision("depth", (1, 2, 3)), Decision("k1", (3, 5)),
                           Decision("k2", (3, 5), gate=("depth", 2)), Decision("k3", (3, 5), gate=("depth", 3))])
    row = space.canonical([0, 1, 1, 1])
    assert row == (0, 1, 0, 0)
    assert space.encode(row).tolist() == [1, 0, 0, 0, 1, 0, 0, 0, 0]
    assert len(list(space.enumerate())) == 2 + 4 + 8
    assert space.encode_batch(np.array([row])).tolist() == [space.encode(row).tolist()]


def test_mbconv_decisions_round_trip():
    from budgetnas.arch import Arch, build_model
    from budgetnas.spaces import decision_view

    space, config = decision_view("mbconv", in_channels=1, input_size=8, num_classes=10)
    rng = np.random.default_rng(0)
    for _ in range(3):
        row = space.sample(rng)
        genotype = space.to_genotype(row)
        assert space.from_genotype(genotype) == row
        depth = [len(s["layers"]) for s in genotype["stages"]]
        assert int(space.encode(row).sum()) == len(depth) + 2 * sum(depth)
    model = build_model(Arch("mbconv", config, genotype))
    assert model(torch.zeros(1, 1, 8, 8)).shape == (1, 10)


@pytest.mark.parametrize("text,message", [
    ("acc,latency_ms\n1,2\n", "no 'arch' column"),
    ("arch,acc\n", "no data rows"),
    ("arch,acc\n0-1,1\n0-1-2,2\n", "has 3 choices"),
    ("arch,acc\n0-1,1\n0-1,2\n", "appears twice"),
    ("arch,acc\n0-x,1\n", "not a tuple"),
    ("arch,acc\n0-1,1,5\n", "values but"),
    ("", "empty"),
])
def test_table_errors_are_user_errors(tmp_path, text, message):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        load_table(path)


def test_missing_or_non_numeric_column(synthetic_csv, tmp_path):
    table = load_table(synthetic_csv)
    with pytest.raises(UserError, match="no numeric column"):
        table.column("latency_gpu")
    path = tmp_path / "t.csv"
    path.write_text("arch,acc,lat\n0-1,1,\n1-0,2,3\n")
    with pytest.raises(UserError, match="empty or non-numeric"):
        load_table(path).column("lat")
    with pytest.raises(UserError, match="outside"):
        load_table(synthetic_csv, choices=[2, 4, 4, 4, 4])


# --- adaptive queries ------------------------------------------------------------------------------

def _regret(acc, cost, idx, budgets):
    return float(np.mean([front(acc, cost, b) - acc[i] for i, b in zip(idx, budgets)]))


def test_adaptive_queries_stay_within_budget_and_beat_random_queries(synthetic_csv):
    from budgetnas.methods.nag.training import table_oracle, train

    torch.set_num_threads(1)
    table = load_table(synthetic_csv)
    acc, cost = table.column("acc"), table.column("latency_ms")
    budgets = TRAIN_BUDGETS + UNSEEN_BUDGETS
    initial = np.random.default_rng(0).choice(len(table), 40, replace=False)
    settings = Settings(iterations=150, train_budgets=TRAIN_BUDGETS, predictor_epochs=40,
                        predictor_hidden=128, evaluator_steps=150, evaluator_hidden=64, query_budget=100,
                        query_rounds=2, query_grid=6, query_samples=80, seed=0)
    model = NAGModel.fit(table.space, table.rows[initial], acc[initial], cost[initial], settings)
    calls = {"asked": 0, "found": 0}
    oracle = table_oracle(table, acc, cost)
    missing = {tuple(int(v) for v in table.rows[i]) for i in range(0, len(table), 7)}

    def partial(rows):  # a table that lacks every 7th row: those are not found and cost nothing
        found, a, c = oracle(rows)
        found &= np.array([tuple(int(v) for v in r) not in missing for r in rows])
        calls["asked"] += len(rows)
        calls["found"] += int(found.sum())
        return found, a, c

    log = train(model, partial)
    assert [row["revealed"] for row in log if "query_round" in row][-1] == len(model.known)
    assert len(model.known) == 40 + calls["found"] <= 100
    assert calls["found"] >= 50  # the budget is spent (less what the partial table lacks)
    assert not any(k in missing for k in list(model.known)[40:])  # queried rows were all found
    picks = [table.index_of(model.select(b, seed=k, include_known=True)["row"]) for k, b in enumerate(budgets)]
    assert all(cost[i] <= b for i, b in zip(picks, budgets))
    adaptive = _regret(acc, cost, picks, budgets)
    # The same number of random queries, over several draws, does worse.
    rand = [_regret(acc, cost, random_search(table, acc, cost, budgets, queries=len(model.known), seed=s), budgets)
            for s in range(5)]
    assert adaptive < min(rand), (adaptive, rand)


def test_unmeasured_accuracy_is_discounted(trained):
    table, acc, cost, model = trained
    saved = model.acc_discount
    try:
        model.acc_discount = 1000.0  # no prediction can beat a measurement
        pick = model.select(UNSEEN_BUDGETS[0], seed=2, include_known=True)
        assert pick["measured"] and tuple(pick["row"]) in model.known
        assert pick["predicted_acc"] == model.known[tuple(pick["row"])][0]
    finally:
        model.acc_discount = saved


def test_verified_picks_are_measured_within_budget_and_count_their_queries(trained):
    import copy
    import dataclasses

    from budgetnas.methods.nag.training import table_oracle
    from budgetnas.methods.nag.verify import verified_select

    table, acc, cost, model = trained
    m = copy.copy(model)
    m.known = dict(model.known)
    m.settings = dataclasses.replace(model.settings, select_samples=300, select_temperature=2.0)
    oracle = table_oracle(table, acc, cost)
    regret = []
    for k, b in enumerate(TRAIN_BUDGETS + UNSEEN_BUDGETS):
        before = len(m.known)
        pick = verified_select(m, b, oracle, count=5, seed=k)
        assert pick["verified"] == len(m.known) - before <= 5
        i = table.index_of(pick["row"])
        assert pick["measured"] and cost[i] <= b
        regret.append(front(acc, cost, b) - acc[i])
    assert np.mean(regret) < 0.6, regret
    assert len(model.known) == 400  # the original model's revealed rows are untouched


def test_baselines_against_an_oracle_spend_exactly_their_queries(trained):
    from budgetnas.methods.nag.per_budget import evolve_space, random_search_space

    table, acc, cost, _ = trained
    calls = []

    def measure(row):
        calls.append(row)
        i = table.index_of(row)
        return float(acc[i]), float(cost[i])

    budgets = TRAIN_BUDGETS
    picks, results = random_search_space(table.space, measure, budgets, queries=100, seed=0)
    assert len(results) == len(calls) == 100
    assert all(results[p][1] <= b for p, b in zip(picks, budgets))
    calls.clear()
    pick, results = evolve_space(table.space, measure, 9.0, queries=120, seed=0)
    assert len(results) == len(calls) == 120 and results[pick][1] <= 9.0


def test_quantile_budgets():
    from budgetnas.methods.nag.options import budget_text
    from budgetnas.methods.nag.settings import resolve_budgets

    costs = np.arange(1, 101, dtype=float)
    assert resolve_budgets(["q50", "7", "q0", "q100"], costs) == [50.5, 7.0, 1.0, 100.0]
    assert budget_text(" Q10 ") == "q10" and budget_text(3) == "3.0"
    for bad in ("q101", "q-1", "0", "-2", "cheap", "nan", True):
        with pytest.raises(ValueError):
            budget_text(bad)
