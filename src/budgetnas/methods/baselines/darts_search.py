"""First-order DARTS over the DARTS cell space with MGAS's 7 ops (no `none`).

Supernet: every edge is a mixed op, the softmax of its row of architecture weights over the 7
ops; all normal cells share `alphas_normal` and all reduction cells `alphas_reduce`, as in DARTS.
Bi-level, first order: each step first updates the alphas (Adam) on a batch of the val split,
then the weights (SGD, cosine) on a batch of the train split. Every epoch draws its data order
from (seed, epoch) and the full state is checkpointed after every epoch, so `--resume` continues
to the identical result.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from ...data import Dataset, batches
from ...errors import UserError
from ...io import load_checkpoint, save_checkpoint, write_jsonl
from ...layers import FactorizedReduce, ReLUConvBN
from ...spaces.darts import OPS, make_op
from .common import accuracy, epoch_seed, peak_memory_mb
from .scaling import STEM_MULTIPLIER, STEPS, cell_edges, cell_widths, derive_cell, reduction_cells

CHECKPOINT = "checkpoint.pt"


@dataclass
class DartsSettings:
    layers: int = 3
    channels: int = 4
    epochs: int = 8
    batch_size: int = 64
    lr_weights: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    lr_alpha: float = 3e-4
    alpha_betas: tuple = (0.5, 0.999)
    alpha_weight_decay: float = 1e-3
    grad_clip: float = 5.0


class MixedOp(nn.Module):
    def __init__(self, channels: int, stride: int):
        super().__init__()
        # Pools get BN (affine-free) so their scale matches the conv ops', as in DARTS.
        self.ops = nn.ModuleList(make_op(name, channels, stride, None, True) for name in OPS)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self.ops))


class SearchCell(nn.Module):
    def __init__(self, c_pp: int, c_p: int, channels: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = FactorizedReduce(c_pp, channels) if reduction_prev else ReLUConvBN(c_pp, channels)
        self.preprocess1 = ReLUConvBN(c_p, channels)
        self.edges = cell_edges(STEPS)
        self.ops = nn.ModuleList(MixedOp(channels, 2 if reduction and src < 2 else 1)
                                 for src, _ in self.edges)
        self.out_channels = channels * STEPS

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        k = 0
        for dst in range(2, STEPS + 2):
            total = 0
            for src in range(dst):
                total = total + self.ops[k](states[src], weights[k])
                k += 1
            states.append(total)
        return torch.cat(states[2:], dim=1)


class DartsSupernet(nn.Module):
    def __init__(self, *, channels: int, layers: int, in_channels: int, num_classes: int):
        super().__init__()
        c_stem = STEM_MULTIPLIER * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_stem))
        reductions = set(reduction_cells(layers))
        self.cells = nn.ModuleList()
        c_pp, c_p, reduction_prev = c_stem, c_stem, False
        for i, width in enumerate(cell_widths(channels, layers)):
            cell = SearchCell(c_pp, c_p, width, i in reductions, reduction_prev)
            self.cells.append(cell)
            c_pp, c_p, reduction_prev = c_p, cell.out_channels, cell.reduction
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        n_edges = len(cell_edges(STEPS))
        # Small random start, as in DARTS (all ops nearly equal).
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(n_edges, len(OPS)))
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(n_edges, len(OPS)))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas_normal, self.alphas_reduce]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("alphas_")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normal = F.softmax(self.alphas_normal, dim=-1)
        reduce = F.softmax(self.alphas_reduce, dim=-1)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, reduce if cell.reduction else normal)
        return self.classifier(self.global_pooling(s1).flatten(1))

    def genotype(self) -> list[list[dict]]:
        """Derived edges of every cell (each cell its own copy of the normal or reduce cell)."""
        return derive_network(self.alphas_normal, self.alphas_reduce, len(self.cells))


def derive_network(alphas_normal: torch.Tensor, alphas_reduce: torch.Tensor, layers: int) -> list[list[dict]]:
    """Standard DARTS derivation of the shared normal and reduce cells, copied into every cell."""
    normal = derive_cell(F.softmax(alphas_normal.detach().float(), dim=-1))
    reduce = derive_cell(F.softmax(alphas_reduce.detach().float(), dim=-1))
    reductions = set(reduction_cells(layers))
    return [[dict(e) for e in (reduce if i in reductions else normal)] for i in range(layers)]


class DartsSearch:
    def __init__(self, dataset: Dataset, out: Path, settings: DartsSettings, *, seed: int,
                 device: torch.device, meta: dict, progress: bool = True):
        self.ds, self.out, self.s, self.seed, self.device = dataset, out, settings, seed, device
        self.meta = meta  # options that must match on resume (target, dataset)
        self.progress = progress
        torch.manual_seed(seed)
        self.net = DartsSupernet(channels=settings.channels, layers=settings.layers,
                                 in_channels=dataset.channels, num_classes=dataset.num_classes).to(device)
        s = settings
        self.w_opt = torch.optim.SGD(self.net.weight_parameters(), lr=s.lr_weights, momentum=s.momentum,
                                     weight_decay=s.weight_decay)
        self.a_opt = torch.optim.Adam(self.net.arch_parameters(), lr=s.lr_alpha, betas=tuple(s.alpha_betas),
                                      weight_decay=s.alpha_weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_opt, s.epochs, eta_min=s.lr_min)
        self.epoch, self.seconds, self.log = 0, 0.0, []
        if len(dataset.train) < s.batch_size or len(dataset.val) < 2:
            raise UserError(f"too little data for batch size {s.batch_size} ({len(dataset.train)} "
                            f"training and {len(dataset.val)} held-out images)", where="--batch-size",
                            fix="lower --batch-size or raise --subset")

    def state(self) -> dict:
        return {"model": self.net.state_dict(), "w_opt": self.w_opt.state_dict(),
                "a_opt": self.a_opt.state_dict(), "scheduler": self.scheduler.state_dict(),
                "epoch": self.epoch, "seconds": self.seconds, "log": self.log,
                "settings": asdict(self.s), "seed": self.seed, "meta": self.meta}

    def save(self) -> None:
        save_checkpoint(self.out / CHECKPOINT, self.state())
        write_jsonl(self.out / "log.jsonl", self.log)

    def load(self) -> None:
        ckpt = load_checkpoint(self.out / CHECKPOINT)
        if ckpt.get("settings") != asdict(self.s) or ckpt.get("seed") != self.seed \
                or ckpt.get("meta") != self.meta:
            raise UserError("the options differ from those of the run being resumed", where=str(self.out),
                            fix="resume with the same options (or start a new --out)")
        self.net.load_state_dict(ckpt["model"])
        self.w_opt.load_state_dict(ckpt["w_opt"])
        self.a_opt.load_state_dict(ckpt["a_opt"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.epoch, self.seconds, self.log = ckpt["epoch"], ckpt["seconds"], ckpt["log"]

    @property
    def done(self) -> bool:
        return self.epoch >= self.s.epochs

    def run(self, *, stop_after: int | None = None) -> bool:
        """Search until the last epoch (True) or until `stop_after` epochs ran here (False)."""
        bar = tqdm(total=self.s.epochs, initial=self.epoch, desc="darts", unit="epoch",
                   disable=not self.progress or not sys.stderr.isatty())
        ran = 0
        while not self.done:
            if stop_after is not None and ran >= stop_after:
                bar.close()
                return False
            row = self.one_epoch()
            bar.update(1)
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", val=f"{row['val_acc']:.3f}")
            ran += 1
        bar.close()
        return True

    def _val_stream(self, gen: torch.Generator):
        """Endless shuffled val batches (reshuffled on each pass, from the epoch's generator)."""
        while True:
            yield from batches(self.ds.val, self.ds, self.s.batch_size, gen=gen, shuffle=True,
                               drop_last=True, device=self.device)

    def one_epoch(self) -> dict:
        started = time.perf_counter()
        seed = epoch_seed(self.seed, self.epoch)
        torch.manual_seed(seed)
        train_gen = torch.Generator().manual_seed(seed)
        val_stream = self._val_stream(torch.Generator().manual_seed(seed + 1))
        criterion = nn.CrossEntropyLoss()
        net, s = self.net, self.s
        net.train()
        loss_sum = correct = count = 0.0
        for x, y in batches(self.ds.train, self.ds, s.batch_size, gen=train_gen, shuffle=True,
                            drop_last=True, device=self.device):
            xv, yv = next(val_stream)
            # Architecture step on held-out data with the current weights (first order).
            self.a_opt.zero_grad(set_to_none=True)
            criterion(net(xv), yv).backward()
            self.a_opt.step()
            # Weight step on training data.
            self.w_opt.zero_grad(set_to_none=True)
            logits = net(x)
            loss = criterion(logits, y)
            loss.backward()
            nn.utils.clip_grad_norm_(net.weight_parameters(), s.grad_clip)
            self.w_opt.step()
            loss_sum += loss.item() * len(y)
            correct += float((logits.argmax(1) == y).sum())
            count += len(y)
        lr = self.w_opt.param_groups[0]["lr"]
        self.scheduler.step()
        self.epoch += 1
        row = {"epoch": self.epoch, "lr": lr, "train_loss": loss_sum / max(count, 1),
               "train_acc": correct / max(count, 1),
               "val_acc": accuracy(net, self.ds, self.ds.val, self.device),
               "normal_cell": derive_cell(F.softmax(net.alphas_normal.detach(), dim=-1)),
               "seconds": round(time.perf_counter() - started, 3),
               "peak_memory_mb": round(peak_memory_mb(self.device), 1)}
        self.seconds += time.perf_counter() - started
        self.log.append(row)
        self.save()
        return row
