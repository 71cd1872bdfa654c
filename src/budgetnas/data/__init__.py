"""Datasets as in-memory tensors, with deterministic splits and batched tensor augmentation.

Every dataset declares its channels, classes and input size, so networks adapt to it. The
training data is split deterministically (independent of the run seed) into `train` and `val`
for search; `test` is only ever used for final reporting.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..errors import UserError
from .sources import LOADERS

SPLIT_SEED = 20240229  # fixed: the train/val split must not change with the run seed


@dataclass
class Split:
    x: torch.Tensor  # uint8 or float images, N x C x H x W
    y: torch.Tensor  # int64 labels

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Dataset:
    name: str
    channels: int
    num_classes: int
    input_size: int
    train: Split  # training data minus `val` (search trains here)
    val: Split  # held-out part of the training data (search selects here)
    test: Split  # only for final reporting
    scale: float  # raw value that maps to 1.0
    mean: torch.Tensor
    std: torch.Tensor
    flip: bool  # horizontal flips preserve labels (not for digits)

    def full_train(self) -> Split:
        """Train + val: what retraining learns from."""
        return Split(torch.cat([self.train.x, self.val.x]), torch.cat([self.train.y, self.val.y]))

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.input_size, self.input_size)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / self.scale
        return (x - self.mean.to(x.device)) / self.std.to(x.device)


def load_dataset(name: str, data_dir: str | Path | None = None, *, download: bool = False,
                 image_size: int | None = None, subset: int | None = None,
                 val_fraction: float = 0.2, skip_bad_images: bool = False) -> Dataset:
    if name not in LOADERS:
        raise UserError(f"unknown dataset {name!r}", where="--dataset",
                        fix=f"use one of: {', '.join(LOADERS)}")
    raw = LOADERS[name](data_dir=Path(data_dir) if data_dir else None, download=download,
                        image_size=image_size, skip_bad_images=skip_bad_images)
    train_x, train_y = raw["train"]
    if subset is not None and subset < len(train_y):
        keep = _stratified_head(train_y, subset)
        train_x, train_y = train_x[keep], train_y[keep]
    order = torch.from_numpy(np.random.default_rng(SPLIT_SEED).permutation(len(train_y)))
    n_val = max(1, int(round(val_fraction * len(train_y))))
    val_idx, train_idx = order[:n_val].sort().values, order[n_val:].sort().values
    train = Split(train_x[train_idx], train_y[train_idx])
    x = train.x.float() / raw["scale"]
    dims = (0, 2, 3)
    return Dataset(name=name, channels=train_x.shape[1], num_classes=raw["num_classes"],
                   input_size=train_x.shape[-1], train=train,
                   val=Split(train_x[val_idx], train_y[val_idx]), test=Split(*raw["test"]),
                   scale=raw["scale"], mean=x.mean(dims).view(1, -1, 1, 1),
                   std=x.std(dims).clamp_min(1e-3).view(1, -1, 1, 1), flip=raw["flip"])


def load_dataset_for(opts) -> Dataset:
    """The dataset a command's options name (`CommonOptions`: dataset, data_dir, download,
    image_size, subset, skip_bad_images)."""
    return load_dataset(opts.dataset, opts.data_dir, download=opts.download,
                        image_size=opts.image_size, subset=opts.subset,
                        skip_bad_images=opts.skip_bad_images)


def _stratified_head(y: torch.Tensor, n: int) -> torch.Tensor:
    """A deterministic class-balanced subset of `n` indices: round-robin over classes."""
    order = np.random.default_rng(SPLIT_SEED + 1).permutation(len(y))
    labels = y.numpy()[order]
    rank_in_class = np.zeros(len(y), dtype=np.int64)
    for c in np.unique(labels):
        where = labels == c
        rank_in_class[where] = np.arange(where.sum())
    picked = order[np.lexsort((np.arange(len(y)), rank_in_class))[:n]]
    return torch.from_numpy(np.sort(picked))


@dataclass
class Augment:
    """Standard CIFAR augmentation on a batch: padded random crop, flip, Cutout."""

    crop_padding: int = 0
    flip: bool = False
    cutout: int = 0

    @classmethod
    def standard(cls, dataset: Dataset, *, cutout: int | None = None) -> "Augment":
        size = dataset.input_size
        default_cutout = 16 if size >= 32 else max(0, size // 4)
        return cls(crop_padding=max(1, size // 8), flip=dataset.flip,
                   cutout=default_cutout if cutout is None else cutout)

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        if self.crop_padding:
            p = self.crop_padding
            padded = torch.nn.functional.pad(x, (p, p, p, p))
            dy = torch.randint(0, 2 * p + 1, (n,), generator=gen)
            dx = torch.randint(0, 2 * p + 1, (n,), generator=gen)
            rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).view(n, 1, h, 1)
            cols = (dx.view(n, 1) + torch.arange(w).view(1, w)).view(n, 1, 1, w)
            idx_n = torch.arange(n).view(n, 1, 1, 1)
            x = padded.permute(0, 2, 3, 1)[idx_n, rows, cols].squeeze(1).permute(0, 3, 1, 2)
        if self.flip:
            flip = torch.rand(n, generator=gen) < 0.5
            x = torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
        if self.cutout:
            cy = torch.randint(0, h, (n, 1, 1), generator=gen)
            cx = torch.randint(0, w, (n, 1, 1), generator=gen)
            half = self.cutout // 2
            ys = torch.arange(h).view(1, h, 1)
            xs = torch.arange(w).view(1, 1, w)
            hole = ((ys - cy).abs() <= half - (self.cutout % 2 == 0)) & \
                   ((xs - cx).abs() <= half - (self.cutout % 2 == 0))
            x = x * (~hole).unsqueeze(1).to(x.dtype)
        return x


def batches(split: Split, dataset: Dataset, batch_size: int, *, gen: torch.Generator | None = None,
            shuffle: bool = False, augment: Augment | None = None, rank: int = 0,
            world_size: int = 1, drop_last: bool = False,
            device: torch.device | str = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Normalized (and optionally augmented) batches; rank r of `world_size` gets every r-th batch
    of the same permutation, so all ranks agree on the epoch's order without communication."""
    n = len(split)
    order = torch.randperm(n, generator=gen) if shuffle else torch.arange(n)
    starts = list(range(0, n, batch_size))
    if drop_last and n % batch_size and len(starts) > 1:
        starts = starts[:-1]
    if world_size > 1:  # equal number of steps per rank (DDP needs matched collectives)
        starts = starts[: len(starts) - len(starts) % world_size] or starts[:world_size]
        starts = starts[rank::world_size]
    for start in starts:
        idx = order[start:start + batch_size]
        x = dataset.normalize(split.x[idx])
        if augment is not None:
            x = augment(x, gen)
        yield x.to(device, non_blocking=True), split.y[idx].to(device, non_blocking=True)
