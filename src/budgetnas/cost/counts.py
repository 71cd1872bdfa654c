"""Cost model: parameters (dense and non-zero), MACs and measured latency.

MACs convention: multiply-accumulates of convolutions and matrix products (linear layers,
bmm/addmm), counted by `torch.utils.flop_counter.FlopCounterMode` (which reports 2 FLOPs per MAC)
for one input sample. BatchNorm, activations, pooling and additions are not counted, as in the
DARTS and MobileNet literature. Weight masks do not lower MACs (dense kernels still run).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ..errors import UserError

AUX_PREFIXES = ("auxiliary_head", "aux_heads", "stage_heads")


def count_params(model: nn.Module, *, include_aux: bool = False) -> int:
    """Dense parameter count (auxiliary heads excluded unless asked)."""
    return sum(p.numel() for n, p in model.named_parameters() if include_aux or not _is_aux(n))


def count_nonzero(model: nn.Module, *, include_aux: bool = False) -> int:
    """Parameters left by weight masks: a weight whose module has a `weight_mask` buffer counts
    its mask's non-zeros; every other parameter counts in full (a BN bias that happens to be 0
    is still a parameter). `torch.nn.utils.prune` uses the same buffer name."""
    total = 0
    for module_name, module in model.named_modules():
        mask = getattr(module, "weight_mask", None)
        for name, p in module.named_parameters(recurse=False):
            full = f"{module_name}.{name}" if module_name else name
            if not include_aux and _is_aux(full):
                continue
            masked = isinstance(mask, torch.Tensor) and name in ("weight", "weight_orig")
            total += int(torch.count_nonzero(mask)) if masked else p.numel()
    return total


def _is_aux(name: str) -> bool:
    return name.startswith(AUX_PREFIXES)


def count_macs(model: nn.Module, input_size: tuple[int, ...]) -> int:
    """MACs of one forward pass for one sample of shape `input_size` (C, H, W), eval mode."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        x = torch.zeros(1, *input_size, device=device)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(x)
        return int(counter.get_total_flops()) // 2
    finally:
        model.train(was_training)


def profile(model_or_arch: Any, input_size: tuple[int, ...] | None = None, device: str | None = None,
            *, latency: bool = False, deployed: bool = True, **latency_options: Any) -> dict[str, Any]:
    """Params (dense, non-zero), MACs and, with `latency=True` or a device given, latency.

    Accepts a module (then `input_size` is required) or an `Arch` (input size from its config).
    Counts are the architecture's; the latency of an `Arch` is that of its inference form (the
    space's `deploy`: BatchNorms folded, same-edge ops merged) unless `deployed=False`.
    """
    from ..arch import Arch, build_model

    if isinstance(model_or_arch, Arch):
        cfg = model_or_arch.config
        input_size = input_size or (cfg.get("in_channels", 3), cfg["input_size"], cfg["input_size"])
        model = build_model(model_or_arch)
    elif isinstance(model_or_arch, nn.Module):
        model = model_or_arch
        if input_size is None:
            raise UserError("input_size is required when profiling a module", where="profile")
    else:
        raise UserError(f"cannot profile a {type(model_or_arch).__name__}", where="profile",
                        fix="pass an nn.Module or an Arch")
    input_size = tuple(input_size)
    result: dict[str, Any] = {"params_dense": count_params(model),
                              "params_nonzero": count_nonzero(model),
                              "macs": count_macs(model, input_size),
                              "input_size": list(input_size)}
    if latency or device is not None:
        from .latency import measure_latency

        timed = model
        if deployed and isinstance(model_or_arch, Arch):
            from ..spaces import get_space

            timed = get_space(model_or_arch.space).deploy(model)
        result.update(measure_latency(timed, input_size, device=device or "cpu", **latency_options))
        result["latency_of"] = "inference form (BN folded, ops merged)" if timed is not model else "as built"
    return result
