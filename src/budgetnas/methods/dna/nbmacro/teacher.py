"""The teacher for DNA over the NAS-Bench-Macro space and the training of the block supernets.

**Decision (teacher):** the largest network of the space, `22222222` (every layer an inverted
residual with expansion 6 and a 5x5 kernel), at the students' widths so that a student stage and
the teacher's stage have the same output shape and no adapter is needed; `--teacher RUN_DIR` takes
any budgetnas run of an nbmacro network of that width instead. It is trained by budgetnas on the
search-training split with the NB201 teacher's recipe (SGD 0.1, cosine, weight decay 5e-4, crop and
flip); its held-out and test accuracy go to `teacher.json`. Stage outputs: `layers.1`, `layers.4`,
`layers.7`.

Block training: MSE to the teacher's stage output, one choice per layer sampled uniformly per step
(uniform path sampling), Adam with weight decay on weights only, learning rate x`lr_decay` per
epoch, one checkpoint per epoch; epoch e's order and paths come from a generator seeded by (seed,
block, e), so a resumed block continues exactly.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ....arch import Arch, build_model, make_provenance, save_arch
from ....data import Dataset
from ....io import load_safetensors, read_json, write_json
from ....spaces.nbmacro import CHOICES, STAGES
from ..blockwise import train_on_tensors
from .block import NBMacroBlockSupernet

TEACHER_GENOTYPE = "2" * sum(STAGES)
TEACHER_INFO = "teacher.json"
TAPS = ["layers.1", "layers.4", "layers.7"]
BLOCK_CHECKPOINT = "checkpoint.pt"


def space_config(dataset: Dataset, stem_channels: int) -> dict:
    return {"in_channels": dataset.channels, "num_classes": dataset.num_classes,
            "input_size": dataset.input_size, "stem_channels": stem_channels}


def train_nbmacro_teacher(dataset: Dataset, out: Path, *, stem_channels: int, epochs: int, seed: int = 0,
                          device: torch.device = torch.device("cpu")) -> Path:
    """Train (or resume, or reuse) the teacher in `out`: arch.json, model.safetensors, teacher.json."""
    from ....train.loop import evaluate
    from ....train.trainer import train_model
    from ..nb201.teacher import teacher_recipe
    from ..teacher import without_val

    out = Path(out)
    if (out / TEACHER_INFO).is_file() and (out / "model.safetensors").is_file():
        return out
    arch = Arch("nbmacro", space_config(dataset, stem_channels), TEACHER_GENOTYPE, None,
                make_provenance("dna", dataset.name, None, seed))
    save_arch(arch, out, "arch.json")
    metrics = None
    if not (out / "metrics.json").is_file():
        metrics = train_model(arch, without_val(dataset), out, teacher_recipe(epochs), seed=seed, device=device,
                              resume=(out / "checkpoint.pt").is_file(), progress=False)
    metrics = metrics or read_json(out / "metrics.json")
    model = build_model(arch).to(device)
    model.load_state_dict(load_safetensors(out / "model.safetensors"))
    write_json(out / TEACHER_INFO, {"genotype": TEACHER_GENOTYPE, "stem_channels": stem_channels, "epochs": epochs,
                                    "params": metrics["params_dense"], "macs": metrics["macs"],
                                    "val_acc": evaluate(model, dataset, dataset.val, device),
                                    "test_acc": metrics["test_acc"], "train_seconds": metrics["train_seconds"]})
    return out


def sample_paths(gen: torch.Generator, steps: int, layers: int) -> list[str]:
    picks = torch.randint(len(CHOICES), (steps, layers), generator=gen)
    return ["".join(CHOICES[i] for i in row) for row in picks.tolist()]


def train_nbmacro_block(block: NBMacroBlockSupernet, inputs: torch.Tensor, targets: torch.Tensor,
                        directory: Path, *, epochs: int, batch_size: int, lr: float, lr_decay: float,
                        weight_decay: float, seed: int, settings: dict) -> list[dict]:
    """Train one block on (inputs, targets) tensors; resumable per epoch. Returns the log."""
    def draw(gen: torch.Generator, steps: int) -> list[str]:
        return sample_paths(gen, steps, len(block.layers))

    return train_on_tensors(block, inputs, targets, directory, draw, epochs=epochs, batch_size=batch_size,
                            lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, seed=seed, settings=settings)
