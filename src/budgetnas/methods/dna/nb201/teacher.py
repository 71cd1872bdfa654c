"""The teacher for DNA over the NAS-Bench-201 space: an NB201 network, wider and deeper than the
proxy students, trained by budgetnas on the search-training split.

**Decision (teacher cell):** the largest cell with an identity shortcut,
`|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|`
(five 3x3 convolutions plus a skip from the cell input to its output, the ResNet principle). It is
chosen by size and shortcut, not by looking up the benchmark; it does rank near the top of the
table (94.36 %), so students with this cell may be favoured by mimicry (docs/dna.md).

**Decision (size):** by default twice the students' width and twice their cells per stage, so the
teacher is clearly larger than every candidate it rates (students read its stage outputs through
1x1 adapters). Its held-out (val) and test accuracy are written to `teacher.json`.

Stage outputs are the last cell of each stage: `cells.{N-1}`, `cells.{2N}`, `cells.{3N+1}` for
N cells per stage (the reduction blocks sit at `cells.N` and `cells.2N+1`).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ....arch import Arch, build_model, make_provenance, save_arch
from ....data import Dataset
from ....io import load_safetensors, read_json, write_json
from ....spaces.nb201 import parse_arch_string
from ..options import NB201_TEACHER_CELL as TEACHER_CELL

TEACHER_INFO = "teacher.json"


def stage_taps(cells_per_stage: int) -> list[str]:
    """Names of the modules whose outputs end stages 0, 1, 2 of an NB201Network."""
    n = cells_per_stage
    return [f"cells.{n - 1}", f"cells.{2 * n}", f"cells.{3 * n + 1}"]


def teacher_arch(dataset: Dataset, *, channels: int, cells: int, genotype: str = TEACHER_CELL,
                 seed: int = 0) -> Arch:
    parse_arch_string(genotype, where="--nb201-teacher-cell")
    config = {"in_channels": dataset.channels, "num_classes": dataset.num_classes,
              "input_size": dataset.input_size, "C": channels, "cells_per_stage": cells}
    return Arch("nb201", config, genotype, None, make_provenance("dna", dataset.name, None, seed))


def teacher_recipe(epochs: int, *, lr: float = 0.1, batch_size: int = 128):
    """SGD + cosine, crop and flip, no cutout, drop-path or auxiliary head.

    **Decision:** the NAS-Bench-201 recipe's learning rate (0.1) and weight decay (5e-4), shortened
    to `epochs`; cutout is off because the proxy images are small (16 px)."""
    from ....train.recipes import Recipe

    return Recipe(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=5e-4, drop_path=0.0,
                  auxiliary_weight=0.0, cutout=0, augment=True, grad_clip=5.0)


def train_nb201_teacher(dataset: Dataset, out: Path, *, channels: int, cells: int, epochs: int,
                        genotype: str = TEACHER_CELL, seed: int = 0, lr: float = 0.1,
                        device: torch.device = torch.device("cpu"), progress: bool = False) -> Path:
    """Train (or resume, or reuse) the teacher in `out`; returns `out` (arch.json +
    model.safetensors + teacher.json with val/test accuracy). Never sees the held-out split."""
    from ....train.loop import evaluate
    from ....train.trainer import train_model

    from ..teacher import without_val

    out = Path(out)
    if (out / TEACHER_INFO).is_file() and (out / "model.safetensors").is_file():
        return out
    arch = teacher_arch(dataset, channels=channels, cells=cells, genotype=genotype, seed=seed)
    save_arch(arch, out, "arch.json")
    metrics = None
    if not (out / "metrics.json").is_file():
        metrics = train_model(arch, without_val(dataset), out, teacher_recipe(epochs, lr=lr),
                              seed=seed, device=device, resume=(out / "checkpoint.pt").is_file(),
                              progress=progress)
    metrics = metrics or read_json(out / "metrics.json")
    model = build_model(arch).to(device)
    model.load_state_dict(load_safetensors(out / "model.safetensors"))
    info = {"genotype": genotype, "C": channels, "cells_per_stage": cells, "epochs": epochs,
            "params": metrics["params_dense"], "macs": metrics["macs"],
            "val_acc": evaluate(model, dataset, dataset.val, device),
            "test_acc": metrics["test_acc"], "train_seconds": metrics["train_seconds"]}
    write_json(out / TEACHER_INFO, info)
    return out
