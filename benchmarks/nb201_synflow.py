"""Would a second training-free score repair the regret of DNA + NASWOT on NAS-Bench-201?

docs/bench_dna.md: DNA + NASWOT (rank mean) ranks the 15,625 cells with Kendall tau 0.716 but
misses the best cell under three of five params budgets by 1.1-2.0 points, partly because NASWOT
cannot tell a 1x1 from a 3x3 convolution. SynFlow (Tanaka et al., "Pruning neural networks without
any data by iteratively conserving synaptic flow", NeurIPS 2020; written here from the paper's
definition) is the sum over parameters of |theta * dR/dtheta| with R the summed output of the
network with |theta| on an all-ones input: it grows with the parameters on live input-output
paths, so it sees kernel size and ignores convolutions on dead edges. This script scores every
cell with it (untrained network at the NASWOT proxy scale, log of the score; cached in --cache
every 1,000 cells, so a killed run continues) and measures it alone and rank-averaged with the
kept DNA ratings and NASWOT scores of each --saved file, with `budgetnas.ranking`.

    OMP_NUM_THREADS=1 python benchmarks/nb201_synflow.py \\
        --saved docs/data/dna_nb201_scores.csv.gz docs/data/dna_nb201_scores_s1.csv.gz
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from budgetnas import ranking  # noqa: E402
from budgetnas.methods.dna.nb201.zero_cost import score_all_cells  # noqa: E402
from budgetnas.spaces.nb201 import NB201Network  # noqa: E402
from dna_ranking import BUDGET_QUANTILES, FULL_SCALE, REACH, cell_costs, combine_scores, saved_scores, truth  # noqa: E402

PROXY = {"in_channels": 3, "num_classes": 10, "input_size": 16, "C": 8, "cells_per_stage": 1}


def synflow(cell: str, config: dict = PROXY, seed: int = 0) -> float:
    """log SynFlow of the untrained network with `cell` everywhere (float64, BatchNorm at its
    initial statistics); -inf when no parameter lies on a path from input to output."""
    torch.manual_seed(seed)
    net = NB201Network(config, cell).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    size = config["input_size"]
    net(torch.ones(1, config["in_channels"], size, size, dtype=torch.float64)).sum().backward()
    total = sum(float((p.detach() * p.grad).abs().sum()) for p in net.parameters() if p.grad is not None)
    return math.log(total) if total > 0 else float("-inf")


def all_synflow(path: Path) -> np.ndarray:
    """SynFlow of every cell in `all_cells()` order, cached in `path` every 1,000 cells."""
    scores, seconds = score_all_cells(lambda: synflow, path, {"score": "synflow", "config": PROXY}, save_every=1000)
    print(f"synflow: {len(scores)} cells, {seconds:.0f} s in all", flush=True)
    return scores


def rows(dna: np.ndarray, naswot: np.ndarray, syn: np.ndarray) -> dict[str, np.ndarray]:
    return {"synflow": syn, "DNA + NASWOT": ranking.rank_mean(dna, naswot),
            "DNA + synflow": ranking.rank_mean(dna, syn), "NASWOT + synflow": ranking.rank_mean(naswot, syn),
            "DNA + NASWOT + synflow": ranking.rank_mean(dna, naswot, syn)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--saved", type=Path, nargs="+", required=True, help="kept dna_ranking.py score files")
    p.add_argument("--table", type=Path, default=ROOT.parent / "shared/data/nasbench201/nb201_cifar10.csv")
    p.add_argument("--cache", type=Path, default=ROOT / ".cache" / "nb201_synflow.json")
    a = p.parse_args()
    torch.set_num_threads(1)
    syn, acc = all_synflow(a.cache), truth(a.table)
    params = cell_costs(FULL_SCALE)["params"]
    budgets = [float(np.quantile(params, q)) for q in BUDGET_QUANTILES]
    print("| scores | score | Kendall tau | within-bin tau | top-5 % | regret @ " +
          " / ".join(f"{b / 1000:.0f}k" for b in budgets) + " |\n|---|---|---|---|---|---|")
    for saved in a.saved:
        blocks, naswot = saved_scores(saved)
        for name, score in rows(-combine_scores(blocks), naswot, syn).items():
            r = ranking.ranking_report(score, acc, params, budgets=budgets, reach=REACH)
            print(f"| {saved.name} | {name} | {r['kendall_tau']:.3f} | {r['within_bin_tau']:.3f} | "
                  f"{r['top_precision']:.3f} | " + " / ".join(f"{x['regret']:.2f}" for x in r["picks"]) + " |")


if __name__ == "__main__":
    main()
