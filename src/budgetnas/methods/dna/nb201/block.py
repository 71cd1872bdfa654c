"""Block supernets for DNA over the NAS-Bench-201 space.

A block is one stage of the NB201 network: block 0 = stem + N cells at width W; block i > 0 = the
ResNet reduction block + N cells at width W * 2**i. A candidate is one cell genotype (six op
indices in `spaces.nb201.EDGES` order, ops in `spaces.nb201.OPS` order), shared by the stage's
cells. Every edge of every cell position holds all five ops (their own weights, as in the
standalone network), so a fixed path computes exactly the standalone network's stage.

Student and teacher widths (decision): the student reads the teacher's previous stage output
(block i > 0) and, when its width differs from the teacher's, ends in a 1x1 conv + BN adapter to
the teacher's width (used for distillation only, dropped at export), so a narrower proxy student
can learn from a wider teacher.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn as nn

from ....spaces.nb201 import EDGES, OPS, ResNetBlock, arch_string, make_op, parse_arch_string

N_OPS = len(OPS)
NONE, SKIP, CONV1, CONV3, POOL = range(N_OPS)


def all_cells() -> list[tuple[int, ...]]:
    """The 15,625 cells in lexicographic order of op indices (the ratings' order)."""
    return list(itertools.product(range(N_OPS), repeat=len(EDGES)))


def cell_index(cell: tuple[int, ...]) -> int:
    """Position of `cell` in `all_cells()`."""
    index = 0
    for op in cell:
        index = index * N_OPS + op
    return index


def cell_of_string(text: str) -> tuple[int, ...]:
    return tuple(OPS.index(op) for op in parse_arch_string(text))


def string_of_cell(cell: tuple[int, ...]) -> str:
    return arch_string([OPS[i] for i in cell])


def effective_cell(cell: tuple[int, ...]) -> tuple[int, ...]:
    """The cell with ops on dead edges (whose target node never reaches the output) set to
    `none`; cells with equal effective cells compute the same function with shared weights."""
    c = list(cell)
    node2_used = c[5] != NONE
    if not node2_used:
        c[1] = c[2] = NONE
    node1_used = c[4] != NONE or (c[2] != NONE and node2_used)
    if not node1_used:
        c[0] = NONE
    return tuple(c)


class CellSupernet(nn.Module):
    """One cell position: six edges, each with all five ops."""

    def __init__(self, channels: int):
        super().__init__()
        self.edges = nn.ModuleList(nn.ModuleList(make_op(op, channels) for op in OPS) for _ in EDGES)

    def forward(self, x: torch.Tensor, cell: tuple[int, ...]) -> torch.Tensor:
        nodes = [x]
        for target in (1, 2, 3):
            total = None
            for k, (source, t) in enumerate(EDGES):
                if t != target or cell[k] == NONE:
                    continue
                out = self.edges[k][cell[k]](nodes[source])
                total = out if total is None else total + out
            nodes.append(torch.zeros_like(x) if total is None else total)
        return nodes[3]


class NB201BlockSupernet(nn.Module):
    """Stage `index` of the student: prefix (stem or reduction), `cells` cell positions, adapter.

    `c_in` is the channel count the block reads: image channels for block 0, otherwise the
    teacher's previous stage width."""

    def __init__(self, index: int, c_in: int, width: int, cells: int, target_channels: int):
        super().__init__()
        self.index = index
        self.width = width
        if index == 0:
            self.prefix = nn.Sequential(nn.Conv2d(c_in, width, 3, padding=1, bias=False),
                                        nn.BatchNorm2d(width))
        else:
            self.prefix = ResNetBlock(c_in, width)
        self.cells = nn.ModuleList(CellSupernet(width) for _ in range(cells))
        self.adapter = None
        if width != target_channels:
            self.adapter = nn.Sequential(nn.Conv2d(width, target_channels, 1, bias=False),
                                         nn.BatchNorm2d(target_channels))

    def forward(self, x: torch.Tensor, cell: tuple[int, ...]) -> torch.Tensor:
        x = self.prefix(x)
        for position in self.cells:
            x = position(x, cell)
        return self.adapter(x) if self.adapter is not None else x

    def path_modules(self, cell: tuple[int, ...]) -> list[nn.Module]:
        """Modules with BN on the path of `cell` (cells and adapter; the prefix is fixed)."""
        mods = [position.edges[k][op] for position in self.cells for k, op in enumerate(cell)]
        return mods + ([self.adapter] if self.adapter is not None else [])


def copy_stage_weights(block: NB201BlockSupernet, network: nn.Module, cell: tuple[int, ...],
                       cells_per_stage: int) -> None:
    """Load the weights of stage `block.index` of a standalone `NB201Network` (built with `cell`)
    into the block's path for `cell` (and its prefix). Used to check the two agree."""
    n = cells_per_stage
    first = [0, n + 1, 2 * n + 2][block.index]
    prefix = network.stem if block.index == 0 else network.cells[first - 1]
    block.prefix.load_state_dict(prefix.state_dict())
    for j, position in enumerate(block.cells):
        source = network.cells[first + j]
        for k, op in enumerate(cell):
            position.edges[k][op].load_state_dict(source.edges[k].state_dict())
