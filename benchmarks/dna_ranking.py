"""Benchmark: does DNA rank NAS-Bench-201 cells the way their real accuracy does?

1. `budgetnas search dna --space nb201` on the CIFAR-10 JPEG copy (search-training split only):
   NB201 teacher trained by budgetnas, three block supernets distilled from it, all 15,625 cells
   rated in every block (cached per step in WORK/search/round0: teacher, each block, its ratings);
   or, with `--ratings NAME=PATTERN` (repeatable), per-block scores saved earlier (a `.npy` array or
   a `ratings.json` per block, `{block}` in the pattern), so finished ratings are measured in seconds;
2. ground truth: the table's `cifar10_test_acc` (200-epoch training at full scale);
3. baselines in the same run: params alone, and NASWOT (training-free, `budgetnas.naswot`) on the
   networks built at --naswot-channels/--naswot-cells (cached in WORK/naswot.json every 500 cells);
4. metrics (`budgetnas.ranking`): Kendall tau, Spearman rho, mean tau within 10 equal-count params
   bins, top-5 % precision, the accuracy of each score's pick under 5 params budgets and its regret
   against the table's best under the same budget.
5. combinations (`ranking.rank_mean`, the mean of normalised ranks): DNA + NASWOT, and as their
   control NASWOT + params and DNA + NASWOT + params (does DNA add what the others lack?).
A killed run continues from the cached steps when started again with the same arguments. A
finished run keeps every cell's block ratings and NASWOT score in --keep (committed, gzip CSV), so
`--saved FILE` measures them again on any machine in seconds.

Usage: OMP_NUM_THREADS=1 python benchmarks/dna_ranking.py --data-dir DIR [--write docs/bench_dna.md]
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from budgetnas import ranking
from budgetnas.io import read_json, write_json
from budgetnas.methods.dna.nb201.block import all_cells, cell_index, cell_of_string, string_of_cell
from budgetnas.methods.dna.nb201.search import cell_costs, combine_scores

sys.path.insert(0, str(Path(__file__).parent))
from dna_doc import replace_section  # noqa: E402
from dna_front import machine  # noqa: E402

TITLE = "Ranking NAS-Bench-201 cells (CIFAR-10): DNA vs params vs NASWOT"
FULL_SCALE = {"in_channels": 3, "num_classes": 10, "input_size": 32, "C": 16, "cells_per_stage": 5}
FULL_SCALE_MAX = 1_600_000  # above every cell of the benchmark's network (1,531,546 params)
BUDGET_QUANTILES = (0.1, 0.3, 0.5, 0.7, 1.0)
REACH = (10, 50)  # regret of the best of the k top-rated cells under a budget


ROOT = Path(__file__).resolve().parents[1]
KEEP = ROOT / "docs" / "data" / "dna_nb201_scores.csv.gz"
COLUMNS = ("block0", "block1", "block2", "naswot")


def keep_scores(path: Path, blocks: list[np.ndarray], naswot: np.ndarray) -> None:
    """Every cell's three block ratings (lower is better) and NASWOT score, one gzip CSV row each."""
    import gzip
    import io

    from budgetnas.io import atomic_write

    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(("arch", *COLUMNS))
    for k, cell in enumerate(all_cells()):
        writer.writerow((string_of_cell(cell), *(repr(float(b[k])) for b in blocks), repr(float(naswot[k]))))
    with atomic_write(path) as fh:  # mtime 0: the same scores give the same bytes
        fh.write(gzip.compress(text.getvalue().encode(), mtime=0))


def saved_scores(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """(block ratings, NASWOT) from a --keep file, in `all_cells()` order."""
    import gzip

    columns = {c: np.full(15625, np.nan) for c in COLUMNS}
    with gzip.open(path, "rt", newline="") as fh:
        for row in csv.DictReader(fh):
            k = cell_index(cell_of_string(row["arch"]))
            for c in COLUMNS:
                columns[c][k] = float(row[c])
    if any(np.isnan(v).any() for v in columns.values()):
        raise SystemExit(f"{path}: not every cell has all of {', '.join(COLUMNS)}")
    return [columns[f"block{i}"] for i in range(3)], columns["naswot"]


def combinations(dna: np.ndarray, naswot: np.ndarray, params: np.ndarray) -> dict[str, np.ndarray]:
    return {"DNA + NASWOT (rank mean)": ranking.rank_mean(dna, naswot),
            "NASWOT + params (rank mean)": ranking.rank_mean(naswot, params),
            "DNA + NASWOT + params (rank mean)": ranking.rank_mean(dna, naswot, params)}


def op_effects(cells: np.ndarray, scores: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """What each score values: least-squares change of a cell's rank percentile per edge holding
    each op, relative to an edge holding `none` (cells: op indices, one row per cell). Set beside
    the table's accuracy, it shows which ops a score over- or under-rates."""
    from scipy.stats import rankdata

    from budgetnas.spaces.nb201 import OPS

    counts = np.stack([(cells == op).sum(1) for op in range(1, len(OPS))], 1).astype(np.float64)
    design = np.c_[counts, np.ones(len(cells))]
    out = {}
    for name, score in scores.items():
        coef, *_ = np.linalg.lstsq(design, rankdata(score) / len(score), rcond=None)
        out[name] = [round(float(c), 4) for c in coef[:-1]]
    return out


def search_command(args) -> list[str]:
    return ["search", "dna", "--space", "nb201", "--dataset", "imagefolder", "--data-dir", str(args.data_dir),
            "--image-size", str(args.image_size), "--nb201-channels", str(args.channels),
            "--nb201-cells", "1", "--teacher", "train", "--teacher-epochs", str(args.teacher_epochs),
            "--epochs", str(args.epochs), "--batch-size", "128", "--lr", str(args.lr),
            "--recal-batches", "2", "--rate-batch-size", "128", "--rate-samples", str(args.score_images),
            "--target-params", str(FULL_SCALE_MAX), "--final-epochs", "0", "--threads", str(args.threads),
            "--no-report", "--seed", str(args.seed), "--out", str(args.work / "search")] + args.extra


def truth(table: Path) -> np.ndarray:
    """The table's accuracy in `all_cells()` order."""
    acc = np.full(15625, np.nan)
    with open(table, newline="") as fh:
        for row in csv.DictReader(fh):
            acc[cell_index(cell_of_string(row["arch"]))] = float(row["cifar10_test_acc"])
    if np.isnan(acc).any():
        raise SystemExit(f"{table}: not every NAS-Bench-201 cell has an accuracy")
    return acc


def naswot_scores(args, path: Path) -> tuple[np.ndarray, float]:
    """NASWOT of every cell (network at the NASWOT scale, one fixed batch of training images),
    cached every 500 cells; returns (scores, seconds spent in total)."""
    from budgetnas.data import load_dataset
    from budgetnas.methods.dna.nb201.zero_cost import naswot_cells

    def batch() -> torch.Tensor:
        data = load_dataset("imagefolder", args.data_dir, image_size=args.image_size)
        order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(args.seed))
        return data.normalize(data.train.x[order[:args.naswot_batch]])

    cfg = {"C": args.naswot_channels, "cells_per_stage": args.naswot_cells, "input_size": args.image_size}
    key = {"config": cfg, "batch": args.naswot_batch, "seed": args.seed, "data": str(args.data_dir)}
    return naswot_cells(cfg, batch, args.seed, path, key)


def saved_blocks(pattern: str) -> list[np.ndarray]:
    """Per-block scores (lower is better) from `pattern` with `{block}` = 0, 1, 2."""
    out = []
    for i in range(3):
        path = Path(pattern.format(block=i))
        values = np.load(path) if path.suffix == ".npy" else read_json(path)["score"]
        out.append(np.asarray(values, dtype=np.float64))
        if out[-1].shape != (15625,):
            raise SystemExit(f"{path}: expected 15,625 scores")
    return out


def dna_rows(blocks: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The DNA rows of the page (higher is better): the sum of the block ratings, each block alone."""
    return {"DNA (sum of block scores)": -combine_scores(blocks),
            **{f"DNA block {i} only": -b for i, b in enumerate(blocks)}}


def dna_from_search(args) -> tuple[list[np.ndarray], dict]:
    """Run (or continue) the search; (block ratings, record fields)."""
    from budgetnas.cli import main as cli_main

    cmd = search_command(args)
    run = args.work / "search"
    if not (run / "summary.json").is_file():
        resume = ["--resume"] if (run / "checkpoint.pt").is_file() else []
        code = cli_main(cmd + resume)
        if code:
            raise SystemExit(f"search failed with exit code {code}")
    rated = [read_json(run / "round0" / f"block{i}" / "ratings.json") for i in range(3)]
    blocks = [np.asarray(r["score"], dtype=np.float64) for r in rated]
    summary = read_json(run / "summary.json")
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return blocks, {"search": cmd, "search_seconds": summary["search_seconds"], "teacher": summary["teacher"],
                    "log": log, "ratings": [{"block": r["block"], "seconds": r.get("seconds", 0.0)} for r in rated]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True, help="CIFAR-10 image folder (train/, test/)")
    p.add_argument("--table", type=Path, default=Path("../shared/data/nasbench201/nb201_cifar10.csv"))
    p.add_argument("--work", type=Path, default=Path("/tmp/bench-dna-ranking"))
    p.add_argument("--ratings", action="append", default=[], metavar="NAME=PATTERN",
                   help="measure saved per-block scores instead of searching ({block} in PATTERN)")
    p.add_argument("--saved", type=Path, default=None,
                   help="measure the block ratings and NASWOT scores of a --keep file instead of searching")
    p.add_argument("--keep", type=Path, default=KEEP, help="where a finished run keeps its per-cell scores")
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--channels", type=int, default=8, help="proxy student width C")
    p.add_argument("--teacher-epochs", type=int, default=20)
    p.add_argument("--epochs", type=int, default=10, help="block training epochs")
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--score-images", type=int, default=512)
    p.add_argument("--naswot-channels", type=int, default=8)
    p.add_argument("--naswot-cells", type=int, default=1)
    p.add_argument("--naswot-batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write", default=None)
    p.add_argument("extra", nargs="*", help="more `search dna` options (after --)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    naswot, searched = None, None
    if args.saved:
        blocks, naswot = saved_scores(args.saved)
        scores, fields = dna_rows(blocks), {"saved_ratings": [str(args.saved)]}
    elif args.ratings:
        scores, fields = {}, {}
        for item in args.ratings:
            name, _, pattern = item.partition("=")
            scores[name] = -combine_scores(saved_blocks(pattern))
        fields["saved_ratings"] = args.ratings
    else:
        searched, fields = dna_from_search(args)
        scores = dna_rows(searched)
    acc = truth(args.table)
    params = cell_costs(FULL_SCALE)["params"]
    naswot_s = 0.0
    if naswot is None:
        naswot, naswot_s = naswot_scores(args, args.work / "naswot.json")
    if searched is not None:
        keep_scores(args.keep, searched, naswot)
    budgets = [float(np.quantile(params, q)) for q in BUDGET_QUANTILES]
    first = next(iter(scores.values()))
    scores.update({"params": params, "NASWOT": naswot, **combinations(first, naswot, params)})
    results = {name: ranking.ranking_report(s, acc, params, budgets=budgets, reach=REACH) for name, s in scores.items()}
    effects = op_effects(np.array(all_cells()), {"table accuracy (truth)": acc, **{
        n: v for n, v in scores.items() if not n.endswith(" only")}})
    record = {"op_effects": effects, "command": "python benchmarks/dna_ranking.py " + shlex.join(sys.argv[1:]), "machine": machine(),
              "date": _dt.date.today().isoformat(), "load_average": os.getloadavg(),
              "seconds_this_run": round(time.perf_counter() - started, 1), "naswot_seconds": round(naswot_s, 1),
              "budgets": budgets, "results": results, **fields,
              "naswot_scale": [args.naswot_channels, args.naswot_cells, args.image_size, args.naswot_batch]}
    write_json(args.work / "results.json", record)
    from dna_ranking_doc import render  # noqa: E402

    body = render(record, acc, cells=all_cells())
    print(body)
    if args.write:
        replace_section(Path(args.write), TITLE, body)


if __name__ == "__main__":
    main()
