"""`budgetnas search darts`: first-order DARTS, then width scaling to the target size.

The search runs on the preset's supernet (cells, C). The derived cells (top-2 inputs per node by
the strongest op) are then copied into every cell and the cell width C (stem 3C) is chosen by
bisection so the network's size is nearest to --target-params / --target-macs. Width is discrete,
so the target is met up to the grid of even widths; the relative error is reported.

The search itself does not depend on the target, so `--scale-from DIR` reuses the finished search
in DIR (its architecture weights) and only scales its cells to a new target.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import Field

from ...arch import make_provenance
from ...config import add_model_arguments, resolve_options
from ...data import load_dataset_for
from ...errors import UserError
from ...io import load_checkpoint, write_jsonl
from ...report import report_at_end, write_run_info
from ...run import prepare_run_dir, resolve_device, set_threads
from .common import (BaselineOptions, preset_value, print_result, scaling_summary, shape_of, sizes,
                     target_of, write_results)
from .darts_search import CHECKPOINT, DartsSearch, DartsSettings, derive_network
from .scaling import check_target, make_arch, scale_to_target


class DartsOptions(BaselineOptions):
    epochs: int | None = Field(None, ge=1, description="search epochs (overrides the preset)")
    scale_from: Path | None = Field(None, description="finished DARTS run to reuse: skip the search, "
                                                      "scale its cells to this target")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, DartsOptions)


def settings_from(opts: DartsOptions) -> DartsSettings:
    return DartsSettings(layers=preset_value(opts, "cells", "layers"),
                         channels=preset_value(opts, "C", "channels"),
                         epochs=preset_value(opts, "epochs", "epochs"),
                         batch_size=preset_value(opts, "batch_size", "batch_size"))


def run_search(opts: DartsOptions, *, progress: bool = True) -> Path | None:
    """Run (or resume) a DARTS search; returns the run directory (None if stopped early)."""
    target = target_of(opts)
    set_threads(opts.threads)
    device = resolve_device(opts.device)
    dataset = load_dataset_for(opts)
    settings = settings_from(opts)
    shape = shape_of(dataset)
    seed = opts.seed
    target_dict = {target[0]: target[1]} if target else {}
    data_meta = {"dataset": opts.dataset, "subset": opts.subset, "image_size": opts.image_size}
    if opts.scale_from:
        searched = finished_search(opts.scale_from, data_meta)
        settings, seed = DartsSettings(**searched["settings"]), searched["seed"]
    if target:
        check_target(target[1], target[0], settings.layers, shape)  # before any search work
    out = prepare_run_dir(opts.out, "search-darts", resume=opts.resume)
    if not opts.resume:
        write_run_info(out, None, opts, device=device)
    if opts.scale_from:
        log, seconds = searched["log"], searched["seconds"]
        write_jsonl(out / "log.jsonl", log)
        model = searched["model"]
        cells = derive_network(model["alphas_normal"], model["alphas_reduce"], settings.layers)
    else:
        search = DartsSearch(dataset, out, settings, seed=opts.seed, device=device, progress=progress,
                             meta={"target": target_dict, **data_meta})
        if opts.resume:
            search.load()
        if not search.run(stop_after=opts.stop_after):
            print(f"stopped after epoch {search.epoch}; continue with --out {out} --resume")
            return None
        cells, log, seconds = search.net.genotype(), search.log, search.seconds
    provenance = make_provenance("darts", opts.dataset, target_dict, seed)
    scaled = None
    if target:
        scaled = scale_to_target(lambda c: make_arch(cells, c, shape, provenance=provenance),
                                 target[1], target[0])
        arch = scaled.arch
    else:
        arch = make_arch(cells, settings.channels, shape, provenance=provenance)
    summary = {"method": "darts", "dataset": opts.dataset, "target": target_dict,
               **sizes(arch, dataset),
               # The supernet's accuracy on the held-out split (the derived network is untrained).
               "val_acc": log[-1]["val_acc"], "val_acc_of": "supernet",
               "search_seconds": round(seconds, 2),
               "peak_memory_mb": max(r["peak_memory_mb"] for r in log), "seed": seed,
               "epochs": settings.epochs, "cells": settings.layers, "search_channels": settings.channels,
               **scaling_summary(scaled), "options": opts.model_dump(mode="json")}
    if scaled is None:
        summary["channels"] = settings.channels
    if opts.scale_from:
        summary["searched_in"] = str(opts.scale_from)
    summary = write_results(out, arch, summary)
    print_result("DARTS search finished (first order, then width scaling)", summary, out, opts)
    report_at_end(out, opts.report)
    return out


def finished_search(directory: Path, data_meta: dict) -> dict:
    """The checkpoint of a finished DARTS search on the same data."""
    path = Path(directory) / CHECKPOINT
    if not path.is_file():
        raise UserError(f"no {CHECKPOINT} of a DARTS search", where=str(directory),
                        fix="point --scale-from at the run directory of `budgetnas search darts`")
    ckpt = load_checkpoint(path)
    if "alphas_normal" not in ckpt.get("model", {}) or "settings" not in ckpt:
        raise UserError("not a DARTS search checkpoint", where=str(path),
                        fix="point --scale-from at the run directory of `budgetnas search darts`")
    if ckpt["epoch"] < ckpt["settings"]["epochs"]:
        raise UserError(f"that search stopped after epoch {ckpt['epoch']} of {ckpt['settings']['epochs']}",
                        where=str(directory), fix="finish it with --resume first")
    searched_on = {k: ckpt.get("meta", {}).get(k) for k in data_meta}
    if searched_on != data_meta:
        raise UserError(f"that search ran on other data ({searched_on})", where="--scale-from",
                        fix="give the same --dataset, --subset and --image-size")
    return ckpt


def run(args: argparse.Namespace) -> int:
    opts = resolve_options(DartsOptions, args)
    run_search(opts)
    return 0
