"""Costs of MBConv networks from a per-layer table (`lookup.CostTable`): a network's cost is the
sum of its layers' costs plus the fixed parts (stem + MB1 layer; head + classifier, which depend
on the last stage's width). Params and MACs sums equal the counts of the whole built network
exactly (the same modules are counted); latency is the lookup-table estimate.
"""
from __future__ import annotations

import torch.nn as nn

from ..spaces.mbconv import make_first, make_head, make_layer, make_stem
from .lookup import CostTable


def out_size(size: int, stride: int) -> int:
    """Spatial size after a same-padded odd-kernel conv with this stride."""
    return (size - 1) // stride + 1


class MBConvCosts(CostTable):
    """The cost table of MBConv networks: layers, the fixed start (stem + MB1) and end (head)."""

    def layer(self, cfg: dict, c_in: int, c_out: int, stride: int, layer: dict, size: int) -> float:
        key = ["layer", c_in, c_out, stride, layer["expansion"], layer["kernel"],
               layer.get("se", True), size, cfg["se_ratio"], cfg["activation"]]
        return self.measure(key, lambda: make_layer(cfg, c_in, c_out, stride, layer), (c_in, size, size))

    def fixed_start(self, cfg: dict) -> float:
        """Stem + MB1 layer."""
        size = cfg["input_size"]
        key = ["start", cfg["in_channels"], size, cfg["stem_channels"], cfg["stem_stride"],
               cfg["first_channels"], cfg["se_ratio"], cfg["activation"]]
        return self.measure(key, lambda: nn.Sequential(make_stem(cfg), make_first(cfg)),
                            (cfg["in_channels"], size, size))

    def fixed_end(self, cfg: dict, c_in: int, size: int) -> float:
        """Head conv + pooling + classifier, reading `c_in` channels at `size` x `size`."""
        key = ["end", c_in, size, cfg["head_channels"], cfg["num_classes"], cfg["activation"]]
        return self.measure(key, lambda: _End(cfg, c_in), (c_in, size, size))


class _End(nn.Module):
    def __init__(self, cfg: dict, c_in: int):
        super().__init__()
        self.head = make_head(cfg, c_in)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cfg["head_channels"], cfg["num_classes"])

    def forward(self, x):
        return self.classifier(self.pool(self.head(x)).flatten(1))


def stage_sizes(cfg: dict) -> list[int]:
    """Input spatial size of every stage."""
    size = out_size(cfg["input_size"], cfg["stem_stride"])
    sizes = []
    for stride in cfg["strides"]:
        sizes.append(size)
        size = out_size(size, stride)
    return sizes + [size]


def stage_cost(table: MBConvCosts, cfg: dict, stage: dict, c_in: int, stride: int, size: int) -> float:
    total = 0.0
    for j, layer in enumerate(stage["layers"]):
        total += table.layer(cfg, c_in, stage["channels"], stride if j == 0 else 1, layer, size)
        if j == 0:
            size = out_size(size, stride)
        c_in = stage["channels"]
    return total


def network_cost(table: MBConvCosts, cfg: dict, genotype: dict) -> float:
    """The table's cost of a whole network, summed in the same order as the search."""
    sizes = stage_sizes(cfg)
    total = table.fixed_start(cfg)
    c = cfg["first_channels"]
    for i, (stage, stride) in enumerate(zip(genotype["stages"], cfg["strides"])):
        total += stage_cost(table, cfg, stage, c, stride, sizes[i])
        c = stage["channels"]
    return total + table.fixed_end(cfg, c, sizes[-1])
