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
from ..nb201.blockwise import fixed_head, teacher_features
from ..nb201.steps import DEFAULT_SCORE_IMAGES, check_teacher_strength, teacher_sum
from .block import FIRST, NBMacroBlockSupernet, rate_block
from .teacher import TAPS, TEACHER_INFO, space_config, train_nbmacro_block, train_nbmacro_teacher

RATINGS = "ratings.json"
RATINGS_CSV = "ratings.csv"


def check(opts) -> tuple[str, float] | None:
    """One-line errors for options the nbmacro version does not take; returns the target."""
    target = opts.target()
    if opts.block is None and target is None:
        raise UserError("give a budget", where="--target-params", fix="add --target-params N or --target-macs N")
    if target is not None and target[0] == "latency":
        raise UserError("the nbmacro space searches under params or MACs", where="--target-latency-ms",
                        fix="use --target-params or --target-macs")
    if opts.progressive:
        raise UserError("--progressive is not available with --space nbmacro", where="--progressive")
    if opts.block is not None and (opts.block > 2 or opts.out is None):
        raise UserError("--block is 0, 1 or 2 with --space nbmacro, and needs --out", where="--block")
    if not (opts.teacher == "train" or Path(opts.teacher).is_dir()):
        raise UserError(f"teacher {opts.teacher!r} is not available for the nbmacro space", where="--teacher",
                        fix="use 'train' or a budgetnas run directory of an nbmacro network")
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
    val_acc = None
    if opts.final_epochs:
        from ..rounds import retrain

        _, val_acc = retrain(arch, ctx.dataset, ctx.out / "final", opts, ctx.device, epochs=opts.final_epochs)
        check_teacher_strength(opts, info, val_acc)
    method.log, method.val_acc = log, val_acc
    method.found = {"arch": arch, "front": points, "chosen": chosen, "teacher": info}
    ctx.save_checkpoint({"round": 0, "done": True}, log=log)
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
    from ..teacher import Teacher, run_teacher

    if opts.teacher == "train":
        path = rdir / "teacher"
        path.mkdir(parents=True, exist_ok=True)
        acquire_lock(path)
        train_nbmacro_teacher(dataset, path, stem_channels=opts.nbmacro_channels, epochs=opts.teacher_epochs,
                              seed=opts.seed, device=device)
    else:
        path = Path(opts.teacher)
    module, arch = run_teacher(path)
    cfg = {**space_config(dataset, 32), **arch.config}
    if arch.space != "nbmacro" or cfg["stem_channels"] != opts.nbmacro_channels:
        raise UserError(f"the teacher is a {arch.space} network of width {cfg.get('stem_channels')}",
                        where="--teacher", fix=f"use an nbmacro network with stem_channels "
                                               f"{opts.nbmacro_channels} (or --teacher train)")
    if (cfg["input_size"], cfg["in_channels"]) != (dataset.input_size, dataset.channels):
        raise UserError(f"the teacher takes {cfg['in_channels']}x{cfg['input_size']} px images, "
                        f"the data has {dataset.channels}x{dataset.input_size}", where="--teacher",
                        fix="use --image-size to match, or another teacher")
    info = read_json(path / TEACHER_INFO) if opts.teacher == "train" else {}
    if info.get("val_acc") is None:
        from ....train.loop import evaluate

        info["val_acc"] = evaluate(module.to(device), dataset, dataset.val, device)
    info = {**info, "path": str(path), "genotype": arch.genotype, "stem_channels": cfg["stem_channels"]}
    teacher = Teacher(module, TAPS, train_bn=opts.teacher_bn == "train", description=f"teacher {path}").to(device)
    return teacher, info


def rate_all_blocks(opts, dataset: Dataset, teacher, rdir: Path, log: list) -> list[dict[str, float]]:
    """Train and rate every block (or only --block); returns {block string: score} per block."""
    device = next(teacher.module.parameters()).device
    n_recal = opts.recal_batches * opts.rate_batch_size
    n_score = min(opts.rate_samples or DEFAULT_SCORE_IMAGES, len(dataset.val))
    t0 = time.perf_counter()
    train = teacher_features(teacher, dataset, dataset.train, device=device)
    rows = teacher_features(teacher, dataset, fixed_head(dataset.train, n_recal), device=device)
    held = teacher_features(teacher, dataset, fixed_head(dataset.val, n_score, seed=54321), device=device)
    log.append({"stage": "teacher-features", "seconds": round(time.perf_counter() - t0, 3)})
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
    found = method.found
    metric, budget = method.target
    chosen = found["front"][found["chosen"]]
    write_json(method.ctx.out / "front.json", {"metric": metric, "unit": METRICS[metric], "target": budget,
                                               "chosen": found["chosen"], "points": found["front"]})
    extras = {"target": {metric: budget}, "val_acc": method.val_acc, "space": "nbmacro", "cost": chosen["cost"],
              "score": chosen["score"], "front_size": len(found["front"]), "teacher": found["teacher"],
              "blocks": 3, "candidates_per_block": [9, 27, 27], "networks_rated": 3 ** LAYERS,
              "final_epochs": method.opts.final_epochs}
    return found["arch"], extras


def table_rows(method, summary: dict) -> dict:
    return {"cost (benchmark count)": f"{summary['cost']:g}", "score (MSE/var, sum)": f"{summary['score']:.4f}",
            "teacher val_acc": summary["teacher"].get("val_acc", "-"), "front points": summary["front_size"],
            "network": method.found["arch"].genotype}
