"""The retraining loop: SGD + cosine, drop-path, auxiliary head, Cutout, grad-clip, AMP on CUDA,
atomic per-epoch checkpoints, exact resume, DistributedDataParallel under torchrun.

Determinism: every epoch draws its data order, augmentation and drop-path masks from generators
seeded by (seed, epoch), so a run resumed from the checkpoint of epoch k continues exactly as an
uninterrupted run would (bit-identical on CPU).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
from tqdm import tqdm

from .. import distributed as dist_utils
from ..arch import Arch, build_model
from ..cost import count_macs, count_nonzero, count_params
from ..data import Augment, Dataset, batches
from ..io import fault_point, load_checkpoint, save_checkpoint, save_safetensors, write_json, write_jsonl
from ..spaces import get_space
from .loop import epoch_seed, evaluate, peak_memory_mb, stop_if_not_finite
from .recipes import Recipe

CHECKPOINT = "checkpoint.pt"


def model_for_dataset(arch: Arch, dataset: Dataset, *, auxiliary: bool) -> nn.Module:
    """Build `arch` with the classes, channels and input size of `dataset` (cross-dataset
    transfer), with the space's auxiliary head when the recipe trains one."""
    overrides = {"num_classes": dataset.num_classes, "in_channels": dataset.channels,
                 "input_size": dataset.input_size}
    if auxiliary:
        overrides.update(get_space(arch.space).auxiliary_config())
    return build_model(arch, **overrides)


def train_model(arch: Arch, dataset: Dataset, out: Path, recipe: Recipe, *, seed: int = 0,
                device: torch.device = torch.device("cpu"), resume: bool = False,
                stop_after: int | None = None, progress: bool = True,
                options: dict | None = None, on_epoch=None, init: dict | None = None) -> dict:
    """Train `arch` from scratch on `dataset` and write metrics.json, model.safetensors,
    checkpoint.pt and log.jsonl into `out`. Returns the metrics.

    `stop_after` ends the process's work after that many epochs (the run stays resumable).
    `options`: what the run was started with; stored in the checkpoint, and a resume with other
    options is refused, naming the option. `on_epoch(row, total)` is called after every epoch on
    rank 0 (the train command prints a line per epoch when its output is not a terminal).
    `init`: weights to start from instead of a random initialisation (fine-tuning); with a recipe
    of 0 epochs they are only evaluated.
    """
    rank, world_size = dist_utils.init(device)
    device = dist_utils.device_for_rank(device)
    out = Path(out)
    torch.manual_seed(seed)
    model = model_for_dataset(arch, dataset, auxiliary=recipe.auxiliary_weight > 0).to(device)
    if init is not None:
        load_init_weights(model, init)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, recipe.epochs), eta_min=recipe.lr_min)
    start_epoch, log, seconds = 0, [], 0.0
    if resume:
        state = load_checkpoint(out / CHECKPOINT)
        if options is not None:
            from ..runs.context import check_same_options

            check_same_options(state.get("options", {}), options, where=out)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, log, seconds = state["epoch"] + 1, state["log"], state["seconds"]
    wrapped = model
    if world_size > 1:
        wrapped = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    train_split = dataset.full_train()
    augment = (Augment.standard(dataset, cutout=recipe.cutout) if recipe.augment
               else (Augment(cutout=recipe.cutout) if recipe.cutout else None))
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    use_amp = recipe.amp and device.type == "cuda"
    epochs = range(start_epoch, recipe.epochs)
    bar = tqdm(epochs, desc="train", unit="epoch", initial=start_epoch, total=recipe.epochs,
               disable=not progress or rank != 0 or not sys.stderr.isatty())
    done_here = 0
    for epoch in bar:
        if stop_after is not None and done_here >= stop_after:
            break
        started = time.perf_counter()
        gen = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        torch.manual_seed(epoch_seed(seed, epoch) + 1)  # drop-path masks
        if hasattr(model, "set_drop_path"):
            model.set_drop_path(recipe.drop_path * epoch / recipe.epochs)
        wrapped.train()
        totals = [0.0, 0.0, 0.0]  # loss sum, correct, samples
        for step, (x, y) in enumerate(batches(train_split, dataset, recipe.batch_size, gen=gen,
                                              shuffle=True, augment=augment, rank=rank,
                                              world_size=world_size, device=device)):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                output = wrapped(x)
                logits, aux = output if isinstance(output, tuple) else (output, None)
                loss = criterion(logits, y)
                if aux is not None:
                    loss = loss + recipe.auxiliary_weight * criterion(aux, y)
            stop_if_not_finite(loss, what="training", epoch=epoch, step=step, where=out, kept=epoch > 0,
                               fix="lower --lr, keep --grad-clip on, or check the data")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            optimizer.step()
            fault_point("train-step")
            totals[0] += loss.item() * len(y)
            totals[1] += float((logits.argmax(1) == y).sum())
            totals[2] += len(y)
        scheduler.step()
        loss_sum, correct, count = dist_utils.all_reduce_sum(totals, device)
        seconds += time.perf_counter() - started
        row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
               "train_loss": loss_sum / max(count, 1), "train_acc": correct / max(count, 1),
               "seconds": round(seconds, 3), "peak_memory_mb": round(peak_memory_mb(device), 1)}
        log.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", acc=f"{row['train_acc']:.3f}")
        if on_epoch is not None and rank == 0:
            on_epoch(row, recipe.epochs)
        if rank == 0:
            save_checkpoint(out / CHECKPOINT, {"model": model.state_dict(), "epoch": epoch,
                                               "optimizer": optimizer.state_dict(),
                                               "scheduler": scheduler.state_dict(), "log": log,
                                               "seconds": seconds, "seed": seed,
                                               "options": options or {}})
            write_jsonl(out / "log.jsonl", log)
        done_here += 1
    if recipe.epochs and (not log or log[-1]["epoch"] < recipe.epochs):
        return {"epochs": log[-1]["epoch"] if log else 0, "finished": False}
    return _finish(model, arch, dataset, out, recipe, log, seconds, seed, device, rank)


def load_init_weights(model: nn.Module, state: dict) -> None:
    """Load inherited weights; only an auxiliary head (trained here, never exported) may be missing."""
    from ..errors import UserError

    missing, unexpected = model.load_state_dict(state, strict=False) if _shapes_fit(model, state) else (None, None)
    if missing is None or unexpected or any(not k.startswith("auxiliary_head") for k in missing):
        raise UserError("the --init-from weights do not fit this architecture", where="--init-from",
                        fix="give the weights written with this arch.json (the same pick directory)")


def _shapes_fit(model: nn.Module, state: dict) -> bool:
    own = model.state_dict()
    return all(k in own and own[k].shape == v.shape for k, v in state.items())


def _finish(model: nn.Module, arch: Arch, dataset: Dataset, out: Path, recipe: Recipe,
            log: list, seconds: float, seed: int, device: torch.device, rank: int) -> dict:
    dist_utils.broadcast_state(model)
    checksums = dist_utils.gather_strings(dist_utils.state_checksum(model))
    test_acc = evaluate(model, dataset, dataset.test, device)
    plain = model_for_dataset(arch, dataset, auxiliary=False)
    plain.load_state_dict({k: v for k, v in model.state_dict().items()
                           if not k.startswith("auxiliary_head")})
    metrics = {"test_acc": test_acc, "epochs": recipe.epochs, "dataset": dataset.name,
               "params_dense": count_params(plain), "params_nonzero": count_nonzero(plain),
               "macs": count_macs(plain, dataset.shape), "train_seconds": round(seconds, 2),
               "final_train_loss": log[-1]["train_loss"] if log else None, "seed": seed,
               "peak_memory_mb": log[-1]["peak_memory_mb"] if log else round(peak_memory_mb(device), 1), "world_size": len(checksums),
               "rank_checksums": checksums, "recipe": recipe.model_dump()}
    if rank == 0:
        save_safetensors(out / "model.safetensors", plain.state_dict())
        write_json(out / "metrics.json", metrics)
    return metrics
