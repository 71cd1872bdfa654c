"""The size of the network a search state would export: non-zero params or MACs, measured on the
exported architecture itself (so the target is a real quantity of the found network)."""
from __future__ import annotations

from ...arch import Arch, build_model
from ...cost import count_macs, count_nonzero
from .derive import export_arch, floor_width, plan_network
from .supernet import MGASSupernet


class Sizer:
    """Size of the network the current state would export: non-zero params or MACs."""

    def __init__(self, unit: str, input_size: int):
        self.unit, self.input_size = unit, input_size

    def arch(self, net: MGASSupernet) -> Arch:
        return export_arch(net, plan_network(net), input_size=self.input_size)

    def __call__(self, net: MGASSupernet) -> int:
        model = build_model(self.arch(net))
        if self.unit == "macs":
            return count_macs(model, (net.in_channels, self.input_size, self.input_size))
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


