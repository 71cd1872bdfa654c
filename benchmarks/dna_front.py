"""Benchmark: the whole DNA front for 6 blocks x 1,296 candidates (synthetic ratings).

Costs are real: per-layer params / MACs of the 224 px ImageNet MBConv space (ops MB{3,6} x
k{3,5,7}, 4 layers per block -> 6^4 = 1,296 candidates), from the per-layer cost table.
Scores are synthetic: per-op effects + noise, so larger ops tend to score better.
Compared with a depth-first branch-and-bound over score-sorted candidate lists (the original's
approach), one budget at a time, stopped after a time limit.

Usage: OMP_NUM_THREADS=2 python benchmarks/dna_front.py [--dfs-seconds 20] [--write docs/bench_dna.md]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import platform
import subprocess
import sys
import time

import numpy as np

from budgetnas.cost.mbconv import MBConvCosts as CostTable, stage_cost, stage_sizes
from budgetnas.methods.dna.pareto import BlockCandidates, merge_fronts
from budgetnas.methods.dna.options import DEFAULT_OPS
from budgetnas.methods.dna.supernet import parse_ops
from budgetnas.spaces.mbconv import CONFIG_DEFAULTS

WIDTHS = [24, 40, 80, 112, 192, 320]


def synthetic_blocks(metric: str, seed: int = 0):
    cfg = {**CONFIG_DEFAULTS, "input_size": 224, "num_classes": 1000}
    table = CostTable(metric)
    ops = parse_ops(DEFAULT_OPS)
    rng = np.random.default_rng(seed)
    sizes = stage_sizes(cfg)
    blocks, c_in = [], cfg["first_channels"]
    for i, width in enumerate(WIDTHS):
        effect = rng.normal(0, 0.05, (4, len(ops))) - 0.02 * np.array([o.expansion + o.kernel / 3 for o in ops])
        cost, score = [], []
        for path in itertools.product(range(len(ops)), repeat=4):
            stage = {"channels": width, "layers": [ops[j].layer(True) for j in path]}
            cost.append(stage_cost(table, cfg, stage, c_in, cfg["strides"][i], sizes[i]))
            score.append(1.0 + sum(effect[l, j] for l, j in enumerate(path)) + rng.normal(0, 0.01))
        blocks.append(BlockCandidates(cost, score))
        c_in = width
    fixed = table.fixed_start(cfg) + table.fixed_end(cfg, WIDTHS[-1], sizes[-1])
    return blocks, fixed


def dfs_best(blocks, budget: float, fixed: float, time_limit: float):
    """Depth-first branch and bound over score-sorted lists; (score, cost, nodes, finished)."""
    orders = [np.argsort(b.score, kind="stable") for b in blocks]
    min_cost_rest = np.concatenate([np.cumsum([b.cost.min() for b in blocks][::-1])[::-1], [0.0]])
    min_score_rest = np.concatenate([np.cumsum([b.score.min() for b in blocks][::-1])[::-1], [0.0]])
    best = [np.inf, None]
    nodes = 0
    deadline = time.perf_counter() + time_limit

    def walk(i: int, cost: float, score: float) -> bool:
        nonlocal nodes
        if i == len(blocks):
            if score < best[0]:
                best[:] = [score, cost]
            return True
        block = blocks[i]
        for j in orders[i]:
            nodes += 1
            if nodes % 4096 == 0 and time.perf_counter() > deadline:
                return False
            s = score + block.score[j]
            if s + min_score_rest[i + 1] >= best[0]:
                break  # sorted by score: no later candidate can do better
            c = cost + block.cost[j]
            if c + min_cost_rest[i + 1] > budget:
                continue
            if not walk(i + 1, c, s):
                return False
        return True

    finished = walk(0, fixed, 0.0)
    return best[0], best[1], nodes, finished


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dfs-seconds", type=float, default=20.0)
    parser.add_argument("--write", default=None)
    args = parser.parse_args()
    lines = []
    for metric in ("params", "macs"):
        blocks, fixed = synthetic_blocks(metric)
        start = time.perf_counter()
        front = merge_fronts(blocks, fixed_cost=fixed)
        merge_s = time.perf_counter() - start
        budgets = np.linspace(front.cost[0], front.cost[-1], 1000)
        start = time.perf_counter()
        picks = [front.best_index(b) for b in budgets]
        query_s = time.perf_counter() - start
        block_fronts = [len(np.unique(b.cost)) for b in blocks]
        lines.append(f"| {metric} | {sum(len(b.cost) for b in blocks)} | {len(front)} | "
                     f"{merge_s:.3f} s | {query_s * 1000:.1f} ms for 1000 budgets |")
        print(f"{metric}: front {len(front)} points in {merge_s:.3f}s; 1000 budgets in {query_s:.4f}s "
              f"(distinct block costs {block_fronts})")
        for q in (0.25, 0.5, 0.75):
            budget = float(np.quantile(front.cost, q))
            score, cost, nodes, finished = dfs_best(blocks, budget, fixed, args.dfs_seconds)
            k = front.best_index(budget)
            agree = "agrees" if finished and np.isclose(score, front.score[k]) else \
                ("disagrees" if finished else "unfinished")
            lines.append(f"| {metric} DFS, budget at front quantile {q} | | | "
                         f"{'finished' if finished else 'stopped at ' + str(args.dfs_seconds) + ' s'}, "
                         f"{nodes:,} nodes | best so far {score:.4f} vs exact {front.score[k]:.4f} ({agree}) |")
            print(lines[-1])
        del picks
    if args.write:
        write_doc(args.write, lines, " ".join(sys.argv))


def machine() -> str:
    try:
        name = [l for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                if "Model name" in l][0].split(":", 1)[1].strip()
    except (OSError, IndexError):
        name = platform.processor()
    import os

    return f"{name}, {os.cpu_count()} cores"


def write_doc(path: str, lines: list[str], command: str) -> None:
    from pathlib import Path

    from dna_doc import replace_section

    body = "\n".join([
        f"Command: `OMP_NUM_THREADS=2 python {command}`  ",
        f"Machine: {machine()}; date: {_dt.date.today().isoformat()}", "",
        "| case | candidates | front points | time | answers |", "|---|---|---|---|---|", *lines, ""])
    replace_section(Path(path), "Exact front: 6 blocks x 1,296 candidates", body)


if __name__ == "__main__":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    main()
