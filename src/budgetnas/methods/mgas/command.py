"""`budgetnas search mgas`: multi-granularity architecture search for a target size."""
from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Literal

from pydantic import Field

from ...config import SearchOptions, add_model_arguments, resolve_options
from ...data import load_dataset_for
from ...errors import UserError
from ...report import report_at_end, write_run_info
from ...run import prepare_run_dir, resolve_device, set_threads
from .presets import PRESETS
from .search import MGASSearch, SearchSettings

DEFAULT_TARGET_SHARE = 0.5  # without a target: half the supernet's exported size


class MGASOptions(SearchOptions):
    preset: Literal["tiny", "darts8_c24", "darts14_c44"] = Field("tiny", description="search preset")
    target_params: int | None = Field(None, ge=1, description="non-zero params of the exported network")
    target_macs: int | None = Field(None, ge=1, description="MACs of the exported network")
    stages: Literal[1, 3] = Field(3, description="3 = multi-stage search, 1 = single stage")
    bilevel: bool = Field(False, description="architecture steps on the held-out split")
    channels: int | None = Field(None, ge=2, le=4096, description="initial cell width C (overrides preset)")
    layers: int | None = Field(None, ge=1, le=64, description="number of cells (overrides preset)")
    lr_weights: float | None = Field(None, gt=0, description="learning rate of the weights (0.01)")
    batch_size: int | None = Field(None, ge=1, description="batch size (overrides preset)")
    warmup_epochs: int | None = Field(None, ge=0, description="warm-up epochs per stage")
    max_stage_epochs: int | None = Field(None, ge=1, description="search epochs per stage at most")
    final_warmup_epochs: int | None = Field(None, ge=0, description="warm-up of the final phase")
    max_final_epochs: int | None = Field(None, ge=1, description="search epochs of the final phase at most")
    commit_every: int | None = Field(None, ge=1, description="epochs between mask commits (2)")
    n_thr: int | None = Field(None, ge=1, description="lambda schedule's op-count unit (12)")
    lambda_delta: float | None = Field(None, gt=0, description="lambda schedule's first step")
    lambda_cap: bool | None = Field(None, description="freeze lambda while CE < lambda*R_size")
    mu: float = Field(0.0, ge=0, description="weight of op cost in R_size (0 = as published)")
    stage_ratio: float = Field(0.3, gt=0, lt=1, description="end a stage at this share of its size")
    regrow_ratio: float = Field(0.2, ge=0, le=1, description="share of a stage's pruned ops regrown")
    tolerance: float = Field(0.03, gt=0, lt=0.5, description="accepted relative distance to the target")
    stop_after: int | None = Field(None, ge=1, description="stop after this many epochs (resumable)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, MGASOptions)


def settings_from(opts: MGASOptions) -> SearchSettings:
    values = dict(PRESETS[opts.preset])
    for f in fields(SearchSettings):
        value = getattr(opts, f.name, None)
        if value is not None:
            values[f.name] = value
    return SearchSettings(**values)


def run_search(opts: MGASOptions, *, progress: bool = True) -> Path:
    """Run (or resume) a search; returns the run directory."""
    if opts.target_params and opts.target_macs:
        raise UserError("give one target", where="--target-params/--target-macs",
                        fix="use either --target-params or --target-macs")
    set_threads(opts.threads)
    device = resolve_device(opts.device)
    dataset = load_dataset_for(opts)
    settings = settings_from(opts)
    out = prepare_run_dir(opts.out, "search-mgas", resume=opts.resume)
    write_run_info(out, None, opts, device=device)
    target = {"macs": opts.target_macs} if opts.target_macs else {"params": opts.target_params or 0}
    search = MGASSearch(dataset, out, settings, target=target, seed=opts.seed, device=device,
                        progress=progress)
    if not (opts.target_params or opts.target_macs):
        search.goal = int(DEFAULT_TARGET_SHARE * search.sizer(search.net))
        search.target = target = {"params": search.goal}
    if opts.resume:
        search.load()
    else:
        search.check_target()
    if not search.run(stop_after=opts.stop_after):
        print(f"stopped after epoch {search.state.global_epoch}; continue with --out {out} --resume")
        return out
    summary = search.finish(opts.dataset, opts.model_dump(mode="json"))
    print_result(summary, out, opts)
    report_at_end(out, opts.report)
    return out


def print_result(summary: dict, out: Path, opts: MGASOptions) -> None:
    unit, goal = next(iter(summary["target"].items()))
    rows = {"target": f"{goal} {unit}", "params (non-zero)": summary["params_nonzero"],
            "params (dense)": summary["params_dense"], "MACs": summary["macs"],
            "off target": f"{100 * summary['target_error']:+.1f} %",
            "ops kept": summary["ops_kept"], "val acc (held-out)": f"{summary['val_acc']:.4f}",
            "search time": f"{summary['search_seconds']:.1f} s",
            "peak memory": f"{summary['peak_memory_mb']:.0f} MB", "run directory": str(out)}
    width = max(map(len, rows))
    print("MGAS search finished")
    for key, value in rows.items():
        print(f"  {key:<{width}}  {value}")
    data = "" if opts.dataset == "digits" else f" --dataset {opts.dataset}" + \
        (f" --data-dir {opts.data_dir}" if opts.data_dir else "")
    print(f"next: budgetnas train {out / 'arch.json'}{data} --out {out}-train")


def run(args: argparse.Namespace) -> int:
    opts = resolve_options(MGASOptions, args)
    run_search(opts)
    return 0
