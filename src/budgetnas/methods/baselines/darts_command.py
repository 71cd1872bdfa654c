"""`budgetnas search darts`: first-order DARTS, then width scaling to the target size.

The search runs on the preset's supernet (cells, C). The derived cells (top-2 inputs per node by
the strongest op) are then copied into every cell and the cell width C (stem 3C) is chosen by
bisection so the network's size is nearest to --target-params / --target-macs. Width is discrete,
so the target is met up to the grid of even widths; the relative error is reported.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import Field

from ...arch import make_provenance
from ...config import add_model_arguments, resolve_options
from ...data import load_dataset
from ...report import report_at_end, write_run_info
from ...run import prepare_run_dir, resolve_device, set_threads
from .common import (BaselineOptions, preset_value, print_result, scaling_summary, shape_of, sizes,
                     target_of, write_results)
from .darts_search import DartsSearch, DartsSettings
from .scaling import check_target, make_arch, scale_to_target


class DartsOptions(BaselineOptions):
    epochs: int | None = Field(None, ge=1, description="search epochs (overrides the preset)")


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
    dataset = load_dataset(opts.dataset, opts.data_dir, download=opts.download,
                           image_size=opts.image_size, subset=opts.subset,
                           skip_bad_images=opts.skip_bad_images)
    settings = settings_from(opts)
    shape = shape_of(dataset)
    if target:
        check_target(target[1], target[0], settings.layers, shape)  # before any search work
    out = prepare_run_dir(opts.out, "search-darts", resume=opts.resume)
    if not opts.resume:
        write_run_info(out, None, opts, device=device)
    target_dict = {target[0]: target[1]} if target else {}
    search = DartsSearch(dataset, out, settings, seed=opts.seed, device=device, progress=progress,
                         meta={"target": target_dict, "dataset": opts.dataset, "subset": opts.subset,
                               "image_size": opts.image_size})
    if opts.resume:
        search.load()
    if not search.run(stop_after=opts.stop_after):
        print(f"stopped after epoch {search.epoch}; continue with --out {out} --resume")
        return None
    cells = search.net.genotype()
    provenance = make_provenance("darts", opts.dataset, target_dict, opts.seed)
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
               "val_acc": search.log[-1]["val_acc"], "val_acc_of": "supernet",
               "search_seconds": round(search.seconds, 2),
               "peak_memory_mb": max(r["peak_memory_mb"] for r in search.log), "seed": opts.seed,
               "epochs": settings.epochs, "cells": settings.layers, "search_channels": settings.channels,
               **scaling_summary(scaled), "options": opts.model_dump(mode="json")}
    if scaled is None:
        summary["channels"] = settings.channels
    summary = write_results(out, arch, summary)
    print_result("DARTS search finished (first order, then width scaling)", summary, out, opts)
    report_at_end(out, opts.report)
    return out


def run(args: argparse.Namespace) -> int:
    opts = resolve_options(DartsOptions, args)
    run_search(opts)
    return 0
