"""`budgetnas train ARCH.json`: retrain an architecture from scratch on a dataset."""
from __future__ import annotations

import argparse
from typing import Literal

from pydantic import Field

from ..config import CommonOptions, add_model_arguments, resolve_options
from .recipes import RECIPES, Recipe, default_recipe_name


class TrainOptions(CommonOptions):
    recipe: Literal["cifar10", "cifar100", "quick"] | None = Field(
        None, description="base recipe (default: cifar10/cifar100 for those datasets, else quick)")
    epochs: int | None = Field(None, ge=1, description="override the recipe's epochs")
    batch_size: int | None = Field(None, ge=1, description="override the batch size")
    lr: float | None = Field(None, gt=0, description="override the learning rate")
    weight_decay: float | None = Field(None, ge=0, description="override the weight decay")
    drop_path: float | None = Field(None, ge=0, lt=1, description="override drop-path")
    auxiliary_weight: float | None = Field(None, ge=0, description="override the aux-head weight")
    cutout: int | None = Field(None, ge=0, description="override Cutout size (0 = off)")
    grad_clip: float | None = Field(None, ge=0, description="override gradient clipping")
    amp: bool | None = Field(None, description="bfloat16 autocast on CUDA")
    stop_after: int | None = Field(None, ge=1, description="stop after this many epochs (resumable)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("arch", help="architecture file (arch.json), or a run directory holding one")
    add_model_arguments(parser, TrainOptions)


def make_recipe(opts: TrainOptions) -> Recipe:
    base = RECIPES[opts.recipe or default_recipe_name(opts.dataset)]
    overrides = {k: getattr(opts, k) for k in Recipe.model_fields
                 if getattr(opts, k, None) is not None}
    return base.model_copy(update=overrides)


def run(args: argparse.Namespace) -> int:
    from ..arch import load_arch, save_arch
    from ..runs.context import RunContext
    from ..runs.progress import EpochLines
    from .trainer import train_model

    opts = resolve_options(TrainOptions, args)
    arch = load_arch(args.arch)
    ctx = RunContext("train", opts)
    out = ctx.open()
    save_arch(arch, out, "arch.json")
    recipe = make_recipe(opts)
    metrics = train_model(arch, ctx.dataset, out, recipe, seed=opts.seed, device=ctx.device,
                          resume=opts.resume, stop_after=opts.stop_after, options=ctx.fingerprint(),
                          on_epoch=EpochLines("train"))
    if not metrics.get("finished", True):
        print(f"stopped after epoch {metrics['epochs']}; continue with: budgetnas train {args.arch} "
              f"--out {out} --resume")
        return 0
    from ..runs.summary import print_table

    print_table("training finished", {
        "test_acc": f"{metrics['test_acc']:.4f}", "epochs": metrics["epochs"],
        "params_nonzero": metrics["params_nonzero"], "macs": metrics["macs"],
        "train_seconds": metrics["train_seconds"], "run_dir": str(out)})
    return 0


