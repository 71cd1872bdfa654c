"""What both baseline commands share: options, short training, run-directory files, the table."""
from __future__ import annotations

import resource
import sys
from pathlib import Path
from typing import Literal

import torch
import torch.nn as nn
from pydantic import Field

from ... import __version__
from ...arch import Arch, build_model, save_arch
from ...config import SearchOptions
from ...cost import count_macs, count_nonzero, count_params
from ...data import Dataset, batches
from ...errors import UserError
from ...io import write_json
from .presets import PRESETS
from .scaling import NetShape, Scaled


# Sanity limits for typed values (a mistyped extra digit must not try to allocate gigabytes).
MAX_LAYERS, MAX_CHANNELS = 64, 4096


class BaselineOptions(SearchOptions):
    preset: Literal["tiny", "darts8_c24", "darts14_c44"] = Field("tiny", description="size preset")
    target_params: int | None = Field(None, ge=1, description="non-zero params of the final network")
    target_macs: int | None = Field(None, ge=1, description="MACs of the final network")
    layers: int | None = Field(None, ge=1, le=MAX_LAYERS, description="number of cells (overrides the preset)")
    channels: int | None = Field(None, ge=2, le=MAX_CHANNELS,
                                 description="cell width C without a target (overrides the preset)")
    batch_size: int | None = Field(None, ge=2, description="batch size (overrides the preset)")
    stop_after: int | None = Field(None, ge=1, description="stop after this many steps of work (resumable)")


def preset_value(opts: BaselineOptions, key: str, option: str):
    value = getattr(opts, option, None)
    return PRESETS[opts.preset][key] if value is None else value


def target_of(opts: BaselineOptions) -> tuple[str, int] | None:
    if opts.target_params and opts.target_macs:
        raise UserError("give one target", where="--target-params/--target-macs",
                        fix="use either --target-params or --target-macs")
    if opts.channels is not None and opts.channels % 2:
        raise UserError(f"the cell width must be even, got {opts.channels}", where="--channels",
                        fix="FactorizedReduce splits a cell's channels in two; use an even width")
    if opts.target_macs:
        return "macs", opts.target_macs
    if opts.target_params:
        return "params", opts.target_params
    return None


def shape_of(dataset: Dataset) -> NetShape:
    return NetShape(dataset.channels, dataset.num_classes, dataset.input_size)


def epoch_seed(seed: int, epoch: int) -> int:
    """Per-epoch (or per-candidate) seed, so a resumed run redraws exactly the same randomness."""
    return seed * 1_000_003 + epoch


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def accuracy(model: nn.Module, dataset: Dataset, split, device: torch.device,
             batch_size: int = 256) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in batches(split, dataset, batch_size, device=device):
            correct += int((model(x).argmax(1) == y).sum())
    return correct / max(1, len(split))


def short_training(arch: Arch, dataset: Dataset, *, epochs: int, batch_size: int, seed: int,
                   device: torch.device, lr: float = 0.025) -> float:
    """Rate an architecture: train it on the train split (SGD, cosine, no augmentation) and return
    its accuracy on the held-out val split (never the test split)."""
    torch.manual_seed(seed)
    model = build_model(arch).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=3e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        gen = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        model.train()
        for x, y in batches(dataset.train, dataset, batch_size, gen=gen, shuffle=True,
                            drop_last=True, device=device):
            optimizer.zero_grad(set_to_none=True)
            criterion(model(x), y).backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
        scheduler.step()
    return accuracy(model, dataset, dataset.val, device)


def sizes(arch: Arch, dataset: Dataset) -> dict:
    model = build_model(arch)
    return {"params_dense": count_params(model), "params_nonzero": count_nonzero(model),
            "macs": count_macs(model, dataset.shape)}


def scaling_summary(scaled: Scaled | None) -> dict:
    if scaled is None:
        return {"channels": None, "target_error": None}
    return {"channels": scaled.channels, "stem_channels": scaled.arch.config["stem_channels"],
            "target_error": round(scaled.rel_error, 5),
            "width_grid": {"step": 2, "neighbours": {str(k): v for k, v in scaled.neighbours.items()},
                           "note": "width is discrete (even C); the target is met up to this grid"}}


def write_results(out: Path, arch: Arch, summary: dict) -> dict:
    """arch.json and summary.json, each written atomically."""
    save_arch(arch, out)
    summary = {**summary, "version": __version__}
    write_json(out / "summary.json", summary)
    return summary


def print_result(title: str, summary: dict, out: Path, opts: BaselineOptions, file=None) -> None:
    file = file or sys.stdout  # looked up at call time (tests capture it)
    target = summary.get("target") or {}
    unit, goal = next(iter(target.items())) if target else ("", None)
    error = summary.get("target_error")
    val = summary.get("val_acc")
    rows = {"target": f"{goal} {unit}" if goal else "none (preset width)",
            "cell width C": summary.get("channels"),
            "params (non-zero)": summary["params_nonzero"], "MACs": summary["macs"],
            "off target": f"{100 * error:+.2f} % (width is discrete)" if error is not None else "-",
            "val acc (held-out)": f"{val:.4f}" if val is not None else "- (not rated)",
            "search time": f"{summary['search_seconds']:.1f} s",
            "peak memory": f"{summary['peak_memory_mb']:.0f} MB", "run directory": str(out)}
    width = max(map(len, rows))
    print(title, file=file)
    for key, value in rows.items():
        print(f"  {key:<{width}}  {value}", file=file)
    data = "" if opts.dataset == "digits" else f" --dataset {opts.dataset}" + \
        (f" --data-dir {opts.data_dir}" if opts.data_dir else "") + \
        (f" --image-size {opts.image_size}" if opts.image_size else "")
    print(f"next: budgetnas train {out / 'arch.json'}{data} --out {out}-train", file=file)
