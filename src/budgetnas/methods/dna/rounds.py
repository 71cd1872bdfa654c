"""One DNA round (train and rate every block against the teacher, then the exact search), and the
retraining of a found network (for DNA+'s next teacher and for the reported held-out accuracy)."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from ...arch import Arch, make_provenance, save_arch
from ...cost.lookup import METRICS
from ...cost.mbconv import MBConvCosts, stage_cost, stage_sizes
from ...data import Dataset
from ...errors import UserError
from ...io import load_safetensors
from ...runs.rundir import acquire_lock
from .blockwise import rate_block, train_block
from .options import DNAOptions
from .pareto import BlockCandidates, merge_fronts
from .setup import build_blocks, make_teacher, student_config, teacher_checksum
from .supernet import CellSpec, parse_cells, stage_genotype
from .teacher import without_val

PAPER_DEPTHS = [[2], [4], [4], [4], [4], [1]]  # the six-block ImageNet setting


def block_candidates(table: MBConvCosts, cfg: dict, rows: list[dict], cells: list[CellSpec], ops,
                     in_widths: list[int], index: int, se: bool):
    """Expand a block's ratings over the widths it may read; returns candidates + (row, width) map."""
    sizes = stage_sizes(cfg)
    cost, score, s_in, s_out, where = [], [], [], [], []
    for w in in_widths:
        for r, row in enumerate(rows):
            cell = cells[row["cell"]]
            stage = stage_genotype(cell, tuple(row["path"]), ops, se=se)
            cost.append(stage_cost(table, cfg, stage, w, cfg["strides"][index], sizes[index]))
            score.append(row["score"])
            s_in.append(w)
            s_out.append(cell.width)
            where.append((r, w))
    return BlockCandidates(cost, score, s_in, s_out), where


def search_front(table: MBConvCosts, cfg: dict, ratings: list[list[dict]], cells: list[list[CellSpec]], ops,
           se: bool):
    blocks, maps = [], []
    widths = [cfg["first_channels"]]
    for i, rows in enumerate(ratings):
        cand, where = block_candidates(table, cfg, rows, cells[i], ops, widths, i, se)
        blocks.append(cand)
        maps.append(where)
        widths = sorted({c.width for c in cells[i]})
    size = stage_sizes(cfg)[-1]
    final = {w: table.fixed_end(cfg, w, size) for w in widths}
    front = merge_fronts(blocks, start_state=cfg["first_channels"], final_cost=final,
                         fixed_cost=table.fixed_start(cfg))
    table.save()
    return front, maps


def genotype_of(front, k: int, maps, ratings, cells, ops, se: bool) -> dict:
    stages = []
    for i, pick in enumerate(front.choices(k)):
        row = ratings[i][maps[i][pick][0]]
        stages.append(stage_genotype(cells[i][row["cell"]], tuple(row["path"]), ops, se=se))
    return {"stages": stages}


def describe(genotype: dict) -> str:
    """One line per network: 'width:op,op | width:op' per stage."""
    return " | ".join(f"{s['channels']}:" + ",".join(f"e{l['expansion']}k{l['kernel']}" for l in s["layers"])
                      for s in genotype["stages"])


def search_round(opts: DNAOptions, source: str, dataset: Dataset, rdir: Path, device: torch.device, ops,
                 target, round_index: int, log: list) -> dict | None:
    teacher, teacher_cfg, description, teacher_acc = make_teacher(opts, source, dataset, rdir, device)
    shapes = teacher.shapes(dataset.shape, device)
    cfg = student_config(opts, teacher_cfg, dataset, len(shapes))
    default_depths = PAPER_DEPTHS if len(shapes) == 6 else [[1, 2]] * len(shapes)
    cells = parse_cells(opts.depths, opts.widths, blocks=len(shapes),
                        teacher_widths=[s[0] for s in shapes], default_depths=default_depths,
                        adapters=opts.adapters)
    blocks = build_blocks(cfg, cells, ops, shapes, opts, device, round_index)
    if opts.block is not None and opts.block >= len(blocks):
        raise UserError(f"there are {len(blocks)} blocks (0..{len(blocks) - 1})", where="--block")
    common = {"teacher": source, "teacher_sum": teacher_checksum(teacher), "teacher_bn": opts.teacher_bn,
              "taps": teacher.taps, "cfg": cfg, "ops": [o.name for o in ops], "se": opts.se,
              "dataset": dataset.name, "subset": opts.subset, "seed": opts.seed}
    log.append({"stage": "teacher", "round": round_index, "source": source, "teacher_sum": common["teacher_sum"],
                "val_acc": teacher_acc})
    indices = [opts.block] if opts.block is not None else range(len(blocks))
    ratings = []
    for i in indices:
        bdir = rdir / f"block{i}"
        bdir.mkdir(parents=True, exist_ok=True)
        acquire_lock(bdir)
        settings = {**common, "block": i, "cells": [c.name for c in cells[i]], "epochs": opts.epochs,
                    "batch_size": opts.batch_size, "lr": opts.lr, "lr_decay": opts.lr_decay,
                    "weight_decay": opts.weight_decay}
        t0 = time.perf_counter()
        block_log = train_block(blocks[i], teacher, dataset, bdir, epochs=opts.epochs,
                                batch_size=opts.batch_size, lr=opts.lr, lr_decay=opts.lr_decay,
                                weight_decay=opts.weight_decay, seed=opts.seed, device=device,
                                settings=settings)
        log.extend({**row, "round": round_index} for row in block_log)
        t1 = time.perf_counter()
        rows = rate_block(blocks[i], teacher, dataset, bdir, recal_batches=opts.recal_batches,
                          batch_size=opts.rate_batch_size, rate_samples=opts.rate_samples,
                          settings={**settings, "recal": opts.recal_batches,
                                    "rate_batch": opts.rate_batch_size, "rate_samples": opts.rate_samples},
                          device=device)
        log.append({"stage": "rate", "round": round_index, "block": i, "candidates": len(rows),
                    "best_score": min(r["score"] for r in rows), "seconds": round(time.perf_counter() - t1, 3),
                    "train_seconds_this_run": round(t1 - t0, 3)})
        ratings.append(rows)
    if opts.block is not None:
        return None
    metric, budget = target
    table = MBConvCosts(metric, rdir / f"costs_{metric}.json", device=str(device),
                      latency_runs=opts.latency_runs, threads=opts.threads or 1)
    t0 = time.perf_counter()
    front, maps = search_front(table, cfg, ratings, cells, ops, opts.se)
    k = front.best_index(budget, unit=METRICS[metric], where=f"--target-{metric.replace('latency', 'latency-ms')}")
    genotype = genotype_of(front, k, maps, ratings, cells, ops, opts.se)
    search_seconds = time.perf_counter() - t0
    log.append({"stage": "search", "round": round_index, "front_size": len(front),
                "seconds": round(search_seconds, 4), "cost": float(front.cost[k]), "score": float(front.score[k]),
                "network": describe(genotype)})
    arch = Arch("mbconv", cfg, genotype, None,
                make_provenance("dna", dataset.name, {metric: budget}, opts.seed))
    points = [{"cost": float(front.cost[j]), "score": float(front.score[j]),
               "genotype": genotype_of(front, j, maps, ratings, cells, ops, opts.se)}
              for j in range(len(front))]
    return {"arch": arch, "front": points, "chosen": k, "metric": metric, "teacher": description,
            "teacher_acc": teacher_acc,
            "round": round_index, "blocks": len(blocks),
            "candidates": [len(r) for r in ratings], "cells": [[c.name for c in cs] for cs in cells]}


def retrain(arch: Arch, dataset: Dataset, directory: Path, opts: DNAOptions, device: torch.device,
            *, epochs: int) -> tuple[Path, float]:
    """Train `arch` on the search-training split (never the held-out one); returns its directory
    (arch.json + model.safetensors, usable as a teacher) and its held-out accuracy."""
    from ...arch import build_model
    from ...train.recipes import RECIPES, default_recipe_name
    from ...train.loop import evaluate
    from ...train.trainer import train_model

    from .blockwise import fingerprint

    # One directory per network and recipe: another budget (with --resume) retrains another net.
    directory = Path(directory) / fingerprint({"genotype": arch.genotype, "config": arch.config,
                                               "epochs": epochs, "seed": opts.seed})
    save_arch(arch, directory, "arch.json")
    if not (directory / "metrics.json").is_file():
        recipe = RECIPES[default_recipe_name(dataset.name)].model_copy(
            update={"epochs": epochs, "auxiliary_weight": 0.0})
        train_model(arch, without_val(dataset), directory, recipe, seed=opts.seed, device=device,
                    resume=(directory / "checkpoint.pt").is_file(), progress=False)
    model = build_model(arch)
    model.load_state_dict(load_safetensors(directory / "model.safetensors"))
    return directory, evaluate(model.to(device), dataset, dataset.val, device)
