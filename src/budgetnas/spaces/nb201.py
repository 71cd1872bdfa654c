"""The NAS-Bench-201 cell space (Dong & Yang, 2020).

Genotype: the benchmark's architecture string, one `op~source` token per edge of a 4-node cell:

    |nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|

ops: none (zero), skip_connect (identity), nor_conv_1x1 / nor_conv_3x3 (ReLU-Conv-BN),
avg_pool_3x3 (stride 1, padding 1, padding excluded from the average). Node j is the sum of its
incoming edges; the cell outputs node 3.

Config (defaults in brackets): in_channels [3], num_classes [10], input_size [32], C [16],
cells_per_stage [5]. Network: stem conv3x3 (C) + BN; three stages of `cells_per_stage` cells at
C, 2C, 4C with a ResNet basic block (stride 2) between stages; BN-ReLU-GAP-FC head. The parameter
count equals the benchmark's own for the same cell (e.g. 802,426 for a cell with three
nor_conv_3x3 edges, CIFAR-10 head).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ..errors import ArchError
from ..layers import ReLUConvBN
from . import register_space
from .base import Space
from .decisions import Decision, DecisionSpace

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))  # (source, target) in string order
CONFIG_DEFAULTS: dict[str, Any] = {"in_channels": 3, "num_classes": 10, "input_size": 32, "C": 16,
                                   "cells_per_stage": 5}


# --- the architecture string ----------------------------------------------------------------------

def parse_arch_string(text: Any, *, where: str = "genotype") -> list[str]:
    """'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' -> the six ops in EDGES order; ArchError if malformed."""
    if not isinstance(text, str):
        raise ArchError(f"must be a NAS-Bench-201 architecture string, got {type(text).__name__}",
                        where=where, fix="e.g. |nor_conv_3x3~0|+|skip_connect~0|none~1|+|...|")
    nodes = text.strip().split("+")
    if len(nodes) != 3:
        raise ArchError(f"expected 3 nodes separated by '+', got {len(nodes)}", where=where,
                        fix="use the form |op~0|+|op~0|op~1|+|op~0|op~1|op~2|")
    ops = []
    for target, part in enumerate(nodes, start=1):
        if not (part.startswith("|") and part.endswith("|")):
            raise ArchError(f"node {target} must be written as |op~k|...|, got {part!r}", where=where)
        tokens = part[1:-1].split("|")
        if len(tokens) != target:
            raise ArchError(f"node {target} needs {target} input edge(s), got {len(tokens)}", where=where)
        for source, token in enumerate(tokens):
            op, sep, src = token.partition("~")
            if not sep or src != str(source):
                raise ArchError(f"edge {token!r} of node {target} must read op~{source}", where=where)
            if op not in OPS:
                raise ArchError(f"unknown op {op!r}", where=where, fix=f"ops: {', '.join(OPS)}")
            ops.append(op)
    return ops


def arch_string(ops: list[str] | tuple[str, ...]) -> str:
    """The six ops (EDGES order) -> the benchmark's architecture string."""
    if len(ops) != 6:
        raise ValueError("an NB201 cell has 6 edges")
    return ("|" + "|+|".join("|".join(f"{ops[k]}~{s}" for k, (s, _t) in enumerate(EDGES) if _t == t)
                             for t in (1, 2, 3)) + "|")


def stage_genotypes(genotype: Any, *, where: str = "genotype") -> list[list[str]]:
    """The six ops of each of the three stages. Besides one string for every stage (the
    benchmark's space), a genotype may be a list of three strings, one per stage (DNA's
    per-stage search)."""
    if isinstance(genotype, list):
        if len(genotype) != 3:
            raise ArchError(f"a per-stage genotype needs 3 cell strings, got {len(genotype)}", where=where,
                            fix="give one string for all stages, or a list of three")
        return [parse_arch_string(g, where=f"{where}[{i}]") for i, g in enumerate(genotype)]
    return [parse_arch_string(genotype, where=where)] * 3


def decision_space() -> DecisionSpace:
    """Six decisions (one per edge, named like 'edge_0_1'), five ops each, genotype = string."""
    names = [f"edge_{s}_{t}" for s, t in EDGES]
    return DecisionSpace([Decision(n, OPS) for n in names], name="nb201",
                         to_genotype=lambda v: arch_string([v[n] for n in names]),
                         from_genotype=lambda g: dict(zip(names, parse_arch_string(g))))


# --- network ------------------------------------------------------------------------------------

class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, channels: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown op {name!r}")


class Cell(nn.Module):
    def __init__(self, ops: list[str], channels: int):
        super().__init__()
        self.edges = nn.ModuleList(make_op(op, channels) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for target in (1, 2, 3):
            nodes.append(sum(self.edges[k](nodes[s]) for k, (s, t) in enumerate(EDGES) if t == target))
        return nodes[3]


class ResNetBlock(nn.Module):
    """Reduction between stages: two ReLU-Conv-BN 3x3 (the first with stride 2) plus a shortcut of
    2x2 average pooling and a 1x1 convolution."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2, padding=1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, padding=1)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2),
                                      nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    def __init__(self, config: dict, genotype: str | list[str]):
        super().__init__()
        cfg = {**CONFIG_DEFAULTS, **config}
        stage_ops = stage_genotypes(genotype)  # one string, or one per stage
        c = cfg["C"]
        self.stem = nn.Sequential(nn.Conv2d(cfg["in_channels"], c, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c))
        cells: list[nn.Module] = []
        for stage in range(3):
            width = c * 2 ** stage
            if stage > 0:
                cells.append(ResNetBlock(width // 2, width))
            cells.extend(Cell(stage_ops[stage], width) for _ in range(cfg["cells_per_stage"]))
        self.cells = nn.Sequential(*cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(4 * c), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(4 * c, cfg["num_classes"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(self.pool(x).flatten(1))


# --- validation and the space object ----------------------------------------------------------

class NB201Space(Space):
    name = "nb201"
    CONFIG_DEFAULTS = CONFIG_DEFAULTS
    INT_SETTINGS = tuple(CONFIG_DEFAULTS)
    MIN_INPUT_SIZE = 4

    def check_genotype(self, genotype: Any, cfg: dict, where: str) -> None:
        stage_genotypes(genotype, where=f"{where}: genotype")

    def network(self, config: dict, genotype: Any) -> nn.Module:
        return NB201Network(config, genotype)

    def decisions(self, config: dict) -> DecisionSpace:
        return decision_space()

    def parse_genotype(self, text: str, config: dict) -> str:
        return text

    def draw(self, arch: dict, *, use_dot: bool | None = None):
        from .drawings import nb201_drawings

        text = arch.get("genotype")
        try:
            stage_ops = stage_genotypes(text)
        except ArchError as exc:
            return [], [f"the NAS-Bench-201 genotype could not be read ({exc})"]
        if not isinstance(text, list):  # one cell everywhere
            return nb201_drawings(text, [(s, t, op) for (s, t), op in zip(EDGES, stage_ops[0])], use_dot=use_dot)
        images: list = []
        for stage, (cell, ops) in enumerate(zip(text, stage_ops)):  # one cell per stage
            drawn, _ = nb201_drawings(cell, [(s, t, op) for (s, t), op in zip(EDGES, ops)], use_dot=use_dot)
            images.extend((f"stage {stage}: {caption}", png) for caption, png in drawn)
        return images, []


register_space(NB201Space())
