"""Setting up a DNA round: the teacher, the student's macro config and one supernet per block."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ...data import Dataset
from ...errors import UserError
from ...spaces import get_space
from ...spaces.mbconv import CONFIG_DEFAULTS
from ...cost.mbconv import out_size
from .options import DNAOptions
from .supernet import BlockSupernet, CellSpec
from ...io import read_json
from .teacher import (TEACHER_INFO, Teacher, default_taps, held_out_accuracy, run_teacher,
                      self_supervised_teacher, torchvision_teacher, train_teacher)


def make_teacher(opts: DNAOptions, source: str, dataset: Dataset, directory: Path,
                 device: torch.device) -> tuple[Teacher, dict | None, str, float | None]:
    """(teacher, the teacher's mbconv config if it has one, a description, its held-out accuracy
    where it classifies the dataset's classes, else None)."""
    train_bn = opts.teacher_bn == "train"
    arch, val_acc = None, None
    if source.startswith("torchvision:"):
        name = source.split(":", 1)[1]
        module = torchvision_teacher(name, weights=opts.teacher_weights, download=opts.download)
        kind = name
    elif source in ("train", "none"):
        builder = train_teacher if source == "train" else self_supervised_teacher
        path = builder(dataset, directory / "teacher", epochs=opts.teacher_epochs, seed=opts.seed,
                       device=device)
        module, arch = run_teacher(path)
        kind = "mbconv"
        if source == "train":  # the self-supervised teacher has no trained classifier
            val_acc = read_json(path / TEACHER_INFO)["val_acc"]
    else:
        module, arch = run_teacher(Path(source))
        kind = arch.space
        val_acc = held_out_accuracy(module, arch, dataset, device)
    taps = opts.teacher_stages or default_taps(module, kind)
    teacher = Teacher(module, taps, train_bn=train_bn, description=f"teacher {source}").to(device)
    cfg = {**CONFIG_DEFAULTS, **arch.config} if arch is not None and arch.space == "mbconv" else None
    return teacher, cfg, f"{source} ({', '.join(taps)})", val_acc


def student_config(opts: DNAOptions, teacher_cfg: dict | None, dataset: Dataset, n_blocks: int) -> dict:
    cfg = dict(teacher_cfg or CONFIG_DEFAULTS)
    cfg.update(in_channels=dataset.channels, num_classes=dataset.num_classes,
               input_size=dataset.input_size)
    for key in ("stem_stride", "strides", "stem_channels", "first_channels", "head_channels"):
        if getattr(opts, key) is not None:
            cfg[key] = getattr(opts, key)
    if teacher_cfg is None and opts.strides is None and n_blocks != len(cfg["strides"]):
        raise UserError(f"the teacher has {n_blocks} tapped stages but the student has "
                        f"{len(cfg['strides'])} blocks", where="--teacher-stages",
                        fix=f"tap {len(cfg['strides'])} stages or give --strides with {n_blocks} entries")
    get_space("mbconv").check_config(cfg, "student")
    if len(cfg["strides"]) != n_blocks:
        raise UserError(f"{len(cfg['strides'])} strides for {n_blocks} teacher stages", where="--strides",
                        fix="give one stride per tapped teacher stage")
    return cfg


def suggested_strides(cfg: dict, shapes: list[tuple[int, ...]]) -> str:
    size = out_size(cfg["input_size"], cfg["stem_stride"])
    out = []
    for shape in shapes:
        out.append(str(max(1, round(size / max(shape[-1], 1)))))
        size = shape[-1]
    return ",".join(out)


def build_blocks(cfg: dict, cells: list[list[CellSpec]], ops, shapes: list[tuple[int, ...]],
                 opts: DNAOptions, device: torch.device, round_index: int) -> list[BlockSupernet]:
    """One supernet per block, each checked against the teacher's tensor shapes."""
    blocks = []
    image_shape = (cfg["in_channels"], cfg["input_size"], cfg["input_size"])
    for i, shape in enumerate(shapes):
        torch.manual_seed(opts.seed * 7919 + 101 * round_index + i)  # independent of block order
        c_in = shapes[i - 1][0] if i else cfg["first_channels"]
        block = BlockSupernet(cfg, i, c_in, cfg["strides"][i], cells[i], ops, shape[0], se=opts.se)
        block.eval()
        x = torch.zeros(2, *(shapes[i - 1] if i else image_shape))
        for c, cell in enumerate(block.cells):
            with torch.no_grad():
                got = tuple(block(x, c, (0,) * cell.spec.depth).shape[1:])
            if got != tuple(shape):
                raise UserError(f"student block {i} (cell {cell.spec.name}) outputs {got} but the "
                                f"teacher stage {opts.teacher_stages[i] if opts.teacher_stages else i} "
                                f"gives {tuple(shape)}", where="--teacher/--strides",
                                fix=f"use --strides {suggested_strides(cfg, shapes)} (and "
                                    "--stem-stride) so the student's sizes match the teacher's")
        blocks.append(block.to(device))
    return blocks


def teacher_checksum(teacher: Teacher) -> str:
    h = hashlib.sha256()
    for name, tensor in teacher.module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
