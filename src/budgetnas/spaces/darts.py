"""The DARTS cell space as MGAS exports it.

Every cell has its own genotype; an edge (input node -> intermediate node) may carry any number of
ops; each cell has its own width and each separable conv its own middle width; weight masks are
optional. Genotype:

    {"cells": [{"reduction": false, "channels": 16, "concat": [2, 3, 4, 5],
                "edges": [{"from": 0, "to": 2, "op": "sep_conv_3x3", "mid": 16}, ...]}, ...]}

Nodes 0 and 1 are the cell inputs (outputs of the two previous cells); nodes 2.. are intermediate.
Config: in_channels, num_classes, input_size, stem_channels, steps (intermediate nodes per cell),
pool_bn (BN after pools, as in MGAS retraining), auxiliary (add the auxiliary head; training only),
aux_cell (index of the cell whose output feeds the auxiliary head; default 2*cells//3).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ..errors import ArchError
from ..layers import AuxiliaryHead, DilConv, FactorizedReduce, Pool, ReLUConvBN, SepConv, drop_path
from . import register_space
from .base import Space, config_with_defaults, require_bool, require_int

OPS = ("skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
       "avg_pool_3x3", "max_pool_3x3")
MID_OPS = ("sep_conv_3x3", "sep_conv_5x5")  # ops with a searchable middle width
CONFIG_DEFAULTS = {"in_channels": 3, "num_classes": 10, "input_size": 32, "stem_channels": 48,
                   "steps": 4, "pool_bn": False, "auxiliary": False, "aux_cell": None}


def make_op(name: str, channels: int, stride: int, mid: int | None, pool_bn: bool) -> nn.Module:
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels)
    if name.startswith("sep_conv"):
        return SepConv(channels, mid or channels, channels, int(name[-1]), stride)
    if name.startswith("dil_conv"):
        return DilConv(channels, channels, int(name[-1]), stride)
    if name in ("avg_pool_3x3", "max_pool_3x3"):
        return Pool(name[:3], channels, stride, pool_bn)
    raise ValueError(name)


class Cell(nn.Module):
    def __init__(self, spec: dict, c_prev_prev: int, c_prev: int, reduction_prev: bool,
                 steps: int, pool_bn: bool):
        super().__init__()
        c = spec["channels"]
        self.reduction = bool(spec["reduction"])
        self.preprocess0 = (FactorizedReduce(c_prev_prev, c) if reduction_prev
                            else ReLUConvBN(c_prev_prev, c))
        self.preprocess1 = ReLUConvBN(c_prev, c)
        self.steps = steps
        self.concat = list(spec.get("concat") or range(2, steps + 2))
        edges = sorted(spec["edges"], key=lambda e: (e["to"], e["from"]))
        self.edge_from = [e["from"] for e in edges]
        self.edge_to = [e["to"] for e in edges]
        self.ops = nn.ModuleList(
            make_op(e["op"], c, 2 if self.reduction and e["from"] < 2 else 1, e.get("mid"), pool_bn)
            for e in edges)
        self.identity = [isinstance(op, nn.Identity) for op in self.ops]
        self.out_channels = c * len(self.concat)
        self.drop_path_prob = 0.0

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(2, self.steps + 2):
            total = None
            for k, op in enumerate(self.ops):
                if self.edge_to[k] != node:
                    continue
                h = op(states[self.edge_from[k]])
                if not self.identity[k]:
                    h = drop_path(h, self.drop_path_prob, self.training)
                total = h if total is None else total + h
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)


class DartsNetwork(nn.Module):
    def __init__(self, config: dict, genotype: dict):
        super().__init__()
        cfg = {**CONFIG_DEFAULTS, **config}
        cells = genotype["cells"]
        c_stem = cfg["stem_channels"]
        self.stem = nn.Sequential(nn.Conv2d(cfg["in_channels"], c_stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_stem))
        c_pp, c_p, reduction_prev = c_stem, c_stem, False
        aux_cell = cfg["aux_cell"] if cfg["aux_cell"] is not None else 2 * len(cells) // 3
        self.aux_cell = aux_cell if cfg["auxiliary"] else -1
        self.cells = nn.ModuleList()
        self.auxiliary_head = None
        for i, spec in enumerate(cells):
            cell = Cell(spec, c_pp, c_p, reduction_prev, cfg["steps"], cfg["pool_bn"])
            self.cells.append(cell)
            c_pp, c_p, reduction_prev = c_p, cell.out_channels, cell.reduction
            if i == self.aux_cell:
                self.auxiliary_head = AuxiliaryHead(c_p, cfg["num_classes"])
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, cfg["num_classes"])

    def set_drop_path(self, prob: float) -> None:
        for cell in self.cells:
            cell.drop_path_prob = prob

    def forward(self, x: torch.Tensor):
        if self.training:  # depthwise convs train several times faster channels_last on CPUs
            x = x.contiguous(memory_format=torch.channels_last)
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self.aux_cell and self.training:
                aux = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        return (logits, aux) if aux is not None else logits


def validate_cell(cell: Any, steps: int, where: str) -> None:
    if not isinstance(cell, dict):
        raise ArchError("each cell must be an object", where=where)
    unknown = cell.keys() - {"reduction", "channels", "edges", "concat"}
    if unknown:
        raise ArchError(f"unknown field(s) {', '.join(sorted(unknown))}", where=where)
    if not isinstance(cell.get("reduction"), bool):
        raise ArchError("'reduction' must be true or false", where=f"{where}.reduction")
    require_int(cell.get("channels"), f"{where}.channels", 2)
    edges = cell.get("edges")
    if not isinstance(edges, list) or not edges:
        raise ArchError("'edges' must be a non-empty list", where=f"{where}.edges")
    fed = set()
    seen = set()
    for k, edge in enumerate(edges):
        ew = f"{where}.edges[{k}]"
        if not isinstance(edge, dict) or edge.keys() - {"from", "to", "op", "mid"}:
            raise ArchError("an edge is {from, to, op[, mid]}", where=ew)
        op = edge.get("op")
        if op not in OPS:
            raise ArchError(f"unknown op {op!r}", where=f"{ew}.op", fix=f"use one of {', '.join(OPS)}")
        dst = require_int(edge.get("to"), f"{ew}.to", 2)
        if dst > steps + 1:
            raise ArchError(f"node {dst} does not exist (cells have nodes 2..{steps + 1})",
                            where=f"{ew}.to")
        src = require_int(edge.get("from"), f"{ew}.from", 0)
        if src >= dst:
            raise ArchError(f"an edge must go from an earlier node (from {src} to {dst})",
                            where=f"{ew}.from")
        if "mid" in edge:
            if op not in MID_OPS:
                raise ArchError(f"'mid' (middle width) only applies to {' and '.join(MID_OPS)}",
                                where=f"{ew}.mid")
            require_int(edge["mid"], f"{ew}.mid")
        if (src, dst, op) in seen:
            raise ArchError(f"op {op} appears twice on edge {src}->{dst}", where=ew)
        seen.add((src, dst, op))
        fed.add(dst)
    unfed = sorted(set(range(2, steps + 2)) - fed)
    if unfed:
        raise ArchError(f"node(s) {unfed} have no incoming op", where=f"{where}.edges",
                        fix="every intermediate node needs at least one op")
    concat = cell.get("concat")
    if concat is not None:
        if (not isinstance(concat, list) or not concat
                or any(not isinstance(n, int) or not 2 <= n <= steps + 1 for n in concat)):
            raise ArchError(f"'concat' must list intermediate nodes (2..{steps + 1})",
                            where=f"{where}.concat")


class DartsSpace(Space):
    name = "darts"
    CONFIG_DEFAULTS = CONFIG_DEFAULTS

    def check_config(self, config: Any, where: str) -> dict:
        cfg = config_with_defaults(config, CONFIG_DEFAULTS, where)
        for key in ("in_channels", "num_classes", "input_size", "stem_channels", "steps"):
            require_int(cfg[key], f"{where}: config.{key}")
        for key in ("pool_bn", "auxiliary"):
            require_bool(cfg[key], f"{where}: config.{key}")
        return cfg

    def check_genotype(self, genotype: Any, cfg: dict, where: str) -> None:
        if not isinstance(genotype, dict) or not isinstance(genotype.get("cells"), list) \
                or not genotype["cells"]:
            raise ArchError("genotype must be {\"cells\": [...]} with at least one cell",
                            where=f"{where}: genotype")
        if genotype.keys() - {"cells"}:
            raise ArchError("genotype has unknown fields", where=f"{where}: genotype")
        size = cfg["input_size"]
        for i, cell in enumerate(genotype["cells"]):
            validate_cell(cell, cfg["steps"], f"{where}: genotype.cells[{i}]")
            if cell["reduction"]:
                size = (size + 1) // 2
        aux = cfg["aux_cell"]
        if aux is not None and (not isinstance(aux, int) or not 0 <= aux < len(genotype["cells"])):
            raise ArchError(f"aux_cell must index a cell (0..{len(genotype['cells']) - 1})",
                            where=f"{where}: config.aux_cell")

    def network(self, config: dict, genotype: Any) -> nn.Module:
        return DartsNetwork(config, genotype)

    def auxiliary_config(self) -> dict:
        return {"auxiliary": True}

    def deploy(self, model: nn.Module) -> nn.Module:
        from .darts_deploy import deploy_darts

        return deploy_darts(model)

    def draw(self, arch: dict, *, use_dot: bool | None = None):
        from .drawings import darts_drawings

        return darts_drawings(arch, use_dot=use_dot)


register_space(DartsSpace())
