"""`budgetnas search random`: random cell networks scaled to the target size.

Candidate i draws every cell's genotype at random (each node: 2 distinct earlier nodes, a random
op on each) from a generator seeded by (seed, i), so the same seed gives the same candidates.
Each candidate is width-scaled to the target exactly like the DARTS baseline. With
--epochs-per-candidate > 0 each one is rated by a short training on the train split and the best
on the held-out val split is kept; with 0 the first candidate is kept. A checkpoint after every
candidate lets `--resume` continue to the identical result.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from pydantic import Field
from tqdm import tqdm

from ...arch import Arch, make_provenance
from ...config import add_model_arguments, resolve_options
from ...data import Dataset, load_dataset_for
from ...errors import UserError
from ...io import load_checkpoint, save_checkpoint, write_jsonl
from ...report import report_at_end, write_run_info
from ...run import prepare_run_dir, resolve_device, set_threads
from .common import (BaselineOptions, epoch_seed, peak_memory_mb, preset_value, print_result,
                     scaling_summary, shape_of, short_training, sizes, target_of, write_results)
from .scaling import NetShape, Scaled, check_target, make_arch, measure, random_cell, scale_to_target

CHECKPOINT = "checkpoint.pt"


class RandomOptions(BaselineOptions):
    candidates: int = Field(8, ge=1, description="random networks to sample")
    epochs_per_candidate: int = Field(1, ge=0, description="training epochs to rate each candidate "
                                                           "(0 = keep the first candidate)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, RandomOptions)


def candidate_cells(seed: int, index: int, layers: int) -> list[list[dict]]:
    """The genotype of candidate `index`: one random cell per layer."""
    rng = random.Random(epoch_seed(seed, index))
    return [random_cell(rng) for _ in range(layers)]


def candidate_arch(cells: list[list[dict]], shape: NetShape, target: tuple[str, int] | None,
                   width: int, provenance: dict | None = None) -> tuple[Arch, Scaled | None]:
    make = lambda c: make_arch(cells, c, shape, provenance=provenance)  # noqa: E731
    if target is None:
        return make(width), None
    scaled = scale_to_target(make, target[1], target[0])
    return scaled.arch, scaled


def rate(index: int, opts: RandomOptions, dataset: Dataset, shape: NetShape, target, width: int,
         layers: int, batch_size: int, device) -> dict:
    started = time.perf_counter()
    cells = candidate_cells(opts.seed, index, layers)
    try:
        arch, scaled = candidate_arch(cells, shape, target, width)
    except UserError as exc:  # this genotype cannot reach the target at any width
        return {"sample": index, "skipped": str(exc)}
    row = {"sample": index, "channels": scaled.channels if scaled else width,
           "params_nonzero": measure(arch, "params"), "macs": measure(arch, "macs"),
           "target_error": round(scaled.rel_error, 5) if scaled else None, "val_acc": None}
    if opts.epochs_per_candidate:
        row["val_acc"] = short_training(arch, dataset, epochs=opts.epochs_per_candidate,
                                        batch_size=batch_size, seed=epoch_seed(opts.seed, index),
                                        device=device)
    row["seconds"] = round(time.perf_counter() - started, 3)
    row["peak_memory_mb"] = round(peak_memory_mb(device), 1)
    return row


def pick(rows: list[dict], rated: bool) -> dict:
    usable = [r for r in rows if "skipped" not in r]
    if not usable:
        raise UserError("no sampled genotype can reach the target at any width", where="--target-*",
                        fix="choose a larger target or sample more --candidates")
    if not rated:
        return usable[0]
    return max(usable, key=lambda r: (r["val_acc"], -r["sample"]))  # ties: the earliest


def run_search(opts: RandomOptions, *, progress: bool = True) -> Path | None:
    target = target_of(opts)
    set_threads(opts.threads)
    device = resolve_device(opts.device)
    dataset = load_dataset_for(opts)
    layers = preset_value(opts, "cells", "layers")
    width = preset_value(opts, "C", "channels")
    batch_size = preset_value(opts, "batch_size", "batch_size")
    shape = shape_of(dataset)
    if target:
        check_target(target[1], target[0], layers, shape)
    if opts.epochs_per_candidate and len(dataset.train) < batch_size:
        raise UserError(f"too little data for batch size {batch_size} ({len(dataset.train)} training "
                        "images)", where="--batch-size", fix="lower --batch-size or raise --subset")
    out = prepare_run_dir(opts.out, "search-random", resume=opts.resume)
    target_dict = {target[0]: target[1]} if target else {}
    meta = {"target": target_dict, "dataset": opts.dataset, "subset": opts.subset,
            "image_size": opts.image_size, "layers": layers, "channels": width,
            "batch_size": batch_size, "candidates": opts.candidates,
            "epochs_per_candidate": opts.epochs_per_candidate, "seed": opts.seed}
    rows: list[dict] = []
    seconds = 0.0
    if opts.resume:
        ckpt = load_checkpoint(out / CHECKPOINT)
        if ckpt.get("meta") != meta:
            raise UserError("the options differ from those of the run being resumed", where=str(out),
                            fix="resume with the same options (or start a new --out)")
        rows, seconds = ckpt["rows"], ckpt["seconds"]
    else:
        write_run_info(out, None, opts, device=device)
    bar = tqdm(total=opts.candidates, initial=len(rows), desc="random", unit="net",
               disable=not progress or not sys.stderr.isatty())
    ran = 0
    for index in range(len(rows), opts.candidates):
        if opts.stop_after is not None and ran >= opts.stop_after:
            bar.close()
            print(f"stopped after candidate {len(rows)}; continue with --out {out} --resume")
            return None
        started = time.perf_counter()
        rows.append(rate(index, opts, dataset, shape, target, width, layers, batch_size, device))
        seconds += time.perf_counter() - started
        save_checkpoint(out / CHECKPOINT, {"rows": rows, "seconds": seconds, "meta": meta})
        write_jsonl(out / "log.jsonl", rows)
        bar.update(1)
        ran += 1
    bar.close()
    best = pick(rows, rated=opts.epochs_per_candidate > 0)
    provenance = make_provenance("random", opts.dataset, target_dict, opts.seed)
    arch, scaled = candidate_arch(candidate_cells(opts.seed, best["sample"], layers), shape, target,
                                  width, provenance)
    summary = {"method": "random", "dataset": opts.dataset, "target": target_dict, **sizes(arch, dataset),
               "val_acc": best["val_acc"], "picked": best["sample"],
               "rated_by": (f"{opts.epochs_per_candidate} training epoch(s) on the train split, "
                            "accuracy on the held-out split") if opts.epochs_per_candidate
               else "not rated: first candidate",
               "candidates": opts.candidates,
               "skipped": sum("skipped" in r for r in rows), "search_seconds": round(seconds, 2),
               "peak_memory_mb": max((r.get("peak_memory_mb", 0.0) for r in rows), default=0.0),
               "seed": opts.seed, "cells": layers, **scaling_summary(scaled),
               "options": opts.model_dump(mode="json")}
    if scaled is None:
        summary["channels"] = width
    summary = write_results(out, arch, summary)
    print_result(f"random search finished ({opts.candidates} candidates, picked #{best['sample']})",
                 summary, out, opts)
    report_at_end(out, opts.report)
    return out


def run(args: argparse.Namespace) -> int:
    opts = resolve_options(RandomOptions, args)
    run_search(opts)
    return 0
