"""Non-zero parameters of an exported darts-space architecture without building the network.

The budget controller sizes a trial commit a dozen times per epoch; building the exported
network (hundreds of modules) for each took 0.7 s on the 3-cell C=8 supernet, most of the
controller's cost. A darts network is the sum of its stem, each cell's two preprocessing layers
and ops, and the classifier, and each of those has a parameter count fixed by its kind and
widths: each distinct module is built once (cached) and counted. Masked weights then take off
the zeros of their masks. `tests/test_mgas_budget.py` checks the result against
`count_nonzero(build_model(arch))`.
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn as nn

from ...arch import Arch
from ...layers import FactorizedReduce, ReLUConvBN
from ...spaces.darts import CONFIG_DEFAULTS, make_op


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@lru_cache(maxsize=4096)
def op_params(name: str, channels: int, stride: int, mid: int | None, pool_bn: bool) -> int:
    return _count(make_op(name, channels, stride, mid, pool_bn))


@lru_cache(maxsize=1024)
def pre_params(c_in: int, c_out: int, reduce: bool) -> int:
    return _count(FactorizedReduce(c_in, c_out) if reduce else ReLUConvBN(c_in, c_out))


def dense_params(arch: Arch) -> tuple[int, list[int]]:
    """All parameters of the network (auxiliary head excluded, as `count_params` counts them),
    and each cell's share."""
    cfg = {**CONFIG_DEFAULTS, **arch.config}
    c_stem, steps = cfg["stem_channels"], cfg["steps"]
    total = cfg["in_channels"] * c_stem * 9 + 2 * c_stem  # stem conv3x3 + BN
    cells = []
    c_pp, c_p, reduction_prev = c_stem, c_stem, False
    for spec in arch.genotype["cells"]:
        c = spec["channels"]
        size = pre_params(c_pp, c, reduction_prev) + pre_params(c_p, c, False)
        reduction = bool(spec["reduction"])
        for edge in spec["edges"]:
            stride = 2 if reduction and edge["from"] < 2 else 1
            size += op_params(edge["op"], c, stride, edge.get("mid"), cfg["pool_bn"])
        cells.append(size)
        concat = spec.get("concat") or range(2, steps + 2)
        c_pp, c_p, reduction_prev = c_p, c * len(concat), reduction
    return total + sum(cells) + c_p * cfg["num_classes"] + cfg["num_classes"], cells


def nonzero_params(arch: Arch) -> tuple[int, list[int]]:
    """`count_nonzero(build_model(arch))` and each cell's share: dense parameters less the
    zeros of the weight masks (mask names start with `cells.<i>.`)."""
    total, cells = dense_params(arch)
    for name, mask in (arch.masks or {}).items():
        zeros = mask.numel() - int(torch.count_nonzero(mask))
        total -= zeros
        if name.startswith("cells."):
            cells[int(name.split(".")[1])] -= zeros
    return total, cells
