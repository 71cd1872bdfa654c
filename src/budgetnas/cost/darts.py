"""Latency of DARTS-space networks from a per-part lookup table (`lookup.CostTable`): the stem,
each cell's two preprocessing units and its ops, and the classifier, each timed once on this
device at its width, stride and resolution (batch 1), summed. The usual lookup-table estimate:
it ignores effects between parts (node sums, caches), and it is what MGAS's `--target-latency-ms`
steers by; the found network's measured latency is reported beside it.
"""
from __future__ import annotations

import hashlib
import platform

import torch
import torch.nn as nn

from .lookup import CostTable, cache_dir


class _Head(nn.Module):
    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.pool, self.classifier = nn.AdaptiveAvgPool2d(1), nn.Linear(channels, classes)

    def forward(self, x):
        return self.classifier(self.pool(x).flatten(1))


def latency_table(device: str = "cpu", threads: int | None = 1, runs: int = 20) -> CostTable:
    """The table for this machine, device and thread count, cached across runs."""
    machine = f"{platform.processor() or platform.machine()}|{device}|{threads}|{torch.__version__}"
    key = hashlib.sha1(machine.encode()).hexdigest()[:12]
    return CostTable("latency", cache_dir() / f"darts_latency-{key}.json", device=device, latency_runs=runs,
                     threads=threads)


def darts_latency(table: CostTable, arch) -> float:
    """Estimated latency (ms, batch 1) of a darts-space architecture: the sum of its parts."""
    from ..layers import FactorizedReduce, ReLUConvBN
    from ..spaces.darts import CONFIG_DEFAULTS, make_op

    cfg = {**CONFIG_DEFAULTS, **arch.config}
    size, c_stem = cfg["input_size"], cfg["stem_channels"]
    total = table.measure(["stem", cfg["in_channels"], c_stem, size],
                          lambda: nn.Sequential(nn.Conv2d(cfg["in_channels"], c_stem, 3, padding=1, bias=False),
                                                nn.BatchNorm2d(c_stem)), (cfg["in_channels"], size, size))
    c_pp = c_p = c_stem
    reduction_prev = False
    for cell in arch.genotype["cells"]:
        c, reduction = cell["channels"], cell["reduction"]
        if reduction_prev:
            total += table.measure(["reduce", c_pp, c, size * 2], lambda: FactorizedReduce(c_pp, c), (c_pp, size * 2, size * 2))
        else:
            total += table.measure(["pre", c_pp, c, size], lambda: ReLUConvBN(c_pp, c), (c_pp, size, size))
        total += table.measure(["pre", c_p, c, size], lambda: ReLUConvBN(c_p, c), (c_p, size, size))
        for edge in cell["edges"]:
            stride = 2 if reduction and edge["from"] < 2 else 1
            op, mid = edge["op"], edge.get("mid")
            total += table.measure(["op", op, c, mid, stride, size, cfg["pool_bn"]],
                                   lambda: make_op(op, c, stride, mid, cfg["pool_bn"]), (c, size, size))
        c_pp, c_p = c_p, c * len(cell.get("concat") or range(cfg["steps"]))
        if reduction:
            size = (size + 1) // 2
        reduction_prev = reduction
    return total + table.measure(["head", c_p, cfg["num_classes"], size], lambda: _Head(c_p, cfg["num_classes"]),
                                 (c_p, size, size))
