"""Block supernets: per block, one or more *cells* (depth x width), each cell its own supernet.

A cell of depth L offers, at every layer, a choice among the ops (MBConv expansion x kernel, with
SE and swish by default). One candidate = (cell, one op per layer). Candidates of all cells of a
block are rated and compete at search time.

Output width (decision): by default every layer of a cell has the teacher stage's width, so the
last layer outputs exactly the teacher's channel count and the exported stage is the rated one;
cells then differ in depth. With `adapters=True` a cell may have its own width W: all its layers
output W and a 1x1 conv + BN (used only for distillation, dropped at export) maps W to the
teacher's width; the exported stage has width W.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import torch
import torch.nn as nn

from ...errors import UserError
from ...spaces.mbconv import MBConv, make_first, make_stem
from .options import DEFAULT_OPS, MAX_WIDTH  # noqa: F401  (DEFAULT_OPS: the default --ops)

_OP = re.compile(r"^e(\d+)k(\d+)$")
# Sanity limits for typed values (a mistyped 600 instead of 6 must not allocate gigabytes).
MAX_EXPANSION, MAX_KERNEL, MAX_DEPTH = 16, 15, 16


@dataclass(frozen=True)
class Op:
    expansion: int
    kernel: int

    @property
    def name(self) -> str:
        return f"e{self.expansion}k{self.kernel}"

    def layer(self, se: bool) -> dict:
        """The genotype entry of this op."""
        return {"expansion": self.expansion, "kernel": self.kernel, **({} if se else {"se": False})}


def parse_ops(names: list[str] | tuple[str, ...]) -> list[Op]:
    ops = []
    for name in names:
        m = _OP.match(name.strip())
        if not m or not 1 <= int(m.group(1)) <= MAX_EXPANSION or int(m.group(2)) % 2 == 0 \
                or int(m.group(2)) > MAX_KERNEL:
            raise UserError(f"unknown op {name!r}", where="--ops",
                            fix=f"write ops as eEkK with expansion 1 <= E <= {MAX_EXPANSION} and odd "
                                f"kernel K <= {MAX_KERNEL}, e.g. e6k3")
        ops.append(Op(int(m.group(1)), int(m.group(2))))
    if not ops or len(set(ops)) != len(ops):
        raise UserError("give at least one op and no op twice", where="--ops")
    return ops


@dataclass(frozen=True)
class CellSpec:
    depth: int
    width: int

    @property
    def name(self) -> str:
        return f"d{self.depth}w{self.width}"


class CellSupernet(nn.Module):
    """`depth` layers, each a list of op modules; forward runs one op per layer."""

    def __init__(self, cfg: dict, c_in: int, spec: CellSpec, stride: int, ops: list[Op],
                 target_channels: int, *, se: bool):
        super().__init__()
        self.spec = spec
        self.layers = nn.ModuleList()
        c = c_in
        for j in range(spec.depth):
            self.layers.append(nn.ModuleList(
                MBConv(c, spec.width, expansion=op.expansion, kernel=op.kernel,
                       stride=stride if j == 0 else 1, se_ratio=cfg["se_ratio"], se=se,
                       activation=cfg["activation"]) for op in ops))
            c = spec.width
        self.adapter = None
        if spec.width != target_channels:
            self.adapter = nn.Sequential(nn.Conv2d(spec.width, target_channels, 1, bias=False),
                                         nn.BatchNorm2d(target_channels))

    def forward(self, x: torch.Tensor, path: tuple[int, ...]) -> torch.Tensor:
        for layer, op in zip(self.layers, path):
            x = layer[op](x)
        return self.adapter(x) if self.adapter is not None else x

    def path_modules(self, path: tuple[int, ...]) -> list[nn.Module]:
        mods = [layer[op] for layer, op in zip(self.layers, path)]
        return mods + ([self.adapter] if self.adapter is not None else [])


class BlockSupernet(nn.Module):
    """Block `index` of the student. Block 0 also owns the fixed stem and MB1 layer (it reads the
    image); later blocks read the teacher's previous stage output."""

    def __init__(self, cfg: dict, index: int, c_in: int, stride: int, cells: list[CellSpec],
                 ops: list[Op], target_channels: int, *, se: bool = True):
        super().__init__()
        self.index = index
        self.ops = ops
        self.prefix = nn.Sequential(make_stem(cfg), make_first(cfg)) if index == 0 else None
        c_cell = cfg["first_channels"] if index == 0 else c_in
        self.cells = nn.ModuleList(CellSupernet(cfg, c_cell, spec, stride, ops, target_channels, se=se)
                                   for spec in cells)

    def forward(self, x: torch.Tensor, cell: int, path: tuple[int, ...]) -> torch.Tensor:
        if self.prefix is not None:
            x = self.prefix(x)
        return self.cells[cell](x, path)

    def candidates(self) -> list[tuple[int, tuple[int, ...]]]:
        """Every (cell, path) of the block, cell by cell, paths in lexicographic order."""
        return [(c, path) for c, cell in enumerate(self.cells)
                for path in itertools.product(range(len(self.ops)), repeat=cell.spec.depth)]

    def path_modules(self, cell: int, path: tuple[int, ...]) -> list[nn.Module]:
        return ([self.prefix] if self.prefix is not None else []) + self.cells[cell].path_modules(path)


def stage_genotype(cell: CellSpec, path: tuple[int, ...], ops: list[Op], *, se: bool) -> dict:
    return {"channels": cell.width, "layers": [ops[i].layer(se) for i in path]}


def parse_cells(depths: str | None, widths: str | None, *, blocks: int, teacher_widths: list[int],
                default_depths: list[list[int]], adapters: bool) -> list[list[CellSpec]]:
    """Cells per block from "1,2;2,3;..." (semicolons between blocks; one group = all blocks).

    Every depth is combined with every width of the block. Widths default to the teacher's and
    need `adapters` otherwise (the last layer must output the teacher's width)."""
    depth_groups = _groups(depths, blocks, "--depths") if depths else default_depths
    if widths and not adapters:
        raise UserError("cell widths other than the teacher's need 1x1 adapters", where="--widths",
                        fix="add --adapters, or leave --widths out (cells then vary in depth)")
    width_groups = (_groups(widths, blocks, "--widths") if widths
                    else [[w] for w in teacher_widths])
    return [[CellSpec(d, w) for d in ds for w in ws] for ds, ws in zip(depth_groups, width_groups)]


def check_groups(text: str, where: str) -> list[list[int]]:
    """Parse "1,2;2,3" (groups of distinct positive integers, within the sanity limits) before
    any work starts; the number of groups is checked once the number of blocks is known."""
    limit = MAX_WIDTH if where == "--widths" else MAX_DEPTH
    try:
        groups = [[int(v) for v in g.split(",") if v.strip()] for g in text.split(";")]
    except ValueError:
        raise UserError(f"expected integers like '1,2;2,3', got {text!r}", where=where) from None
    if any(not g or min(g) < 1 or max(g) > limit or len(set(g)) != len(g) for g in groups):
        raise UserError(f"need groups of distinct integers from 1 to {limit}, got {text!r}", where=where,
                        fix="write them like '1,2' (all blocks) or '1,2;2,3;3,4' (one group per block)")
    return groups


def _groups(text: str, blocks: int, where: str) -> list[list[int]]:
    groups = check_groups(text, where)
    if len(groups) == 1:
        groups = groups * blocks
    if len(groups) != blocks or any(not g or min(g) < 1 or len(set(g)) != len(g) for g in groups):
        raise UserError(f"need {blocks} groups of distinct positive integers (or one for all "
                        f"blocks), got {text!r}", where=where)
    return groups
