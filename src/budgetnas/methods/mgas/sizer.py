"""The size of the network a search state would export: non-zero params or MACs, measured on the
exported architecture itself (so the target is a real quantity of the found network), or its
latency estimated from a per-part table measured on this device (`cost.darts`).

Non-zero params are counted without building the network (`fastsize.py`): the budget controller
sizes a dozen trial commits per epoch.
"""
from __future__ import annotations

import torch

from ...arch import Arch, build_model
from ...cost import count_macs
from ...cost.darts import darts_latency
from .derive import export_arch, floor_width, plan_network
from .fastsize import nonzero_params
from .supernet import MGASSupernet


class Sizer:
    """Size of the network the current state would export: non-zero params, MACs, or estimated
    latency (ms; `table` is then the device's latency table)."""

    def __init__(self, unit: str, input_size: int, table=None):
        self.unit, self.input_size, self.table = unit, input_size, table

    def arch(self, net: MGASSupernet) -> Arch:
        return export_arch(net, plan_network(net), input_size=self.input_size)

    def __call__(self, net: MGASSupernet) -> float:
        return self.of(self.arch(net))

    def of(self, arch: Arch) -> float:
        if self.unit == "latency":
            return darts_latency(self.table, arch)
        if self.unit == "params":
            return nonzero_params(arch)[0]
        cfg = arch.config
        return count_macs(build_model(arch), (cfg["in_channels"], cfg["input_size"], cfg["input_size"]))

    def stage_params(self, net: MGASSupernet, cells: range) -> int:
        per_cell = nonzero_params(self.arch(net))[1]
        return sum(per_cell[i] for i in cells)

    def sizes(self, net: MGASSupernet) -> tuple[float, list[float]]:
        """The whole size and each cell's share of it, in the target's unit (budget controller)."""
        return self.sizes_of(self.arch(net))

    def sizes_of(self, arch: Arch) -> tuple[float, list[float]]:
        """`sizes` of an already exported architecture."""
        if self.unit == "params":
            return nonzero_params(arch)
        if self.unit == "latency":  # a cell's share: what its ops cost (the rest stays)
            total = darts_latency(self.table, arch)
            cells = []
            for i in range(len(arch.genotype["cells"])):
                cells_bare = [dict(c, edges=[]) if j == i else c
                              for j, c in enumerate(arch.genotype["cells"])]
                bare = Arch(arch.space, arch.config, {**arch.genotype, "cells": cells_bare})
                cells.append(total - darts_latency(self.table, bare))
            return total, cells
        from torch.utils.flop_counter import FlopCounterMode

        model = build_model(arch).eval()
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.zeros(1, arch.config["in_channels"], self.input_size, self.input_size))
        flops = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
        name = type(model).__name__
        return (int(counter.get_total_flops()) // 2,
                [int(flops.get(f"{name}.cells.{i}", 0)) // 2 for i in range(len(model.cells))])


def minimum_arch(net: MGASSupernet, input_size: int) -> Arch:
    """The smallest network the search can end with: one parameter-free op per node, every
    cell at its floor width."""
    cells = []
    for i, cell in enumerate(net.cells):
        width = floor_width(net, i)
        edges = [{"from": 1 if node == 2 else node - 1, "to": node, "op": "max_pool_3x3"}
                 for node in range(2, cell.steps + 2)]
        cells.append({"reduction": cell.reduction, "channels": width, "edges": edges})
    cfg = {"in_channels": net.in_channels, "num_classes": net.num_classes, "input_size": input_size,
           "stem_channels": net.stem[0].out_channels, "steps": net.steps, "pool_bn": True}
    return Arch("darts", cfg, {"cells": cells})


