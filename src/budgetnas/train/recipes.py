"""Retraining recipes. `cifar10`/`cifar100` follow docs/mgas.md §7; `quick` suits the built-in digits."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(600, ge=1, description="training epochs")
    batch_size: int = Field(96, ge=1, description="batch size (per process under torchrun)")
    lr: float = Field(0.025, gt=0, description="initial learning rate (cosine to lr_min)")
    lr_min: float = Field(0.0, ge=0, description="final learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    weight_decay: float = Field(3e-4, ge=0, description="weight decay")
    drop_path: float = Field(0.2, ge=0, lt=1, description="drop-path probability (ramped up linearly)")
    auxiliary_weight: float = Field(0.4, ge=0, description="auxiliary head loss weight (0 = off)")
    cutout: int = Field(16, ge=0, description="Cutout size in pixels (0 = off)")
    augment: bool = Field(True, description="random crop + flip (flip only where labels allow)")
    grad_clip: float = Field(5.0, ge=0, description="gradient norm clip (0 = off)")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing")
    amp: bool = Field(True, description="bfloat16 autocast on CUDA (ignored on CPU)")


RECIPES: dict[str, Recipe] = {
    "cifar10": Recipe(),
    "cifar100": Recipe(batch_size=64, lr=0.02, weight_decay=5e-4),
    "quick": Recipe(epochs=5, batch_size=64, lr=0.05, drop_path=0.0, auxiliary_weight=0.4,
                    cutout=0, weight_decay=3e-4),
}


def default_recipe_name(dataset: str) -> str:
    return {"cifar10": "cifar10", "cifar100": "cifar100"}.get(dataset, "quick")
