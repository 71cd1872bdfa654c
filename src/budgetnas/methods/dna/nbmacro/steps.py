"""`budgetnas search dna --space nbmacro`: the run's steps (DNAMethod hands them the work).

Steps (each cached in `round0/` under a fingerprint of its settings, so a killed run continues
where it stopped and a resumed run may ask another budget, answered from the cached ratings):
1. teacher (`round0/teacher/`): the space's largest network `22222222` trained on the
   search-training split (`teacher.py`), or a budgetnas run directory of an nbmacro network;
2. per block (= stage of 2, 3, 3 layers) `round0/block<i>/`: the block supernet is trained by
   distillation from the teacher's stage (`checkpoint.pt`), then every one of its 9, 27, 27
   strings is rated (`ratings.json`);
3. the score of each of the 6,561 networks is the sum of its blocks' ratings (lower is better);
   `ratings.csv` lists them all with the benchmark's exact params and MACs (`cost/nbmacro.py`,
   default config: 3x32x32 input, 10 classes), and the best network under the budget (counted the
   same way) is written as arch.json, with `front.json`;
4. optionally (--final-epochs) the found network is trained briefly for a held-out accuracy; a
   teacher below it is refused (exit 2, ratings kept) unless --allow-weak-teacher.
"""
from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import torch

from ....arch import Arch, make_provenance
from ....cost.lookup import METRICS
from ....cost.nbmacro import nbmacro_costs
from ....data import Dataset
from ....errors import UserError
from ....io import atomic_write, read_json, write_json
from ....runs.rundir import acquire_lock
from ....spaces.nbmacro import CHOICES, LAYERS, STAGES
from ..blockwise import fingerprint
from ..table_steps import check_common, finish, load_teacher_run, rating_features, result_extras, teacher_sum
from .block import FIRST, NBMacroBlockSupernet, rate_block
from .teacher import TAPS, TEACHER_INFO, space_config, train_nbmacro_block, train_nbmacro_teacher

RATINGS = "ratings.json"
RATINGS_CSV = "ratings.csv"


def check(opts) -> tuple[str, float] | None:
    """One-line errors for options the nbmacro version does not take; returns the target."""
    target = check_common(opts, "nbmacro")
    if target is not None:  # before any work: the smallest network is all zeros
        smallest = float(nbmacro_costs(["0" * LAYERS])[target[0]][0])
        if target[1] < smallest:
            raise UserError(f"no network of the space fits {target[1]:g} {METRICS[target[0]]} (the smallest "
                            f"has {smallest:g})", where=f"--target-{target[0]}", fix="raise the budget")
    return target


def all_genotypes() -> list[str]:
    return ["".join(p) for p in itertools.product(CHOICES, repeat=LAYERS)]


def run(method, ctx) -> bool:
    """Teacher, blocks, ratings and search; False when only --block ran."""
    opts, rdir = method.opts, ctx.out / "round0"
    if method.resuming(ctx):
        ctx.load_checkpoint()
    log: list[dict] = []
    teacher, info = make_teacher(opts, ctx.dataset, rdir, ctx.device)
    ratings = rate_all_blocks(opts, ctx.dataset, teacher, rdir, log)
    if opts.block is not None:
        return False
    ctx.save_checkpoint({"round": 0}, log=log)
    genotypes = all_genotypes()
    score = np.array([sum(r[g[FIRST[i]:FIRST[i] + STAGES[i]]] for i, r in enumerate(ratings))
                      for g in genotypes])
    costs = nbmacro_costs(genotypes)
    write_ratings_csv(ctx.out / RATINGS_CSV, genotypes, score, costs)
    metric, budget = method.target
    points, chosen = search(genotypes, score, costs[metric], budget, metric)
    log.append({"stage": "search", "front_size": len(points)})
    arch = Arch("nbmacro", space_config(ctx.dataset, 32), points[chosen]["genotype"], None,
                make_provenance("dna", ctx.dataset.name, {metric: budget}, opts.seed))
    finish(method, ctx, arch, info, points, chosen, log)
    return True


def write_ratings_csv(path: Path, genotypes: list[str], score: np.ndarray, costs: dict) -> None:
    with atomic_write(path, "w") as fh:
        fh.write("arch,score,params,macs\n")
        for g, s, p, m in zip(genotypes, score, costs["params"], costs["macs"]):
            fh.write(f"{g},{s:.8g},{int(p)},{int(m)}\n")


def search(genotypes: list[str], score: np.ndarray, cost: np.ndarray, budget: float,
           metric: str) -> tuple[list[dict], int]:
    """(front of (cost, score) points, index of the chosen one = lowest score within the budget)."""
    order = np.lexsort((score, cost))
    points, best = [], np.inf
    for j in order:
        if score[j] < best:
            best = score[j]
            points.append({"cost": float(cost[j]), "score": float(score[j]), "genotype": genotypes[j]})
    fits = [k for k, p in enumerate(points) if p["cost"] <= budget]
    if not fits:
        raise UserError(f"no network of the space fits {budget:g} {METRICS[metric]} (the smallest has "
                        f"{points[0]['cost']:g})", where=f"--target-{metric}", fix="raise the budget")
    return points, fits[-1]


def make_teacher(opts, dataset: Dataset, rdir: Path, device: torch.device):
    from ..teacher import Teacher

    if opts.teacher == "train":
        path = rdir / "teacher"
        path.mkdir(parents=True, exist_ok=True)
        acquire_lock(path)
        train_nbmacro_teacher(dataset, path, stem_channels=opts.nbmacro_channels, epochs=opts.teacher_epochs,
                              seed=opts.seed, device=device)
    else:
        path = Path(opts.teacher)
    def check_arch(arch) -> None:
        width = arch.config.get("stem_channels", 32)
        if arch.space != "nbmacro" or width != opts.nbmacro_channels:
            raise UserError(f"the teacher is a {arch.space} network of width {width}", where="--teacher",
                            fix=f"use an nbmacro network with stem_channels {opts.nbmacro_channels} "
                                "(or --teacher train)")

    module, arch, info = load_teacher_run(opts, path, dataset, device, TEACHER_INFO, check_arch)
    info["stem_channels"] = arch.config.get("stem_channels", 32)
    teacher = Teacher(module, TAPS, train_bn=opts.teacher_bn == "train", description=f"teacher {path}").to(device)
    return teacher, info


def rate_all_blocks(opts, dataset: Dataset, teacher, rdir: Path, log: list) -> list[dict[str, float]]:
    """Train and rate every block (or only --block); returns {block string: score} per block."""
    device = next(teacher.module.parameters()).device
    train, rows, held = rating_features(opts, teacher, dataset, device, log)
    common = {"teacher_sum": teacher_sum(teacher), "teacher_bn": opts.teacher_bn, "dataset": dataset.name,
              "subset": opts.subset, "image_size": dataset.input_size, "seed": opts.seed,
              "channels": opts.nbmacro_channels}
    out = []
    for i in ([opts.block] if opts.block is not None else range(3)):
        torch.manual_seed(opts.seed * 7919 + i)  # independent of block order and of --block
        block = NBMacroBlockSupernet(i, opts.nbmacro_channels, dataset.channels)
        bdir = rdir / f"block{i}"
        bdir.mkdir(parents=True, exist_ok=True)
        acquire_lock(bdir)
        settings = {**common, "block": i, "epochs": opts.epochs, "batch_size": opts.batch_size, "lr": opts.lr,
                    "lr_decay": opts.lr_decay, "weight_decay": opts.weight_decay}
        t1 = time.perf_counter()
        log.extend(train_nbmacro_block(block, train[i], train[i + 1], bdir, epochs=opts.epochs,
                                       batch_size=opts.batch_size, lr=opts.lr, lr_decay=opts.lr_decay,
                                       weight_decay=opts.weight_decay, seed=opts.seed, settings=settings))
        t2 = time.perf_counter()
        key = fingerprint({**settings, "recal": len(rows[i]), "score_images": len(held[i])})
        path = bdir / RATINGS
        cached = read_json(path, what="ratings file") if path.is_file() else {}
        if cached.get("fingerprint") != key:
            x = torch.cat([rows[i], held[i]])
            y = torch.cat([rows[i + 1], held[i + 1]])
            cached = {"fingerprint": key, "block": i, "recal_images": len(rows[i]), "score_images": len(held[i]),
                      "score": rate_block(block, x, y, len(rows[i]))}
            write_json(path, cached)
        log.append({"stage": "rate", "block": i, "candidates": len(cached["score"]),
                    "seconds": round(time.perf_counter() - t2, 3), "train_seconds_this_run": round(t2 - t1, 3)})
        out.append(cached["score"])
    return out


def result(method) -> tuple[Arch, dict]:
    extras = {**result_extras(method), "candidates_per_block": [9, 27, 27], "networks_rated": 3 ** LAYERS}
    return method.found["arch"], extras


def table_rows(method, summary: dict) -> dict:
    return {"cost (benchmark count)": f"{summary['cost']:g}", "score (MSE/var, sum)": f"{summary['score']:.4f}",
            "teacher val_acc": summary["teacher"].get("val_acc", "-"), "front points": summary["front_size"],
            "network": method.found["arch"].genotype}
