"""`budgetnas search dna --space nb201`: the run's steps (DNAMethod hands them the work).

Steps (each cached in `round0/` under a fingerprint of its settings, so a killed run continues
where it stopped; a resumed run may ask another budget, a per-stage search or another exported
size, all answered from the cached ratings):
1. teacher (`round0/teacher/`): an NB201 network, by default twice the proxy students' width and
   cells per stage, trained on the search-training split (`teacher.py`), or a budgetnas run
   directory holding an nb201 network (`--teacher PATH`);
2. per block (= stage) `round0/block<i>/`: the block supernet is trained by distillation from the
   teacher's stage (`checkpoint.pt`), then all 15,625 cells are rated (`ratings.json`);
3. network scores (sum over blocks; with --nb201-zero-cost naswot, rank-averaged with NASWOT,
   `zero_cost.py`), costs of the exported network (default: the benchmark's C=16, 5 cells per
   stage) and the exact search: `front.json`, `arch.json`, `summary.json`;
4. optionally (--final-epochs) the found network is trained briefly for a held-out accuracy.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ....arch import Arch, make_provenance
from ....cost.lookup import METRICS
from ....data import Dataset
from ....errors import UserError
from ....ranking import rank_mean
from ....runs.rundir import acquire_lock
from ..table_steps import check_common, finish, load_teacher_run, rating_features, result_extras, teacher_sum
from .block import NB201BlockSupernet, all_cells, string_of_cell
from .blockwise import rate_nb201_block, train_nb201_block
from .search import (best_same_cell, cell_costs, combine_scores, per_stage_search, same_cell_front,
                     stage_costs)
from .teacher import TEACHER_INFO, stage_taps, train_nb201_teacher
from .zero_cost import naswot_all_cells


def check(opts) -> tuple[str, float] | None:
    """One-line errors for options the NB201 version does not take; returns the target."""
    target = check_common(opts, "nb201")
    from ....spaces.nb201 import parse_arch_string

    parse_arch_string(opts.nb201_teacher_cell, where="--nb201-teacher-cell")
    if opts.nb201_zero_cost != "none" and opts.nb201_per_stage:
        raise UserError("a training-free score rates whole networks, not the cells of one stage",
                        where="--nb201-zero-cost", fix="drop --nb201-per-stage or --nb201-zero-cost")
    return target


def run(method, ctx) -> bool:
    """Teacher, blocks, ratings and search; False when only --block ran."""
    opts, rdir = method.opts, ctx.out / "round0"
    if method.resuming(ctx):
        ctx.load_checkpoint()  # checks the options, carries the work time on
    log: list[dict] = []
    teacher, info = make_teacher(opts, ctx.dataset, rdir, ctx.device)
    scores = rate_all_blocks(opts, ctx.dataset, teacher, rdir, ctx.device, log)
    if opts.block is not None:
        return False
    ctx.save_checkpoint({"round": 0}, log=log)
    zero_cost = None
    if opts.nb201_zero_cost == "naswot":
        zero_cost, seconds = naswot_all_cells(opts, ctx.dataset, rdir)
        log.append({"stage": "zero-cost", "score": "naswot", "cells": len(zero_cost), "seconds": round(seconds, 1)})
    t0 = time.perf_counter()
    points, chosen = search(opts, ctx.dataset, scores, method.target, zero_cost)
    log.append({"stage": "search", "front_size": len(points), "seconds": round(time.perf_counter() - t0, 4)})
    metric, budget = method.target
    cfg = export_config(opts, ctx.dataset)
    arch = Arch("nb201", cfg, points[chosen]["genotype"], None,
                make_provenance("dna", ctx.dataset.name, {metric: budget}, opts.seed))
    finish(method, ctx, arch, info, points, chosen, log)
    return True


def result(method) -> tuple[Arch, dict]:
    opts = method.opts
    extras = {**result_extras(method), "candidates_per_block": len(all_cells()),
              "same_cell": not opts.nb201_per_stage, "rating": opts.nb201_rating,
              "zero_cost": opts.nb201_zero_cost}
    return method.found["arch"], extras


def table_rows(method, summary: dict) -> dict:
    genotype = method.found["arch"].genotype
    return {"cost (table)": f"{summary['cost']:g}", _score_label(summary): f"{summary['score']:.4f}",
            "teacher val_acc": summary["teacher"].get("val_acc", "-"), "front points": summary["front_size"],
            "network": genotype if isinstance(genotype, str) else " / ".join(genotype)}


def _score_label(summary: dict) -> str:
    if summary.get("zero_cost", "none") != "none":
        return f"score (-rank mean of {summary['rating']} sum and {summary['zero_cost']})"
    return f"score ({summary['rating']}, sum)"


def make_teacher(opts, dataset: Dataset, rdir: Path, device: torch.device):
    """(Teacher, description dict) from `--teacher train` (trained once in rdir/teacher) or a run
    directory of an nb201 network."""
    from ..teacher import Teacher

    if opts.teacher == "train":
        path = rdir / "teacher"
        path.mkdir(parents=True, exist_ok=True)
        acquire_lock(path)
        train_nb201_teacher(dataset, path, channels=opts.nb201_teacher_channels or 2 * opts.nb201_channels,
                            cells=opts.nb201_teacher_cells or 2 * opts.nb201_cells, epochs=opts.teacher_epochs,
                            genotype=opts.nb201_teacher_cell, seed=opts.seed, lr=opts.nb201_teacher_lr,
                            device=device)
    else:
        path = Path(opts.teacher)
    module, arch, info = load_teacher_run(opts, path, dataset, device, TEACHER_INFO, check_teacher_arch)
    cfg = arch.config
    info = {**info, "C": cfg.get("C", 16), "cells_per_stage": cfg.get("cells_per_stage", 5)}
    teacher = Teacher(module, stage_taps(info["cells_per_stage"]), train_bn=opts.teacher_bn == "train",
                      description=f"teacher {path}").to(device)
    return teacher, info


def check_teacher_arch(arch) -> None:
    if arch.space != "nb201":
        raise UserError(f"the teacher is a {arch.space} network", where="--teacher",
                        fix="use an nb201 network (or --teacher train)")


def rate_all_blocks(opts, dataset: Dataset, teacher, rdir: Path, device: torch.device,
                    log: list) -> list[np.ndarray]:
    """Train and rate every block (or only --block); returns per-block scores over all cells."""
    train, rows, held = rating_features(opts, teacher, dataset, device, log)
    widths = [t.shape[1] for t in train[1:]]
    common = {"teacher_sum": teacher_sum(teacher), "teacher_bn": opts.teacher_bn, "dataset": dataset.name,
              "subset": opts.subset, "image_size": dataset.input_size, "seed": opts.seed,
              "C": opts.nb201_channels, "cells": opts.nb201_cells, "sampler": opts.nb201_sampler,
              "target_norm": opts.nb201_target_norm}
    return [_one_block(opts, i, widths, train, rows, held, rdir, common, log)
            for i in ([opts.block] if opts.block is not None else range(3))]


def _one_block(opts, i: int, widths, train, rows, held, rdir: Path, common: dict, log: list) -> np.ndarray:
    torch.manual_seed(opts.seed * 7919 + i)  # independent of block order and of --block
    c_in = train[0].shape[1] if i == 0 else widths[i - 1]
    block = NB201BlockSupernet(i, c_in, opts.nb201_channels * 2 ** i, opts.nb201_cells, widths[i])
    scale = _target_scale(train[i + 1]) if opts.nb201_target_norm else torch.ones(1)
    bdir = rdir / f"block{i}"
    bdir.mkdir(parents=True, exist_ok=True)
    acquire_lock(bdir)
    settings = {**common, "block": i, "epochs": opts.epochs, "batch_size": opts.batch_size, "lr": opts.lr,
                "lr_decay": opts.lr_decay, "weight_decay": opts.weight_decay}
    t0 = time.perf_counter()
    log.extend(train_nb201_block(block, train[i], (train[i + 1].float() / scale).half(), bdir,
                                 epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr,
                                 lr_decay=opts.lr_decay, weight_decay=opts.weight_decay, seed=opts.seed,
                                 settings=settings, sampler=opts.nb201_sampler))
    t1 = time.perf_counter()
    x = torch.cat([rows[i], held[i]])
    y = torch.cat([rows[i + 1], held[i + 1]]).float() / scale
    rated = rate_nb201_block(block, x, y, len(rows[i]), bdir, rating=opts.nb201_rating,
                             settings={**settings, "recal": len(rows[i]), "score_images": len(held[i])})
    log.append({"stage": "rate", "block": i, "cells": len(rated["score"]),
                "seconds": round(time.perf_counter() - t1, 3), "train_seconds_this_run": round(t1 - t0, 3)})
    return np.asarray(rated["score"], dtype=np.float64)


def _target_scale(y: torch.Tensor) -> torch.Tensor:
    """Per-channel std of the teacher's stage output on the training images."""
    return y.float().std((0, 2, 3)).clamp_min(1e-3).view(1, -1, 1, 1)


def export_config(opts, dataset: Dataset) -> dict:
    return {"in_channels": dataset.channels, "num_classes": dataset.num_classes,
            "input_size": dataset.input_size, "C": opts.nb201_export_channels,
            "cells_per_stage": opts.nb201_export_cells}


def search(opts, dataset: Dataset, block_scores, target, zero_cost: np.ndarray | None = None
           ) -> tuple[list[dict], int]:
    """(front points, index of the chosen one): exact, same cell everywhere or one per stage. With
    `zero_cost` (higher is better, per cell) the score is minus the rank mean of both."""
    metric, budget = target
    cfg = export_config(opts, dataset)
    where = f"--target-{metric}"
    cells = all_cells()
    if opts.nb201_per_stage:
        base, per_stage = stage_costs(cfg, metric)
        front = per_stage_search(block_scores, base, per_stage)
        chosen = front.best_index(budget, unit=METRICS[metric], where=where)
        points = [{"cost": float(front.cost[j]), "score": float(front.score[j]),
                   "genotype": [string_of_cell(cells[c]) for c in front.choices(j)]} for j in range(len(front))]
        return points, chosen
    score = combine_scores(block_scores)
    if zero_cost is not None:
        score = -rank_mean(-score, zero_cost)
    cost = cell_costs(cfg)[metric]
    pick = best_same_cell(score, cost, budget, unit=METRICS[metric], where=where)
    points = [{"cost": float(cost[j]), "score": float(score[j]), "genotype": string_of_cell(cells[j])}
              for j in same_cell_front(score, cost)]
    chosen = int(np.searchsorted([p["cost"] for p in points], budget, side="right")) - 1
    if points[chosen]["genotype"] != string_of_cell(cells[pick]):
        raise AssertionError("the front disagrees with the direct search")
    return points, chosen
