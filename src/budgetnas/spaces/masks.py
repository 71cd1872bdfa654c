"""Weight masks: zeros kept at zero through training, for any space's network."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ArchError


def apply_weight_masks(model: nn.Module, masks: dict[str, torch.Tensor], *, where: str) -> None:
    """Zero masked weights and keep them zero in training (their gradients are masked too).

    With zero weights, zero gradients and zero initial momentum, SGD with weight decay never
    revives a masked weight, so the module stays a plain `nn.Conv2d`.
    """
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        if name not in params:
            raise ArchError(f"mask {name!r} names no weight of the network", where=where,
                            fix="re-export the architecture with its masks")
        weight = params[name]
        if tuple(mask.shape) != tuple(weight.shape):
            raise ArchError(f"mask {name!r} has shape {tuple(mask.shape)}, the weight "
                            f"{tuple(weight.shape)}", where=where, fix="re-export the architecture")
        module = model.get_submodule(name.rsplit(".", 1)[0])
        module.register_buffer("weight_mask", mask.to(weight.device, weight.dtype).clone(), persistent=False)
        with torch.no_grad():
            weight.mul_(module.weight_mask)
        weight.register_hook(lambda grad, m=module: grad * m.weight_mask)


