"""What every training loop needs: per-epoch seeds, evaluation, the NaN guard, peak memory and
gradient averaging across ranks. Used by the trainer, MGAS, DARTS, random search and DNA.
"""
from __future__ import annotations

import math
import resource
from pathlib import Path

import torch
import torch.nn as nn

from ..data import Dataset, Split, batches
from ..errors import UserError


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of epoch (or candidate) `epoch` of a run: a resumed run redraws exactly the same data
    order, augmentation and sampling as an uninterrupted one."""
    return seed * 1_000_003 + epoch


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, split: Split, device: torch.device,
             batch_size: int = 256) -> float:
    """Accuracy of `model` (eval mode) on `split`."""
    model.eval()
    correct = 0
    for x, y in batches(split, dataset, batch_size, device=device):
        correct += int((model(x).argmax(1) == y).sum())
    return correct / max(1, len(split))


def stop_if_not_finite(loss: torch.Tensor, *, what: str, epoch: int, step: int, where: str | Path,
                       kept: bool, fix: str) -> None:
    """A NaN or infinite loss stops the run (exit code 2) before it reaches the weights; the
    checkpoint of the last finished epoch, if `kept`, stays as it was.

    `what` names the loop ("training", "search", "block 2"); `epoch` counts finished epochs (the
    failing one is epoch + 1)."""
    value = float(loss.detach())
    if math.isfinite(value):
        return
    state = (f"the checkpoint of epoch {epoch} is kept" if kept else
             "no epoch had finished, so no checkpoint was written")
    raise UserError(f"{what}: loss became {value} at epoch {epoch + 1}, step {step + 1}; it stopped "
                    f"and {state}",
                    where=str(where), fix=fix)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new high-water mark, so each epoch reports its own peak (Linux RSS, or CUDA)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory since the last reset: allocated CUDA memory, or the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync_gradients(params: list[nn.Parameter]) -> None:
    """All-reduce (average) gradients across ranks; missing gradients count as zero, so every
    rank takes part in the same collective even when pruned ops were skipped."""
    import torch.distributed as dist

    if not dist.is_initialized():
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def quick_fit(model: nn.Module, dataset: Dataset, *, epochs: int, batch_size: int, seed: int,
              device: torch.device, lr: float = 0.025, what: str = "rating") -> float:
    """Rate a network by a short training: SGD + cosine on the search-training split, no
    augmentation; returns its accuracy on the held-out split (never the test split)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=3e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        gen = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        model.train()
        for step, (x, y) in enumerate(batches(dataset.train, dataset, batch_size, gen=gen, shuffle=True,
                                              drop_last=True, device=device)):
            loss = criterion(model(x), y)
            stop_if_not_finite(loss, what=what, epoch=epoch, step=step, where="--epochs-per-candidate",
                               kept=False, fix="check the data")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
        scheduler.step()
    return evaluate(model, dataset, dataset.val, device)
