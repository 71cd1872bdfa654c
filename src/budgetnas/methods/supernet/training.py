"""Training the elastic supernet: the sandwich rule with in-place distillation, optionally
progressive shrinking, channel sorting, one epoch at a time (exact resume from epoch checkpoints).

Each step trains, on the same batch, the largest subnet (cross-entropy on the labels), the
smallest and `random_subnets` random ones (cross-entropy on the largest's predicted
distribution: in-place distillation), summing their gradients into one optimizer step. Only the
largest network updates the BatchNorm running statistics, so its held-out accuracy can be read
at any time; every other subnet is recalibrated before it is judged.

Randomness comes from generators seeded by (seed, epoch): data order, augmentation and the
sampled subnets repeat exactly after a resume, and every rank under torchrun samples the same
subnets (each on its own share of the batches), so their gradients can be averaged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ...data import Augment, Dataset, batches
from ...io import fault_point
from ...train.loop import epoch_seed, evaluate, stop_if_not_finite
from .elastic import Choices, ElasticNetwork, Subnet
from .subnets import calibrate_bn, extract, genotype_of, random_subnet

PHASES = ("largest", "kernel", "kernel+depth", "kernel+depth+expansion")


@dataclass
class TrainSettings:
    epochs: int = 40
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 5e-5
    random_subnets: int = 2
    distill: bool = True
    progressive: bool = False
    sort_every: int = 1
    augment: bool = True
    grad_clip: float = 5.0
    seed: int = 0


def phase_of(epoch: int, s: TrainSettings) -> int:
    """Progressive shrinking: the epochs split evenly over the four phases (largest network only,
    then elastic kernel, + depth, + expansion); without it, always the last (everything elastic)."""
    return min(3, epoch * 4 // s.epochs) if s.progressive else 3


def phase_choices(full: Choices, phase: int) -> Choices:
    """What may vary in a phase; the rest stays at its largest value."""
    return Choices(depths=full.depths if phase >= 2 else (max(full.depths),),
                   kernels=full.kernels if phase >= 1 else (max(full.kernels),),
                   expansions=full.expansions if phase >= 3 else (max(full.expansions),))


def sandwich(net: ElasticNetwork, rng: np.random.Generator, phase: int, count: int) -> list[Subnet]:
    """Largest, smallest and `count` random subnets of the phase (the largest alone in phase 0)."""
    choices = phase_choices(net.choices, phase)
    if phase == 0:
        return [net.largest()]
    smallest = tuple(((min(choices.kernels), min(choices.expansions)),) * min(choices.depths)
                     for _ in net.widths)
    return [net.largest(), smallest] + [random_subnet(rng, net.widths, choices) for _ in range(count)]


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def make_optimizer(net: ElasticNetwork, s: TrainSettings, steps: int):
    """SGD-Nesterov; no weight decay on BatchNorm, biases and the kernel transforms (which start as
    the identity and should stay near it unless the data says otherwise). Cosine over all steps."""
    decay = [p for n, p in net.named_parameters() if p.dim() > 1 and "kernel_transforms" not in n]
    other = [p for n, p in net.named_parameters() if not (p.dim() > 1 and "kernel_transforms" not in n)]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": s.weight_decay},
                           {"params": other, "weight_decay": 0.0}], lr=s.lr, momentum=0.9, nesterov=True)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))


@torch.no_grad()
def sort_channels(net: ElasticNetwork, optimizer: torch.optim.Optimizer) -> None:
    """Most important middle channels first in every layer, momentum buffers permuted alike."""
    for layer in net.layers():
        order = layer.sort_channels()
        for tensor, dim in layer.channel_tensors():
            state = optimizer.state.get(tensor) if isinstance(tensor, nn.Parameter) else None
            if state and state.get("momentum_buffer") is not None:
                buf = state["momentum_buffer"]
                buf.copy_(buf.index_select(dim, order))


def train_step(net: ElasticNetwork, x: torch.Tensor, y: torch.Tensor, subnets: list[Subnet],
               s: TrainSettings) -> dict:
    """Forward and backward every subnet of the sandwich (gradients accumulate); returns losses."""
    net.set_active(subnets[0], track_bn=True)
    logits = net(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    teacher = logits.detach().softmax(dim=1)
    out = {"loss_largest": loss.detach(), "correct_largest": (logits.argmax(1) == y).sum()}
    for i, subnet in enumerate(subnets[1:]):
        net.set_active(subnet, track_bn=False)
        student = net(x)
        loss_i = soft_cross_entropy(student, teacher) if s.distill else F.cross_entropy(student, y)
        loss_i.backward()
        if i == 0:
            out["loss_smallest"] = loss_i.detach()
            out["ce_smallest"] = F.cross_entropy(student.detach(), y)
        else:
            out["loss_random"] = out.get("loss_random", 0.0) + loss_i.detach() / (len(subnets) - 2)
    net.set_active(net.largest())
    return out


def sync_gradients(net: nn.Module) -> None:
    """Average gradients across ranks. Every rank ran the same subnets, so the same parameters
    have gradients everywhere (the others keep none: no weight decay from a zero gradient)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        return
    params = [p for p in net.parameters() if p.grad is not None]
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
        offset += p.numel()


def train_epoch(net: ElasticNetwork, optimizer, scheduler, dataset: Dataset, epoch: int, s: TrainSettings, *,
                rank: int = 0, world: int = 1, device: torch.device = torch.device("cpu"),
                where: str = "supernet") -> dict:
    """One epoch over the search-training split; returns summed statistics (to be reduced)."""
    phase = phase_of(epoch, s)
    if s.sort_every and epoch % s.sort_every == 0 and phase == 3:
        sort_channels(net, optimizer)
    gen = torch.Generator().manual_seed(epoch_seed(s.seed, epoch))
    rng = np.random.default_rng([s.seed, epoch])
    augment = Augment(crop_padding=max(1, dataset.input_size // 8), flip=dataset.flip) if s.augment else None
    net.train()
    keys = ("loss_largest", "correct_largest", "loss_smallest", "ce_smallest", "loss_random")
    totals = dict.fromkeys(keys + ("n", "steps"), 0.0)
    for step, (x, y) in enumerate(batches(dataset.train, dataset, s.batch_size, gen=gen, shuffle=True,
                                          augment=augment, rank=rank, world_size=world, drop_last=True,
                                          device=device)):
        subnets = sandwich(net, rng, phase, s.random_subnets)
        optimizer.zero_grad(set_to_none=True)
        out = train_step(net, x, y, subnets, s)
        stop_if_not_finite(out["loss_largest"], what="supernet training", epoch=epoch, step=step, where=where,
                           kept=epoch > 0, fix="lower --lr, or check the data")
        sync_gradients(net)
        if s.grad_clip > 0:
            nn.utils.clip_grad_norm_(net.parameters(), s.grad_clip)
        optimizer.step()
        scheduler.step()
        fault_point("supernet-step")
        for k in keys:
            if k in out:
                totals[k] += float(out[k]) * (1 if k.startswith("correct") else len(y))
        totals["n"] += len(y)
        totals["steps"] += 1
    totals["phase"] = phase
    return totals


def evaluate_subnets(net: ElasticNetwork, dataset: Dataset, calibration: list[torch.Tensor],
                     device: torch.device) -> dict:
    """Held-out accuracy of the largest network (its running statistics) and of the smallest
    (extracted and recalibrated; the supernet's own statistics stay untouched)."""
    net.set_active(net.largest())
    largest = evaluate(net, dataset, dataset.val, device)
    smallest = extract(net, genotype_of(net.smallest(), net.widths)).to(memory_format=torch.channels_last)
    calibrate_bn(smallest, calibration)
    return {"val_acc_largest": largest, "val_acc_smallest": evaluate(smallest, dataset, dataset.val, device)}
