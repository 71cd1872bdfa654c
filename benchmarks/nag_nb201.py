"""NAG on NAS-Bench-201 (CIFAR-10): regret to the true front with 1,000 revealed rows.

For each cost (four measured latencies, our MACs): 10 budgets at the 5%..95% cost quantiles of
the revealed rows; the generator trains on budgets 1, 3, 5, 7, 9 and is also asked 2, 4, 6, 8, 10
(never seen). Regret = best accuracy within the budget over all 15,625 rows minus the pick's
true accuracy (percentage points); an over-budget pick counts as infeasible. Baselines get 1,000
table queries too (evolution and reward shaping: 100 per budget).

    .venv/bin/python benchmarks/nag_nb201.py [--iterations 3000] [--threads 2] [--quick]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from budgetnas.methods.nag.baselines import per_budget, random_search  # noqa: E402
from budgetnas.methods.nag.nag import NAGModel, Settings  # noqa: E402
from budgetnas.methods.nag.table import load_table, nb201_costs  # noqa: E402

CSV = ROOT.parent / "shared" / "data" / "nasbench201" / "nb201_cifar10.csv"
COSTS = ["latency_ms_eyeriss", "latency_ms_fpga", "latency_ms_xeon_gold_6226", "latency_ms_titan_rtx_b1", "macs"]
REVEAL = 1000


def score(idx, budgets, acc, cost):
    regret, feasible = [], []
    for i, b in zip(idx, budgets):
        ok = cost[i] <= b
        feasible.append(ok)
        regret.append(acc[cost <= b].max() - acc[i])
    return np.array(regret), np.array(feasible)


def run_cost(table, column, args, rng_seed):
    acc, cost = table.column("cifar10_test_acc"), table.column(column)
    revealed = np.sort(np.random.default_rng(rng_seed).choice(len(table), REVEAL, replace=False))
    budgets = list(np.quantile(cost[revealed], np.linspace(0.05, 0.95, 10)))
    train_budgets = budgets[0::2]
    exact = (lambda rows: nb201_costs(rows, table.config)[column]) if column == "macs" else None
    settings = Settings(iterations=args.iterations, train_budgets=train_budgets, seed=rng_seed)
    t0 = time.time()
    model = NAGModel.fit(table.space, table.rows[revealed], acc[revealed], cost[revealed], settings,
                         exact_cost=exact)
    t1 = time.time()
    for it in range(settings.iterations):
        model.train_step(it)
    t2 = time.time()
    results = {}
    for name, extra in (("NAG (generated)", None), ("NAG (generated + table rows)", table.rows[revealed])):
        idx, ms = [], []
        for k, b in enumerate(budgets):
            s = time.perf_counter()
            pick = model.select(b, seed=k, extra=extra)
            ms.append((time.perf_counter() - s) * 1000)
            idx.append(table.index_of(pick["row"]))
        results[name] = (idx, float(np.median(ms)))
    results["random search"] = (random_search(table, acc, cost, budgets, queries=REVEAL, seed=rng_seed), None)
    for method, label in (("evolution", "regularized evolution"), ("mnasnet", "MnasNet reward"),
                          ("tunas", "TuNAS reward")):
        results[label] = (per_budget(method, table, acc, cost, budgets, queries=REVEAL, seed=rng_seed), None)
    rows = {}
    for name, (idx, ms) in results.items():
        regret, feasible = score(idx, budgets, acc, cost)
        unseen = np.arange(10) % 2 == 1
        rows[name] = {"mean": regret.mean(), "worst": regret.max(), "mean_unseen": regret[unseen].mean(),
                      "feasible": feasible.mean(), "ms": ms, "picks": idx}
    return {"rows": rows, "budgets": budgets, "fit_s": t1 - t0, "train_s": t2 - t1, "acc": acc, "cost": cost}


def plot(column, res, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc, cost = res["acc"], res["cost"]
    order = np.argsort(cost)
    best = np.maximum.accumulate(acc[order])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.scatter(cost, acc, s=2, color="#cccccc", label="all 15,625 cells")
    ax.step(cost[order], best, where="post", color="black", linewidth=1, label="true front")
    for name, marker, color in (("NAG (generated)", "o", "#1f77b4"), ("NAG (generated + table rows)", "s", "#2ca02c"),
                                ("random search", "x", "#d62728"), ("regularized evolution", "^", "#ff7f0e")):
        idx = res["rows"][name]["picks"]
        ax.scatter(cost[idx], acc[idx], marker=marker, s=36, facecolors="none" if marker in "os^" else color,
                   edgecolors=color if marker in "os^" else None, color=color, label=name, zorder=5)
    for b in res["budgets"]:
        ax.axvline(b, color="#999999", linewidth=0.4, linestyle=":")
    ax.set_ylim(max(80, acc.min()), acc.max() + 0.5)
    ax.set_xlabel(column)
    ax.set_ylabel("CIFAR-10 test accuracy (%)")
    ax.set_title(f"NAS-Bench-201: picks per budget ({column})")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--iterations", type=int, default=3000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--costs", default=",".join(COSTS))
    p.add_argument("--out", default=str(ROOT / "docs" / "bench_nag.md"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    table = load_table(CSV)
    machine = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout.strip()
    lines = ["# NAG benchmark: NAS-Bench-201 (CIFAR-10)", "",
             f"Command: `.venv/bin/python benchmarks/nag_nb201.py --iterations {args.iterations} "
             f"--threads {args.threads} --seed {args.seed}`  ",
             f"Machine: {machine.split(':', 1)[-1].strip()}, {args.threads} threads; date "
             f"{_dt.date.today().isoformat()}; torch {torch.__version__}.", "",
             f"{REVEAL} random rows revealed for training (seed {args.seed}); 10 budgets at the 5-95% cost "
             "quantiles of those rows; the generator trains on budgets 1,3,5,7,9 and answers 2,4,6,8,10 "
             "unseen. Regret in percentage points of CIFAR-10 test accuracy against the best feasible "
             "cell of all 15,625. Baselines: {REVEAL} table queries each (evolution and reward shaping: "
             "100 per budget). 'NAG (generated)' picks only among generated architectures (predicted "
             "accuracy; the measured value where the architecture is a revealed row); '+ table rows' also "
             "considers the revealed rows. MACs are computed by our cost model, so their picks are "
             "always feasible.".replace("{REVEAL}", str(REVEAL)), ""]
    for column in args.costs.split(","):
        res = run_cost(table, column, args, args.seed)
        img = ROOT / "docs" / "img" / f"nag_{column}.png"
        img.parent.mkdir(parents=True, exist_ok=True)
        plot(column, res, img)
        lines += [f"## {column}", "",
                  f"Predictors + evaluator fit: {res['fit_s']:.1f} s; generator training "
                  f"({args.iterations} iterations): {res['train_s']:.1f} s.", "",
                  "| method | mean regret | worst regret | mean regret, unseen budgets | feasible | ms per budget |",
                  "|---|---|---|---|---|---|"]
        for name, r in res["rows"].items():
            ms = f"{r['ms']:.1f}" if r["ms"] is not None else "-"
            lines.append(f"| {name} | {r['mean']:.2f} | {r['worst']:.2f} | {r['mean_unseen']:.2f} | "
                         f"{100 * r['feasible']:.0f}% | {ms} |")
        lines += ["", f"![{column}](img/nag_{column}.png)", ""]
        print("\n".join(lines[-12:]), flush=True)
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
