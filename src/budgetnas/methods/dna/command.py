"""`budgetnas search dna`: block-wise distillation, every candidate rated, exact search.

Steps (each cached in the run directory and reused when its settings match):
1. teacher: torchvision:NAME, a budgetnas run directory, `train` or `none` (see teacher.py);
2. per block: train its supernet cells against the teacher (round<r>/block<i>/checkpoint.pt),
   then rate every candidate (round<r>/block<i>/ratings.json);
3. per-layer cost table (round<r>/costs_<metric>.json), per-block Pareto fronts, merged into
   the front of whole networks (front.json); the best network under the target -> arch.json;
4. with --progressive N: retrain the found network and use it as the next round's teacher;
5. the final network is retrained briefly on the search-training split (--final-epochs) for
   summary.json's val_acc on the held-out split.

`--block K` trains and rates block K only, so blocks can run in separate processes with the same
--out (each locks its own block directory); a run without --block then reuses them.
"""
from __future__ import annotations

import argparse
import hashlib
import resource
import time
from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import Field

from ... import __version__
from ...arch import Arch, make_provenance, save_arch
from ...config import SearchOptions, add_model_arguments, resolve_options
from ...cost import profile
from ...data import Dataset, load_dataset_for
from ...errors import UserError
from ...report import report_at_end, write_run_info
from ...io import load_checkpoint, load_safetensors, save_checkpoint, write_json, write_jsonl
from ...run import acquire_lock, prepare_run_dir, resolve_device, seed_everything, set_threads
from ...spaces.mbconv import CONFIG_DEFAULTS, validate_config
from .blockwise import rate_block, train_block
from .costs import METRICS, CostTable, out_size, stage_cost, stage_sizes
from .pareto import BlockCandidates, merge_fronts
from .supernet import (DEFAULT_OPS, MAX_WIDTH, BlockSupernet, CellSpec, check_groups, parse_cells,
                       parse_ops, stage_genotype)
from .teacher import (Teacher, default_taps, run_teacher, self_supervised_teacher, torchvision_teacher,
                      train_teacher, without_val)

PAPER_DEPTHS = [[2], [4], [4], [4], [4], [1]]  # the six-block ImageNet setting


class Options(SearchOptions):
    """Options of `budgetnas search dna`."""

    teacher: str = Field("train", description="torchvision:NAME, a budgetnas run directory "
                         "(arch.json + model.safetensors), 'train' (small MBConv teacher trained "
                         "first) or 'none' (self-supervised EMA target)")
    teacher_weights: Path | None = Field(None, description="state dict for a torchvision teacher")
    teacher_stages: list[str] | None = Field(None, description="teacher modules whose outputs are "
                                             "the block targets (default: mbconv stages.i; "
                                             "EfficientNet features.2..7)")
    teacher_bn: Literal["eval", "train"] = Field("eval", description="teacher BN mode")
    teacher_epochs: int = Field(15, ge=1, description="epochs to train a 'train'/'none' teacher")
    ops: list[str] = Field(list(DEFAULT_OPS), description="candidate ops eEkK (MBConv expansion E, kernel K)")
    depths: str | None = Field(None, description="cell depths per block, e.g. '1,2' (all blocks) or "
                               "'2;3,4;4' (default: 1,2 per block; 2,4,4,4,4,1 for six blocks)")
    widths: str | None = Field(None, description="cell widths per block like --depths (needs --adapters)")
    adapters: bool = Field(False, description="1x1 adapters to the teacher width (cells may have "
                           "their own widths); default: the last layer has the teacher's width")
    se: bool = Field(True, description="squeeze-excitation in every candidate op")
    stem_stride: int | None = Field(None, ge=1, le=2, description="student stem stride (default: teacher's or 2)")
    strides: list[Annotated[int, Field(ge=1, le=2)]] | None = Field(
        None, description="student stage strides, each 1 or 2 (default: teacher's)")
    stem_channels: int | None = Field(None, ge=1, le=MAX_WIDTH, description="student stem width")
    first_channels: int | None = Field(None, ge=1, le=MAX_WIDTH, description="student MB1 layer width")
    head_channels: int | None = Field(None, ge=1, le=MAX_WIDTH, description="student head width")
    epochs: int = Field(10, ge=1, description="training epochs per block")
    batch_size: int = Field(64, ge=1, description="block training batch size")
    lr: float = Field(0.005, gt=0, description="Adam learning rate")
    lr_decay: float = Field(0.9, gt=0, le=1, description="learning-rate factor per epoch")
    weight_decay: float = Field(1e-4, ge=0, description="weight decay (not on 1-D parameters)")
    block: int | None = Field(None, ge=0, description="train and rate only this block (needs --out)")
    recal_batches: int = Field(4, ge=1, description="BN recalibration batches per candidate")
    rate_batch_size: int = Field(128, ge=1, description="batch size for recalibration and rating")
    rate_samples: int | None = Field(None, ge=1, description="rate on at most this many held-out images")
    target_params: int | None = Field(None, ge=1, description="parameter budget")
    target_macs: int | None = Field(None, ge=1, description="MAC budget")
    target_latency_ms: float | None = Field(None, gt=0, description="latency budget in ms (per-layer "
                                            "table measured on --device, batch 1)")
    latency_runs: int = Field(20, ge=1, description="timed runs per layer for the latency table")
    progressive: int = Field(0, ge=0, description="DNA+: rounds where the found network, retrained, "
                             "becomes the next teacher")
    final_epochs: int = Field(5, ge=0, description="retraining epochs for val_acc (and DNA+ teachers); 0 = skip")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, Options)


def target_of(opts: Options) -> tuple[str, float] | None:
    given = [(m, v) for m, v in (("params", opts.target_params), ("macs", opts.target_macs),
                                 ("latency", opts.target_latency_ms)) if v is not None]
    if len(given) > 1:
        raise UserError("give one budget", where="--target-params/--target-macs/--target-latency-ms")
    return given[0] if given else None


# --- teacher and student set-up -----------------------------------------------------------------

def make_teacher(opts: Options, source: str, dataset: Dataset, directory: Path,
                 device: torch.device) -> tuple[Teacher, dict | None, str]:
    """(teacher, the teacher's mbconv config if it has one, a description)."""
    train_bn = opts.teacher_bn == "train"
    arch = None
    if source.startswith("torchvision:"):
        name = source.split(":", 1)[1]
        module = torchvision_teacher(name, weights=opts.teacher_weights, download=opts.download)
        kind = name
    elif source in ("train", "none"):
        builder = train_teacher if source == "train" else self_supervised_teacher
        path = builder(dataset, directory / "teacher", epochs=opts.teacher_epochs, seed=opts.seed,
                       device=device)
        module, arch = run_teacher(path)
        kind = "mbconv"
    else:
        module, arch = run_teacher(Path(source))
        kind = arch.space
    taps = opts.teacher_stages or default_taps(module, kind)
    teacher = Teacher(module, taps, train_bn=train_bn, description=f"teacher {source}").to(device)
    cfg = {**CONFIG_DEFAULTS, **arch.config} if arch is not None and arch.space == "mbconv" else None
    return teacher, cfg, f"{source} ({', '.join(taps)})"


def student_config(opts: Options, teacher_cfg: dict | None, dataset: Dataset, n_blocks: int) -> dict:
    cfg = dict(teacher_cfg or CONFIG_DEFAULTS)
    cfg.update(in_channels=dataset.channels, num_classes=dataset.num_classes,
               input_size=dataset.input_size)
    for key in ("stem_stride", "strides", "stem_channels", "first_channels", "head_channels"):
        if getattr(opts, key) is not None:
            cfg[key] = getattr(opts, key)
    if teacher_cfg is None and opts.strides is None and n_blocks != len(cfg["strides"]):
        raise UserError(f"the teacher has {n_blocks} tapped stages but the student has "
                        f"{len(cfg['strides'])} blocks", where="--teacher-stages",
                        fix=f"tap {len(cfg['strides'])} stages or give --strides with {n_blocks} entries")
    validate_config(cfg, "student")
    if len(cfg["strides"]) != n_blocks:
        raise UserError(f"{len(cfg['strides'])} strides for {n_blocks} teacher stages", where="--strides",
                        fix="give one stride per tapped teacher stage")
    return cfg


def suggested_strides(cfg: dict, shapes: list[tuple[int, ...]]) -> str:
    size = out_size(cfg["input_size"], cfg["stem_stride"])
    out = []
    for shape in shapes:
        out.append(str(max(1, round(size / max(shape[-1], 1)))))
        size = shape[-1]
    return ",".join(out)


def build_blocks(cfg: dict, cells: list[list[CellSpec]], ops, shapes: list[tuple[int, ...]],
                 opts: Options, device: torch.device, round_index: int) -> list[BlockSupernet]:
    """One supernet per block, each checked against the teacher's tensor shapes."""
    blocks = []
    image_shape = (cfg["in_channels"], cfg["input_size"], cfg["input_size"])
    for i, shape in enumerate(shapes):
        torch.manual_seed(opts.seed * 7919 + 101 * round_index + i)  # independent of block order
        c_in = shapes[i - 1][0] if i else cfg["first_channels"]
        block = BlockSupernet(cfg, i, c_in, cfg["strides"][i], cells[i], ops, shape[0], se=opts.se)
        block.eval()
        x = torch.zeros(2, *(shapes[i - 1] if i else image_shape))
        for c, cell in enumerate(block.cells):
            with torch.no_grad():
                got = tuple(block(x, c, (0,) * cell.spec.depth).shape[1:])
            if got != tuple(shape):
                raise UserError(f"student block {i} (cell {cell.spec.name}) outputs {got} but the "
                                f"teacher stage {opts.teacher_stages[i] if opts.teacher_stages else i} "
                                f"gives {tuple(shape)}", where="--teacher/--strides",
                                fix=f"use --strides {suggested_strides(cfg, shapes)} (and "
                                    "--stem-stride) so the student's sizes match the teacher's")
        blocks.append(block.to(device))
    return blocks


def teacher_checksum(teacher: Teacher) -> str:
    h = hashlib.sha256()
    for name, tensor in teacher.module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


# --- search -----------------------------------------------------------------------------------

def block_candidates(table: CostTable, cfg: dict, rows: list[dict], cells: list[CellSpec], ops,
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


def search(table: CostTable, cfg: dict, ratings: list[list[dict]], cells: list[list[CellSpec]], ops,
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


def compact(genotype: dict) -> str:
    return " | ".join(f"{s['channels']}:" + ",".join(f"e{l['expansion']}k{l['kernel']}" for l in s["layers"])
                      for s in genotype["stages"])


# --- the command --------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    opts = resolve_options(Options, args)
    target = target_of(opts)
    if opts.block is None and target is None:
        raise UserError("give a budget", where="--target-params",
                        fix="add --target-params N, --target-macs N or --target-latency-ms X")
    if opts.block is not None and (opts.out is None or opts.progressive):
        raise UserError("--block needs --out (the shared run directory) and no --progressive",
                        where="--block")
    for text, where in ((opts.depths, "--depths"), (opts.widths, "--widths")):
        if text is not None:
            check_groups(text, where)  # before any work; their count is checked per teacher
    ops = parse_ops(opts.ops)
    set_threads(opts.threads)
    device = resolve_device(opts.device)
    seed_everything(opts.seed)
    dataset = load_dataset_for(opts)
    resume = opts.resume
    if resume and opts.out is not None and not (Path(opts.out) / "checkpoint.pt").is_file() \
            and (Path(opts.out) / "round0").is_dir():
        resume = False  # stopped inside round 0: the teacher's and blocks' checkpoints carry the work
    if opts.block is not None:
        out = Path(opts.out)
    else:
        out = prepare_run_dir(opts.out, "search-dna", resume=resume)
        write_run_info(out, None, opts, device=device)
    previous = load_checkpoint(out / "checkpoint.pt") if resume and opts.block is None else {}
    started = time.perf_counter()
    source, log, result = opts.teacher, [], None
    for r in range(opts.progressive + 1):
        rdir = out / f"round{r}"
        result = search_round(opts, source, dataset, rdir, device, ops, target, r, log)
        if opts.block is not None:
            print(f"block {opts.block} trained and rated in {rdir / f'block{opts.block}'}")
            return 0
        seconds = previous.get("seconds", 0.0) + time.perf_counter() - started
        save_checkpoint(out / "checkpoint.pt", {"round": r, "log": log, "seconds": seconds})
        if r < opts.progressive:
            source = str(retrain(result["arch"], dataset, rdir / "retrained", opts, device,
                                 epochs=max(opts.final_epochs, 1))[0])
            log.append({"stage": "retrain", "round": r, "teacher_next": source})
    val_acc = None
    if opts.final_epochs:
        _, val_acc = retrain(result["arch"], dataset, out / "final", opts, device, epochs=opts.final_epochs)
    seconds = previous.get("seconds", 0.0) + time.perf_counter() - started
    write_outputs(out, opts, dataset, result, target, val_acc, seconds, log, device)
    return 0


def search_round(opts: Options, source: str, dataset: Dataset, rdir: Path, device: torch.device, ops,
                 target, round_index: int, log: list) -> dict | None:
    teacher, teacher_cfg, description = make_teacher(opts, source, dataset, rdir, device)
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
    table = CostTable(metric, rdir / f"costs_{metric}.json", device=str(device),
                      latency_runs=opts.latency_runs, threads=opts.threads or 1)
    t0 = time.perf_counter()
    front, maps = search(table, cfg, ratings, cells, ops, opts.se)
    k = front.best_index(budget, unit=METRICS[metric], where=f"--target-{metric.replace('latency', 'latency-ms')}")
    genotype = genotype_of(front, k, maps, ratings, cells, ops, opts.se)
    search_seconds = time.perf_counter() - t0
    log.append({"stage": "search", "round": round_index, "front_size": len(front),
                "seconds": round(search_seconds, 4), "cost": float(front.cost[k]), "score": float(front.score[k])})
    arch = Arch("mbconv", cfg, genotype, None,
                make_provenance("dna", dataset.name, {metric: budget}, opts.seed))
    points = [{"cost": float(front.cost[j]), "score": float(front.score[j]),
               "genotype": genotype_of(front, j, maps, ratings, cells, ops, opts.se)}
              for j in range(len(front))]
    return {"arch": arch, "front": points, "chosen": k, "metric": metric, "teacher": description,
            "round": round_index, "blocks": len(blocks),
            "candidates": [len(r) for r in ratings], "cells": [[c.name for c in cs] for cs in cells]}


def retrain(arch: Arch, dataset: Dataset, directory: Path, opts: Options, device: torch.device,
            *, epochs: int) -> tuple[Path, float]:
    """Train `arch` on the search-training split (never the held-out one); returns its directory
    (arch.json + model.safetensors, usable as a teacher) and its held-out accuracy."""
    from ...arch import build_model
    from ...train.recipes import RECIPES, default_recipe_name
    from ...train.trainer import evaluate, train_model

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


def write_outputs(out: Path, opts: Options, dataset: Dataset, result: dict, target, val_acc,
                  seconds: float, log: list, device: torch.device) -> None:
    metric, budget = target
    arch = result["arch"]
    save_arch(arch, out, "arch.json")
    chosen = result["front"][result["chosen"]]
    write_json(out / "front.json", {"metric": metric, "unit": METRICS[metric], "target": budget,
                                    "chosen": result["chosen"], "points": [
                                        {**p, "compact": compact(p["genotype"])} for p in result["front"]]})
    sizes = profile(arch)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        peak = max(peak, torch.cuda.max_memory_allocated(device) / 2**20)
    summary = {"method": "dna", "dataset": dataset.name, "target": {metric: budget},
               "params_dense": sizes["params_dense"], "params_nonzero": sizes["params_nonzero"],
               "macs": sizes["macs"], "val_acc": val_acc, "search_seconds": round(seconds, 2),
               "peak_memory_mb": round(peak, 1), "seed": opts.seed, "version": __version__,
               "cost": chosen["cost"], "score": chosen["score"], "front_size": len(result["front"]),
               "teacher": result["teacher"], "rounds": opts.progressive + 1, "blocks": result["blocks"],
               "cells": result["cells"], "candidates_per_block": result["candidates"],
               "final_epochs": opts.final_epochs}
    if metric == "latency":
        summary["latency_ms_table"] = chosen["cost"]
    write_json(out / "summary.json", summary)
    write_jsonl(out / "log.jsonl", log)
    save_checkpoint(out / "checkpoint.pt", {"round": opts.progressive, "log": log, "seconds": seconds,
                                            "done": True})
    rows = {"target": f"{budget:g} {METRICS[metric]}", "cost": f"{chosen['cost']:g}",
            "score (rel. L1 sum)": f"{chosen['score']:.4f}", "params": sizes["params_dense"],
            "macs": sizes["macs"], "val_acc": "-" if val_acc is None else f"{val_acc:.4f}",
            "front points": len(result["front"]), "network": compact(arch.genotype), "run_dir": str(out)}
    width = max(len(k) for k in rows)
    for key, value in rows.items():
        print(f"  {key:<{width}}  {value}")
    print(f"next: budgetnas train {out / 'arch.json'} --dataset {dataset.name}")
    report_at_end(out, opts.report)
