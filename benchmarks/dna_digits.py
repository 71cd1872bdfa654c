"""Benchmark: DNA end to end on digits with a teacher trained by the tool; rating quality.

1. `budgetnas search dna --dataset digits --teacher train ...` (teacher, block training, rating of
   every candidate, exact front);
2. networks: points spread over the front plus random networks of the space (one random rated
   candidate per block), at least 8 in all;
3. every network retrained with the same recipe on the search-training split; accuracy on the
   held-out split (val) and on the test split;
4. Kendall tau between the networks' summed block scores (lower = better, so negated) and their
   accuracies.

Usage: OMP_NUM_THREADS=1 python benchmarks/dna_digits.py [--networks 12] [--epochs 15]
       [--write docs/bench_dna.md]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import random
import sys
import time
from pathlib import Path

import torch

from budgetnas.arch import Arch, build_model, load_arch
from budgetnas.cli import main as cli_main
from budgetnas.cost import count_params
from budgetnas.data import load_dataset
from budgetnas.io import load_safetensors
from budgetnas.methods.dna.options import DEFAULT_OPS
from budgetnas.methods.dna.supernet import CellSpec, parse_ops, stage_genotype
from budgetnas.methods.dna.teacher import without_val
from budgetnas.ranking import kendall_tau  # scipy's tau-b
from budgetnas.train.recipes import RECIPES
from budgetnas.train.loop import evaluate
from budgetnas.train.trainer import train_model

sys.path.insert(0, str(Path(__file__).parent))
from dna_doc import replace_section  # noqa: E402
from dna_front import machine  # noqa: E402


def pick_networks(run: Path, count: int, seed: int) -> list[tuple[str, dict, float]]:
    """(label, genotype, score sum): front points spread evenly + random networks of the space."""
    front = json.loads((run / "front.json").read_text())["points"]
    summary = json.loads((run / "summary.json").read_text())
    n_front = min(len(front), count // 2)
    idx = sorted({round(i * (len(front) - 1) / max(n_front - 1, 1)) for i in range(n_front)})
    chosen = [(f"front[{i}]", front[i]["genotype"], front[i]["score"]) for i in idx]
    ops = parse_ops(DEFAULT_OPS)
    cells = [[CellSpec(int(name[1:].split("w")[0]), int(name.split("w")[1])) for name in block]
             for block in summary["cells"]]
    ratings = [json.loads((run / f"round0/block{i}/ratings.json").read_text())["candidates"]
               for i in range(summary["blocks"])]
    rng = random.Random(seed)
    seen = {json.dumps(g, sort_keys=True) for _, g, _ in chosen}
    while len(chosen) < count:
        rows = [rng.choice(r) for r in ratings]
        genotype = {"stages": [stage_genotype(cells[i][row["cell"]], tuple(row["path"]), ops, se=True)
                               for i, row in enumerate(rows)]}
        key = json.dumps(genotype, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        score = 0.0
        for row in rows:  # same summation order as the search
            score += row["score"]
        chosen.append((f"random{len(chosen)}", genotype, score))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="/tmp/bench-dna-digits")
    parser.add_argument("--networks", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=15, help="retraining epochs per network")
    parser.add_argument("--block-epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1, help="retraining seeds averaged per network")
    parser.add_argument("--write", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    search_cmd = ["search", "dna", "--dataset", "digits", "--teacher", "train", "--teacher-epochs", "15",
                  "--epochs", str(args.block_epochs), "--lr", "0.01", "--target-params", "40000",
                  "--final-epochs", "0", "--seed", str(args.seed), "--out", str(out / "search")]
    if not (out / "search" / "summary.json").is_file():
        code = cli_main(search_cmd)
        assert code == 0, code
    summary = json.loads((out / "search" / "summary.json").read_text())
    search_s = summary["search_seconds"]  # as recorded by the search (also when reused from cache)
    dataset = load_dataset("digits")
    train_only = without_val(dataset)
    cfg = load_arch(out / "search" / "arch.json").config
    recipe = RECIPES["quick"].model_copy(update={"epochs": args.epochs, "auxiliary_weight": 0.0})
    rows = []
    t0 = time.perf_counter()
    for k, (label, genotype, score) in enumerate(pick_networks(out / "search", args.networks, args.seed)):
        arch = Arch("mbconv", cfg, genotype)
        val, test = [], []
        for seed in range(args.seed, args.seed + args.seeds):
            directory = out / "retrain" / f"net{k}-e{args.epochs}-s{seed}"
            if not (directory / "model.safetensors").is_file():
                train_model(arch, train_only, directory, recipe, seed=seed, progress=False)
            model = build_model(arch)
            model.load_state_dict(load_safetensors(directory / "model.safetensors"))
            val.append(evaluate(model, dataset, dataset.val, torch.device("cpu")))
            test.append(evaluate(model, dataset, dataset.test, torch.device("cpu")))
        rows.append({"label": label, "score": score, "params": count_params(model),
                     "val_acc": sum(val) / len(val), "test_acc": sum(test) / len(test),
                     "network": " / ".join(",".join(f"e{l['expansion']}k{l['kernel']}" for l in s["layers"])
                                           for s in genotype["stages"])})
        print(rows[-1])
    retrain_s = time.perf_counter() - t0
    neg = [-r["score"] for r in rows]
    tau_val = kendall_tau(neg, [r["val_acc"] for r in rows])
    tau_test = kendall_tau(neg, [r["test_acc"] for r in rows])
    tau_params = kendall_tau(neg, [float(r["params"]) for r in rows])
    print(f"kendall tau: val {tau_val:.3f}, test {tau_test:.3f} (score vs params {tau_params:.3f}); "
          f"search {search_s:.0f}s, retraining {retrain_s:.0f}s")
    if args.write:
        table = ["| network | score sum | params | val acc | test acc | layers per stage |",
                 "|---|---|---|---|---|---|"] + [
            f"| {r['label']} | {r['score']:.4f} | {r['params']} | {r['val_acc']:.4f} | {r['test_acc']:.4f} | "
            f"{r['network']} |" for r in rows]
        body = "\n".join([
            f"Command: `OMP_NUM_THREADS=1 python benchmarks/dna_digits.py {' '.join(sys.argv[1:])}`  ",
            f"Machine: {machine()}; date: {_dt.date.today().isoformat()}", "",
            f"Search: `budgetnas {' '.join(search_cmd)}` — {search_s:.0f} s (teacher test accuracy "
            f"{json.loads((out / 'search/round0/teacher/metrics.json').read_text())['test_acc']:.4f}; "
            f"{summary['candidates_per_block']} candidates per block, cells {summary['cells']}).",
            f"Retraining: {len(rows)} networks, `quick` recipe, {args.epochs} epochs, accuracy averaged "
            f"over {args.seeds} seed(s), trained on the search-training split — {retrain_s:.0f} s.", "",
            f"**Kendall tau (negated score sum vs accuracy): held-out val {tau_val:.3f}, test {tau_test:.3f}** "
            f"(score sum vs params: {tau_params:.3f}).", "", *table, ""])
        replace_section(Path(args.write), f"Rating quality on digits: {len(rows)} networks, {args.epochs} "
                        f"retraining epochs x {args.seeds} seed(s)", body)


if __name__ == "__main__":
    main()
