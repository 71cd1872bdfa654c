"""`budgetnas train ARCH.json`: retrain an architecture from scratch on a dataset, or fine-tune it
from inherited weights (`--init-from DIR`, e.g. a pick of `generate --supernet`; `--epochs 0`
only evaluates them and writes metrics.json)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

from pydantic import Field

from ..config import CommonOptions, add_model_arguments, resolve_options
from ..errors import UserError
from .recipes import RECIPES, Recipe, default_recipe_name


class TrainOptions(CommonOptions):
    recipe: Literal["cifar10", "cifar100", "quick"] | None = Field(
        None, description="base recipe (default: cifar10/cifar100 for those datasets, else quick)")
    epochs: int | None = Field(None, ge=0, description="override the recipe's epochs (0: only evaluate the "
                               "--init-from weights)")
    batch_size: int | None = Field(None, ge=1, description="override the batch size")
    lr: float | None = Field(None, gt=0, description="override the learning rate")
    weight_decay: float | None = Field(None, ge=0, description="override the weight decay")
    drop_path: float | None = Field(None, ge=0, lt=1, description="override drop-path")
    auxiliary_weight: float | None = Field(None, ge=0, description="override the aux-head weight")
    cutout: int | None = Field(None, ge=0, description="override Cutout size (0 = off)")
    grad_clip: float | None = Field(None, ge=0, description="override gradient clipping")
    amp: bool | None = Field(None, description="bfloat16 autocast on CUDA")
    stop_after: int | None = Field(None, ge=1, description="stop after this many epochs (resumable)")
    init_from: Path | None = Field(None, description="start from these weights: a directory holding "
                                   "model.safetensors (a pick of generate --supernet, a train run) or the file")


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
    if opts.epochs == 0 and opts.init_from is None:
        raise UserError("0 epochs train nothing", where="--epochs",
                        fix="give --epochs 1 or more (or --init-from DIR to only evaluate those weights)")
    arch = load_arch(args.arch)
    init = load_init(opts.init_from) if opts.init_from else None
    ctx = RunContext("train", opts)
    out = ctx.open()
    if ctx.is_main:
        save_arch(arch, out, "arch.json")
    recipe = make_recipe(opts)
    metrics = train_model(arch, ctx.dataset, out, recipe, seed=opts.seed, device=ctx.device,
                          resume=opts.resume, stop_after=opts.stop_after, options=ctx.fingerprint(),
                          on_epoch=EpochLines("train"), init=init)
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


def load_init(path: Path) -> dict:
    """The weights `--init-from` names (a directory's model.safetensors, or the file itself)."""
    from ..io import load_safetensors

    path = Path(path)
    file = path / "model.safetensors" if path.is_dir() else path
    if not file.is_file():
        raise UserError("no model.safetensors here", where=f"--init-from {path}",
                        fix="give a pick directory of generate --supernet, a train run, or a .safetensors file")
    return load_safetensors(file)

