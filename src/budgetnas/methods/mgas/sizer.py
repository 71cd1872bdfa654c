"""The size of the network a search state would export: non-zero params or MACs, measured on the
exported architecture itself (so the target is a real quantity of the found network), or its
latency estimated from a per-part table measured on this device (`cost.darts`)."""
from __future__ import annotations

from ...arch import Arch, build_model
from ...cost import count_macs, count_nonzero
from ...cost.darts import darts_latency
from .derive import export_arch, floor_width, plan_network
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
        model = build_model(arch)
        if self.unit == "macs":
            cfg = arch.config
            return count_macs(model, (cfg["in_channels"], cfg["input_size"], cfg["input_size"]))
        return count_nonzero(model)

    def stage_params(self, net: MGASSupernet, cells: range) -> int:
        model = build_model(self.arch(net))
        return sum(count_nonzero(model.cells[i]) for i in cells)


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


