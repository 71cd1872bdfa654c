"""Block-wise distillation and the rating of every candidate.

Training (block i): the student block reads the teacher's stage i-1 output (block 0 reads the
image through the student stem) and regresses the teacher's stage i output with MSE; every step
samples a cell uniformly and then one op per layer uniformly (single path). Adam, weight decay on
weights only (not on 1-D parameters), learning rate x`lr_decay` per epoch. One checkpoint per
block after every epoch; the data order and the sampled paths of epoch e come from a generator
seeded by (seed, block, e), so a resumed block continues exactly as an uninterrupted one.

Rating: for every candidate, reset the BN statistics on its path, recompute them (cumulative
average) from fixed batches of the search-training split, then compare its output with the
teacher's on the held-out split of the training data (never the test split):
score = mean|y_hat - y| / std(y) (relative L1, comparable across blocks), and the MSE.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch
import torch.nn as nn
from tqdm import tqdm

from ...data import Dataset, batches
from ...errors import UserError
from ...io import fault_point, load_checkpoint, read_json, save_checkpoint, write_json
from ...train.loop import stop_if_not_finite
from .supernet import BlockSupernet
from .teacher import Teacher

BLOCK_CHECKPOINT = "checkpoint.pt"
RATINGS = "ratings.json"


def block_seed(seed: int, block: int, epoch: int) -> int:
    return (seed * 1_000_003 + block * 10_007 + epoch) % 2**63


def fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def block_io(teacher: Teacher, x: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(student block input, target) for a batch of images."""
    outs = teacher.capture(x, upto=block)
    return (x if block == 0 else outs[block - 1]), outs[block]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim > 1]
    plain = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.Adam([{"params": decay, "weight_decay": weight_decay},
                             {"params": plain, "weight_decay": 0.0}], lr=lr)


def train_block(block: BlockSupernet, teacher: Teacher, dataset: Dataset, directory: Path, *,
                epochs: int, batch_size: int, lr: float, lr_decay: float, weight_decay: float,
                seed: int, device: torch.device, settings: dict, progress: bool = True,
                stop_after: int | None = None) -> list[dict]:
    """Train one block supernet (continuing its checkpoint if the settings match). Returns the log.

    `stop_after` ends this call after that many epochs (the block stays resumable)."""
    directory = Path(directory)
    run = BlockTraining.open(block, directory, settings, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay)
    optimizer, start, log = run.optimizer, run.start, run.log
    n_cells = len(block.cells)
    bar = tqdm(range(start, epochs), desc=f"block {block.index}", unit="epoch", initial=start,
               total=epochs, disable=not progress or not _tty())
    for epoch in bar:
        if stop_after is not None and epoch - start >= stop_after:
            break
        started = time.perf_counter()
        gen = torch.Generator().manual_seed(block_seed(seed, block.index, epoch))
        block.train()
        total, count = 0.0, 0
        for step, (x, _) in enumerate(batches(dataset.train, dataset, batch_size, gen=gen, shuffle=True,
                                              device=device)):
            inputs, target = block_io(teacher, x, block.index)
            cell = int(torch.randint(n_cells, (1,), generator=gen))
            depth = block.cells[cell].spec.depth
            path = tuple(int(v) for v in torch.randint(len(block.ops), (depth,), generator=gen))
            loss = nn.functional.mse_loss(block(inputs, cell, path), target)
            stop_if_not_finite(loss, what=f"block {block.index}", epoch=epoch, step=step, where=directory,
                               kept=epoch > 0 and run.checkpoint.is_file(),
                               fix="lower --lr, or check the data and the teacher")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            fault_point("block-step")
            total += loss.item() * len(x)
            count += len(x)
        row = run.end_epoch(epoch, epochs, total / max(count, 1), started)
        bar.set_postfix(loss=f"{row['loss']:.4f}")
    return log  # a finished block's weights were loaded from its checkpoint by BlockTraining.open


class BlockTraining:
    """A block's optimizer (`make_optimizer`), its schedule (x`lr_decay` per epoch) and its
    checkpoint, continued when the checkpoint was written with the same settings: the common part
    of the two block trainers (teacher hooks, and precomputed teacher tensors)."""

    def __init__(self, block: nn.Module, directory: Path, settings: dict, *, lr: float, lr_decay: float,
                 weight_decay: float):
        self.block, self.directory, self.key = block, Path(directory), fingerprint(settings)
        self.checkpoint = self.directory / BLOCK_CHECKPOINT
        self.optimizer = make_optimizer(block, lr, weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, lr_decay)
        self.start, self.log = 0, []

    @classmethod
    def open(cls, block: nn.Module, directory: Path, settings: dict, **hyper: float) -> "BlockTraining":
        run = cls(block, directory, settings, **hyper)
        if run.checkpoint.is_file():
            state = load_checkpoint(run.checkpoint)
            if state.get("fingerprint") != run.key:
                raise UserError(f"block {block.index} in this run was trained with other settings",
                                where=str(run.directory), fix="use another --out, or the same options as before")
            block.load_state_dict(state["model"])
            run.optimizer.load_state_dict(state["optimizer"])
            run.scheduler.load_state_dict(state["scheduler"])
            run.start, run.log = state["epoch"] + 1, state["log"]
        return run

    def end_epoch(self, epoch: int, epochs: int, loss: float, started: float) -> dict:
        """Step the schedule, log the epoch and write the checkpoint; returns the log row."""
        self.scheduler.step()
        row = {"stage": "block", "block": self.block.index, "epoch": epoch + 1, "loss": loss,
               "lr": self.optimizer.param_groups[0]["lr"], "seconds": round(time.perf_counter() - started, 3)}
        self.log.append(row)
        save_checkpoint(self.checkpoint, {"model": self.block.state_dict(), "optimizer": self.optimizer.state_dict(),
                                          "scheduler": self.scheduler.state_dict(), "epoch": epoch, "log": self.log,
                                          "fingerprint": self.key, "done": epoch + 1 == epochs})
        return row


def train_on_tensors(block: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, directory: Path,
                     draw_paths, *, epochs: int, batch_size: int, lr: float, lr_decay: float,
                     weight_decay: float, seed: int, settings: dict, stop_after: int | None = None) -> list[dict]:
    """Train a block of a benchmark space on precomputed teacher (inputs, targets); resumable per
    epoch. `draw_paths(gen, steps)` gives one path per step from the epoch's generator (after the
    data order), so a resumed block continues exactly. Returns the log."""
    directory = Path(directory)
    run = BlockTraining.open(block, directory, settings, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay)
    optimizer, start, log = run.optimizer, run.start, run.log
    n = len(inputs)
    for epoch in range(start, epochs):
        if stop_after is not None and epoch - start >= stop_after:
            break
        started = time.perf_counter()
        gen = torch.Generator().manual_seed(block_seed(seed, block.index, epoch))
        order = torch.randperm(n, generator=gen)
        steps = list(range(0, n, batch_size))
        paths = draw_paths(gen, len(steps))
        block.train()
        total = 0.0
        for step, begin in enumerate(steps):
            idx = order[begin:begin + batch_size]
            loss = nn.functional.mse_loss(block(inputs[idx].float(), paths[step]), targets[idx].float())
            stop_if_not_finite(loss, what=f"block {block.index}", epoch=epoch, step=step, where=directory,
                               kept=epoch > 0 and run.checkpoint.is_file(),
                               fix="lower --lr, or check the data and the teacher")
            if loss.requires_grad:  # a path without parameters (e.g. an all-`none` cell) outputs constants
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            fault_point("block-step")
            total += loss.item() * len(idx)
        run.end_epoch(epoch, epochs, total / n, started)
    return log


def _tty() -> bool:
    import sys

    return sys.stderr.isatty()


@torch.no_grad()
def rate_block(block: BlockSupernet, teacher: Teacher, dataset: Dataset, directory: Path, *,
               recal_batches: int, batch_size: int, rate_samples: int | None, settings: dict,
               device: torch.device, progress: bool = True) -> list[dict]:
    """Rate every candidate of every cell (cached in `ratings.json` under the settings' key)."""
    path_file = Path(directory) / RATINGS
    key = fingerprint(settings)
    if path_file.is_file():
        cached = read_json(path_file, what="ratings file")
        if cached.get("fingerprint") == key:
            return cached["candidates"]
    recal = _fixed_batches(dataset, dataset.train, teacher, block.index, batch_size, recal_batches,
                           device)
    val = dataset.val
    if rate_samples is not None and rate_samples < len(val):
        from ...data import Split

        val = Split(val.x[:rate_samples], val.y[:rate_samples])
    scoring = [block_io(teacher, x, block.index) for x, _ in batches(val, dataset, batch_size, device=device)]
    y_all = torch.cat([t for _, t in scoring])
    y_std = float(y_all.float().std())
    bns = [m for m in block.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.momentum = None  # cumulative average over the recalibration batches
    rows = []
    candidates = block.candidates()
    for cell, path in tqdm(candidates, desc=f"rate block {block.index}", unit="cand",
                           disable=not progress or not _tty()):
        modules = block.path_modules(cell, path)
        for mod in modules:
            for m in mod.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.reset_running_stats()
        block.train()
        for inputs, _ in recal:
            block(inputs, cell, path)
        block.eval()
        abs_sum, sq_sum, n = 0.0, 0.0, 0
        for inputs, target in scoring:
            diff = block(inputs, cell, path) - target
            abs_sum += float(diff.abs().sum())
            sq_sum += float((diff * diff).sum())
            n += diff.numel()
        rows.append({"cell": cell, "path": list(path), "score": abs_sum / n / max(y_std, 1e-12),
                     "mse": sq_sum / n})
        fault_point("rate")
    write_json(path_file, {"fingerprint": key, "block": block.index, "target_std": y_std,
                           "candidates": rows})
    return rows


def _fixed_batches(dataset: Dataset, split, teacher: Teacher, block: int, batch_size: int,
                   count: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first `count` batches of a fixed (seed-independent) shuffle of `split`."""
    gen = torch.Generator().manual_seed(12345)
    out = []
    for x, _ in batches(split, dataset, batch_size, gen=gen, shuffle=True, device=device):
        out.append(block_io(teacher, x, block))
        if len(out) >= count:
            break
    return out
