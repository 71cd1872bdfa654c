"""`budgetnas search supernet`: train an elastic MBConv supernet once on the user's data.

    budgetnas search supernet --space mbconv --epochs 40 --out runs/supernet
    budgetnas generate --supernet runs/supernet --cost latency --budgets q10,q50,q90

One step = one epoch (sandwich rule, in-place distillation; `training.py`), checkpointed after
every epoch, so `--resume` continues to identical weights. Under torchrun every rank trains the
same subnets on its own share of each epoch and the gradients are averaged. The run directory
holds supernet.safetensors + supernet.json (`files.py`), summary.json, log.jsonl and the report;
there is no single architecture (summary sizes are those of the largest subnet, in `largest`).
"""
from __future__ import annotations

import dataclasses
import time

import torch

from ... import distributed as dist_utils
from ...arch import Arch
from ...cost import profile
from ...errors import UserError
from ...runs import Method
from ...spaces import decision_view
from ...spaces.mbconv import template_widths
from ...train.loop import evaluate, peak_memory_mb, reset_peak_memory
from .elastic import ElasticNetwork
from .files import save_supernet
from .options import SupernetOptions
from .subnets import CALIBRATION_SEED, calibrate_bn, calibration_batches, extract, genotype_of
from .training import PHASES, TrainSettings, evaluate_subnets, make_optimizer, train_epoch

CALIBRATION_BATCH = 256


class SupernetMethod(Method):
    title = "supernet trained"
    unit = "epoch"
    opts: SupernetOptions

    def check(self, ctx) -> None:
        ds, opts = ctx.dataset, self.opts
        if len(ds.train) < 2 * ctx.world:
            raise UserError(f"only {len(ds.train)} training images", where="--subset",
                            fix="give more training data")
        _, self.config = decision_view(opts.space, in_channels=ds.channels, num_classes=ds.num_classes,
                                       input_size=ds.input_size)
        self.widths = template_widths(ds.input_size)
        self.settings = TrainSettings(
            epochs=opts.epochs, batch_size=min(opts.batch_size, len(ds.train)), lr=opts.lr,
            weight_decay=opts.weight_decay, random_subnets=opts.random_subnets, distill=opts.distill,
            progressive=opts.progressive, sort_every=opts.sort_every, augment=opts.augment, seed=opts.seed)

    def prepare(self, ctx) -> None:
        torch.manual_seed(self.opts.seed)
        # channels_last: the depthwise convolutions (most of the time) run about twice as fast on
        # CPUs; no 1x1 convolution of the space has a stride (docs/reliability.md).
        self.net = ElasticNetwork(self.config, self.widths).to(ctx.device, memory_format=torch.channels_last)
        steps = steps_per_epoch(len(ctx.dataset.train), self.settings.batch_size, ctx.world)
        self.optimizer, self.scheduler = make_optimizer(self.net, self.settings, self.settings.epochs * steps)
        self.calibration = calibration_batches(ctx.dataset, self.opts.calibration_images, CALIBRATION_BATCH,
                                               ctx.device)
        self.epoch = 0

    @property
    def done(self) -> bool:
        return self.epoch >= self.settings.epochs

    @property
    def progress(self) -> tuple[int, int | None]:
        return self.epoch, self.settings.epochs

    def step(self) -> dict:
        ctx, s = self.ctx, self.settings
        started = time.perf_counter()
        reset_peak_memory(ctx.device)
        totals = train_epoch(self.net, self.optimizer, self.scheduler, ctx.dataset, self.epoch, s,
                             rank=ctx.rank, world=ctx.world, device=ctx.device, where=str(ctx.out))
        phase = int(totals.pop("phase"))
        keys = list(totals)
        summed = dict(zip(keys, dist_utils.all_reduce_sum([totals[k] for k in keys], ctx.device)))
        dist_utils.broadcast_state(self.net)  # BatchNorm statistics drift apart per rank
        self.epoch += 1
        n = max(summed["n"], 1.0)
        row = {"epoch": self.epoch, "phase": PHASES[phase], "lr": self.optimizer.param_groups[0]["lr"],
               "loss_largest": summed["loss_largest"] / n, "train_acc_largest": summed["correct_largest"] / n}
        if summed["ce_smallest"]:
            row.update(loss_smallest=summed["loss_smallest"] / n, ce_smallest=summed["ce_smallest"] / n)
        if summed["loss_random"]:
            row["loss_random"] = summed["loss_random"] / n
        row.update(evaluate_subnets(self.net, ctx.dataset, self.calibration, ctx.device))
        row.update(seconds=round(time.perf_counter() - started, 3),
                   peak_memory_mb=round(peak_memory_mb(ctx.device), 1))
        return row

    def step_line(self, row: dict) -> str:
        return (f"loss {row['loss_largest']:.3f}  val largest {row['val_acc_largest']:.3f} "
                f"smallest {row['val_acc_smallest']:.3f}")

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"])

    def result(self) -> tuple[Arch | None, dict]:
        ctx, opts, ds = self.ctx, self.opts, self.ctx.dataset
        net = self.net.eval()
        ends = {}
        for name, subnet in (("largest", net.largest()), ("smallest", net.smallest())):
            genotype = genotype_of(subnet, self.widths)
            model = calibrate_bn(extract(net, genotype), self.calibration)
            arch = Arch(opts.space, self.config, genotype)
            sizes = profile(arch)
            ends[name] = {"val_acc": evaluate(model, ds, ds.val, ctx.device), "params": sizes["params_dense"],
                          "macs": sizes["macs"]}
        meta = {"dataset": {"name": opts.dataset, "channels": ds.channels, "input_size": ds.input_size,
                            "num_classes": ds.num_classes, "data_dir": opts.data_dir, "image_size": opts.image_size,
                            "subset": opts.subset},
                "calibration": {"images": min(opts.calibration_images, len(ds.train)),
                                "batch_size": CALIBRATION_BATCH, "seed": CALIBRATION_SEED},
                "training": dataclasses.asdict(self.settings), "epochs_done": self.epoch}
        if ctx.is_main:
            save_supernet(net, ctx.out, meta)
        extras = {"val_acc": ends["largest"]["val_acc"], "largest": ends["largest"], "smallest": ends["smallest"],
                  "supernet": "supernet.json", "supernet_params": sum(p.numel() for p in net.parameters()),
                  "epochs": self.epoch, "world_size": ctx.world,
                  "rank_checksums": dist_utils.gather_strings(dist_utils.state_checksum(net)),
                  "options": opts.model_dump(mode="json")}
        return None, extras

    def table_rows(self, summary: dict) -> dict:
        largest, smallest = summary["largest"], summary["smallest"]
        return {"largest subnet": f"{largest['params']:,} params, {largest['macs']:,} MACs, "
                                  f"held-out acc {largest['val_acc']:.4f}",
                "smallest subnet": f"{smallest['params']:,} params, {smallest['macs']:,} MACs, "
                                   f"held-out acc {smallest['val_acc']:.4f}",
                "next": f"budgetnas generate --supernet {self.ctx.out} --cost macs --budgets q10,q50,q90"}


def steps_per_epoch(n: int, batch_size: int, world: int) -> int:
    """Optimizer steps per epoch on one rank (as `data.batches` with drop_last splits them)."""
    count = len(range(0, n, batch_size))
    if n % batch_size and count > 1:
        count -= 1
    if world > 1:
        count = (count - count % world) or world
    return max(1, count // world)
