"""NAG on NAS-Bench-201 (CIFAR-10): regret to the true front with 1,000 table queries.

For each cost (four measured latencies, our MACs): 10 budgets at the 5%..95% cost quantiles of
the first 400 (random) revealed rows; the generator trains on budgets 1, 3, 5, 7, 9 and is also
asked 2, 4, 6, 8, 10 (never seen). NAG reveals 400 random rows, then 500 more in 3 query rounds
chosen from its own generator (the best predicted architectures across the budget range, not the
test budgets), and keeps 10 queries per budget to verify its picks: the 10 best predicted of
1,000 generated candidates (temperature 2) not yet revealed are revealed, the best measured one
is the pick. 'NAG, generated only' picks among the generated candidates alone (no revealed row
competes); the paper's selection (200 candidates, temperature 1, judged by the predictor alone)
is shown with the 900 queries it used. Regret = best accuracy within the budget over all 15,625
rows minus the pick's true accuracy (percentage points); an over-budget pick counts as
infeasible. Every other method reveals exactly 1,000 distinct rows (asserted): random search
1,000 random rows, evolution and reward shaping 100 per budget; 'NAG, 1,000 random rows' is the
non-adaptive variant.

    .venv/bin/python benchmarks/nag_nb201.py [--iterations 3000] [--threads 2] [--seeds 0,1,2] [--costs macs]

Each finished (seed, cost) run is kept in docs/data/nag_nb201.json; started again, the benchmark
runs only what is missing there and writes the page from the kept runs.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime as _dt
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from budgetnas.cost.nb201 import nb201_costs  # noqa: E402
from budgetnas.io import atomic_write, read_json, write_json  # noqa: E402
from budgetnas.methods.nag.model import NAGModel  # noqa: E402
from budgetnas.methods.nag.per_budget import per_budget, random_search  # noqa: E402
from budgetnas.methods.nag.settings import Settings  # noqa: E402
from budgetnas.methods.nag.table import load_table  # noqa: E402
from budgetnas.methods.nag.training import table_oracle, train  # noqa: E402
from budgetnas.methods.nag.verify import verified_select  # noqa: E402

CSV = ROOT.parent / "shared" / "data" / "nasbench201" / "nb201_cifar10.csv"
COSTS = ["latency_ms_eyeriss", "latency_ms_fpga", "latency_ms_xeon_gold_6226", "latency_ms_titan_rtx_b1", "macs"]
QUERIES = 1000       # table rows every method may reveal
INITIAL = 400        # NAG: random rows before the adaptive query rounds
VERIFY = 10          # NAG: queries per budget verifying its picks (reserved out of QUERIES)


def score(idx, budgets, acc, cost):
    regret, feasible = [], []
    for i, b in zip(idx, budgets):
        ok = cost[i] <= b
        feasible.append(ok)
        regret.append(acc[cost <= b].max() - acc[i])
    return np.array(regret), np.array(feasible)


def fit_and_train(table, acc, cost, initial, settings, exact, oracle=None):
    t0 = time.time()
    model = NAGModel.fit(table.space, table.rows[initial], acc[initial], cost[initial], settings,
                         exact_cost=exact)
    fit_s = time.time() - t0
    refit = []  # time spent refitting predictors + evaluator after each query round
    t = {"start": time.time()}

    def on_phase_end(iteration, phase):
        t["end"] = time.time()

    def on_query(iteration, phase):
        refit.append(time.time() - t["end"])

    train(model, oracle, on_phase_end=on_phase_end, on_query=on_query)
    total = time.time() - t["start"]
    return model, {"fit_s": fit_s + sum(refit), "train_s": total - sum(refit), "rounds": len(refit)}


def picks_of(model, table, budgets, oracle=None, *, paper=False, **kw):
    """Picks of a copy of `model` (its revealed rows are not changed): verified when an oracle is
    given, else the paper's selection (200 candidates at temperature 1 when `paper`). Returns
    (rows, median ms per budget, rows revealed in all)."""
    model = copy.copy(model)
    model.known = dict(model.known)
    if paper:
        model.settings = dataclasses.replace(model.settings, select_samples=200, select_temperature=1.0)
    idx, ms = [], []
    for k, b in enumerate(budgets):
        s = time.perf_counter()
        if oracle is None:
            pick = model.select(b, seed=k, **kw)
        else:
            pick = verified_select(model, b, oracle, count=VERIFY, seed=k, **kw)
        ms.append((time.perf_counter() - s) * 1000)
        idx.append(table.index_of(pick["row"]))
    return idx, float(np.median(ms)), len(model.known)


def run_cost(table, column, args, rng_seed):
    acc, cost = table.column("cifar10_test_acc"), table.column(column)
    order = np.random.default_rng(rng_seed).permutation(len(table))
    initial = np.sort(order[:INITIAL])
    budgets = list(np.quantile(cost[initial], np.linspace(0.05, 0.95, 10)))
    train_budgets = budgets[0::2]
    exact = (lambda rows: nb201_costs(rows, table.config)[column]) if column == "macs" else None
    queries = {"n": 0}
    base_oracle = table_oracle(table, acc, cost)

    def oracle(rows):  # counts every row revealed to NAG
        found, a, c = base_oracle(rows)
        queries["n"] += int(found.sum())
        return found, a, c

    training = QUERIES - VERIFY * len(budgets)
    settings = Settings(iterations=args.iterations, train_budgets=train_budgets, seed=rng_seed,
                        query_budget=training, select_samples=1000, select_temperature=2.0)
    model, times = fit_and_train(table, acc, cost, initial, settings, exact, oracle)
    revealed = INITIAL + queries["n"]
    assert revealed == len(model.known) == training, (revealed, len(model.known))
    results = {"NAG (adaptive queries + verification)": picks_of(model, table, budgets, oracle, include_known=True),
               "NAG, generated only (+ verification)": picks_of(model, table, budgets, oracle),
               "NAG, generated only, paper's selection": picks_of(model, table, budgets, paper=True)}
    if args.ablation:
        plain = Settings(iterations=args.iterations, train_budgets=train_budgets, seed=rng_seed)
        rows = np.sort(order[:QUERIES])
        model2, times2 = fit_and_train(table, acc, cost, rows, plain, exact)
        assert len(model2.known) == QUERIES
        results["NAG, 1,000 random rows"] = picks_of(model2, table, budgets, include_known=True)
    picks, n = random_search(table, acc, cost, budgets, queries=QUERIES, seed=rng_seed, return_queries=True)
    results["random search"] = (picks, None, n)
    for method, label in (("evolution", "regularized evolution"), ("mnasnet", "MnasNet reward"),
                          ("tunas", "TuNAS reward")):
        picks, n = per_budget(method, table, acc, cost, budgets, queries=QUERIES, seed=rng_seed,
                              return_queries=True)
        results[label] = (picks, None, n)
    rows = {}
    for name, (idx, ms, n) in results.items():
        assert n == QUERIES or name.endswith("paper's selection"), (name, n)
        regret, feasible = score(idx, budgets, acc, cost)
        unseen = np.arange(10) % 2 == 1
        rows[name] = {"mean": float(regret.mean()), "worst": float(regret.max()),
                      "mean_unseen": float(regret[unseen].mean()), "feasible": float(feasible.mean()), "ms": ms,
                      "picks": [int(i) for i in idx], "queries": int(n)}
    return {"rows": rows, "budgets": [float(b) for b in budgets], **times,
            "discount": float(model.acc_discount), "margin": float(model.margin)}


def kept_runs(path: Path, settings: dict) -> dict:
    """Finished (seed, cost) runs kept in the repository, valid for one set of settings."""
    kept = read_json(path) if path.is_file() else {}
    return kept if kept.get("settings") == settings else {"settings": settings, "runs": {}}


def seed_cost(table, column, args, seed: int, kept: dict) -> dict:
    """One (seed, cost) run, from `kept` when it is there, else run and kept at once."""
    key = f"{seed}/{column}"
    if key not in kept["runs"]:
        kept["runs"][key] = run_cost(table, column, args, seed)
        write_json(args.keep, kept)
    return kept["runs"][key]


def plot(column, res, acc, cost, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort(cost)
    best = np.maximum.accumulate(acc[order])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.scatter(cost, acc, s=2, color="#cccccc", label="all 15,625 cells")
    ax.step(cost[order], best, where="post", color="black", linewidth=1, label="true front")
    for name, marker, color in (("NAG (adaptive queries + verification)", "o", "#1f77b4"),
                                ("NAG, generated only (+ verification)", "s", "#2ca02c"),
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


def _mean(values: list[float], spread: bool) -> str:
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}" if spread else f"{values[0]:.2f}"


def cost_section(column: str, runs: list[dict], seeds: list[int]) -> list[str]:
    """One cost: every method's regret, averaged over the seeds, and the first seed's picks drawn."""
    r0 = runs[0]
    lines = [f"## {column}", "",
             f"Predictors + evaluator fits (initial + {r0['rounds']} refits): {r0['fit_s']:.1f} s; generator "
             f"training: {r0['train_s']:.1f} s; accuracy discount {r0['discount']:.2f} pp, cost margin "
             f"{r0['margin']:.3f} (log); seed {seeds[0]}" + (f", mean over seeds {','.join(map(str, seeds))} "
                                                           "in the table" if len(seeds) > 1 else "") + ".", "",
             "| method | table queries | mean regret | worst regret | mean regret, unseen budgets | "
             "feasible | ms per budget |", "|---|---|---|---|---|---|---|"]
    for name, r in r0["rows"].items():
        rows = [run["rows"][name] for run in runs]
        ms = f"{np.mean([x['ms'] for x in rows]):.1f}" if r["ms"] is not None else "-"
        lines.append(f"| {name} | {r['queries']} | {_mean([x['mean'] for x in rows], len(runs) > 1)} | "
                     f"{max(x['worst'] for x in rows):.2f} | {np.mean([x['mean_unseen'] for x in rows]):.2f} | "
                     f"{100 * np.mean([x['feasible'] for x in rows]):.0f}% | {ms} |")
    return lines + ["", f"![{column}](img/nag_{column}.png)", ""]


NAG, GEN, RANDOM, EVO = ("NAG (adaptive queries + verification)", "NAG, generated only (+ verification)",
                         "random search", "regularized evolution")


def summary_rows(column: str, runs: list[dict]) -> tuple[str, str]:
    """The cost's line of the summary table and of the paired-difference table."""
    mean = {name: [run["rows"][name]["mean"] for run in runs] for name in runs[0]["rows"]}
    spread = len(runs) > 1
    others = min(np.mean(v) for n, v in mean.items() if not n.startswith("NAG"))
    feasible = min(run["rows"][n]["feasible"] for run in runs for n in (NAG, GEN))
    met = np.mean(mean[NAG]) < 0.3 and np.mean(mean[NAG]) < others and feasible == 1
    beats = np.mean(mean[GEN]) < min(np.mean(mean[RANDOM]), np.mean(mean[EVO]))
    line = (f"| {column} | {_mean(mean[NAG], spread)} | {_mean(mean[GEN], spread)} | {_mean(mean[RANDOM], spread)} | "
            f"{_mean(mean[EVO], spread)} | {others:.2f} | {100 * feasible:.0f}% | {'yes' if met else 'no'} | "
            f"{'yes' if beats else 'no'} |")
    diff = lambda other: np.subtract(mean[GEN], mean[other])  # noqa: E731
    paired = (f"| {column} | {_mean(list(diff(RANDOM)), spread)} | {sum(diff(RANDOM) < 0)} of {len(runs)} | "
              f"{_mean(list(diff(EVO)), spread)} | {sum(diff(EVO) < 0)} of {len(runs)} |")
    return line, paired


def shown(path: Path) -> str:
    """`path` relative to the repository when it is inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--iterations", type=int, default=3000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seeds", default="0", help="comma list; each seed is a whole run of every method")
    p.add_argument("--costs", default=",".join(COSTS))
    p.add_argument("--no-ablation", dest="ablation", action="store_false",
                   help="skip the non-adaptive NAG variant (1,000 random rows)")
    p.add_argument("--machine", default=None, help="machine description for the report")
    p.add_argument("--out", default=str(ROOT / "docs" / "bench_nag.md"))
    p.add_argument("--keep", type=Path, default=ROOT / "docs" / "data" / "nag_nb201.json",
                   help="finished (seed, cost) runs; a run already there is not run again")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    table = load_table(CSV)
    kept = kept_runs(args.keep, {"iterations": args.iterations, "ablation": args.ablation})
    machine = args.machine or subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True,
                                             text=True).stdout.split(":", 1)[-1].strip()
    lines = ["# NAG benchmark: NAS-Bench-201 (CIFAR-10)", "",
             f"Command: `.venv/bin/python benchmarks/nag_nb201.py --iterations {args.iterations} "
             f"--threads {args.threads} --seeds {args.seeds}`  ",
             f"Machine: {machine}, {args.threads} threads; date {_dt.date.today().isoformat()}; "
             f"torch {torch.__version__}. Finished runs are kept in `{shown(args.keep)}`.", "",
             f"Every method reveals exactly {QUERIES} distinct table rows (asserted). NAG: {INITIAL} random "
             f"rows (seeded), then {QUERIES - INITIAL - 10 * VERIFY} in 3 query rounds proposed by its "
             f"own generator across the budget range, then {VERIFY} per budget verifying its picks (the best "
             "predicted of 1,000 generated candidates at temperature 2 are revealed; the best measured one is "
             "the pick). 'Generated only' picks among the generated candidates alone; the paper's selection "
             "(200 candidates at temperature 1, judged by the predictor, no verification) used 900 rows. 10 "
             "budgets at the 5-95% cost quantiles of the random rows; the generator trains on budgets 1,3,5,7,9 "
             "and answers 2,4,6,8,10 unseen. Regret in percentage points of CIFAR-10 test accuracy against the "
             "best feasible cell of all 15,625" + (f"; mean ± std over seeds {args.seeds}" if len(seeds) > 1 else "")
             + ".", ""]
    summary, paired, header = [], [], len(lines)
    for column in args.costs.split(","):
        runs = [seed_cost(table, column, args, s, kept) for s in seeds]
        img = ROOT / "docs" / "img" / f"nag_{column}.png"
        img.parent.mkdir(parents=True, exist_ok=True)
        plot(column, runs[0], table.column("cifar10_test_acc"), table.column(column), img)
        lines += cost_section(column, runs, seeds)
        print("\n".join(lines[-14:]), flush=True)
        line, pair = summary_rows(column, runs)
        summary.append(line)
        paired.append(pair)
    table_lines = ["| cost | NAG | NAG, generated only | random search | evolution | best baseline | "
                   "NAG feasible | NAG goal met | generated only beats random search and evolution |",
                   "|---|---|---|---|---|---|---|---|---|", *summary, ""]
    if len(seeds) > 1:
        table_lines += ["Paired differences of mean regret, generated only minus the baseline on the same seed "
                        "(negative: generated only is better):", "",
                        "| cost | minus random search | seeds better | minus evolution | seeds better |",
                        "|---|---|---|---|---|", *paired, ""]
    lines[header:header] = table_lines
    write_keeping_supernet_section(Path(args.out), "\n".join(lines) + "\n")


def write_keeping_supernet_section(path: Path, text: str) -> None:
    """Write the NAS-Bench-201 part; a supernet section (benchmarks/supernet_digits.py) stays."""
    old = path.read_text() if path.is_file() else ""
    marker = "<!-- supernet-benchmark:start -->"
    with atomic_write(path, "w") as fh:
        fh.write(text + ("\n" + old[old.index(marker):] if marker in old else ""))


if __name__ == "__main__":
    main()
