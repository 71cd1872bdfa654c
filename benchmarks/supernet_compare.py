"""Step 5 of supernet_digits.py: NAG's generated-only picks against random search and per-budget
regularized evolution, every method with the same number of subnet evaluations."""
from __future__ import annotations

import numpy as np


def regret_rows(picks: list[dict], sample: dict) -> list[float]:
    """Per pick: best held-out accuracy of the sample within the budget minus the pick's (in
    accuracy points, x100); negative = the pick beats every sampled subnet within the budget."""
    acc, cost = np.array(sample["val_acc"]), np.array(sample["cost"])
    out = []
    for p in picks:
        feasible = cost <= p["budget"]
        out.append(100 * (float(acc[feasible].max()) - p["val_acc"]) if feasible.any() else None)
    return out


def _score(picks: list[tuple], budgets: list[float], evals, sample: dict) -> dict:
    rows = [{"budget": b, "val_acc": evals(r), "cost": float(evals.source.cost(np.array([r]))[0])}
            for r, b in zip(picks, budgets)]
    regret = regret_rows(rows, sample)
    return {"regret": regret, "mean_regret": float(np.mean(regret)),
            "feasible": all(r["cost"] <= r["budget"] for r in rows), "val_acc": [r["val_acc"] for r in rows]}


def compare_seed(a, seed: int, source, evals, sample: dict, generated: dict) -> dict:
    from budgetnas.methods.nag.files import load_model
    from budgetnas.methods.nag.per_budget import evolve_space, random_search_space
    from budgetnas.methods.nag.verify import verified_select

    budgets = [p["budget"] for p in generated["picks"]]
    model = load_model(a.cache / f"generate-s{seed}" / "generator.json", source.space)
    model.exact_cost = source.cost
    trained = len(model.known)

    def oracle(rows):
        rows = np.asarray(rows)
        return np.ones(len(rows), bool), np.array([evals(r) for r in rows]), source.cost(rows)

    verify = max(1, (a.queries - trained) // len(budgets))
    picks: list[tuple] = [()] * len(budgets)
    for k in sorted(range(len(budgets)), key=lambda i: budgets[i]):
        pick = verified_select(model, budgets[k], oracle, count=verify, seed=seed + k, include_known=False,
                               require_measured=True)
        picks[k] = tuple(pick["row"])
    used = len(model.known)
    out = {"budgets": budgets, "evaluations": {"nag": used}, "NAG, generated only": _score(picks, budgets, evals, sample)}
    rs, results = random_search_space(source.space, evals.measure, budgets, queries=a.queries, seed=seed)
    out["random search"] = _score(rs, budgets, evals, sample)
    out["evaluations"]["random search"] = len(results)
    each, evo, count = a.queries // len(budgets), [], 0
    for k, b in enumerate(budgets):
        pick, results = evolve_space(source.space, evals.measure, b, queries=each, seed=seed + 7919 * k)
        evo.append(pick)
        count += len(results)
    out["regularized evolution"] = _score(evo, budgets, evals, sample)
    out["evaluations"]["regularized evolution"] = count
    evals.save()
    return out
