"""Cell genotypes of the baselines and width scaling to a target size (shared by DARTS and random).

A baseline network is a list of cell genotypes (every node takes exactly 2 inputs) plus one number,
the cell width C: the stem has 3C channels and the width doubles at the reduction cells (L//3 and
2L//3, as in MGAS's supernet). Width scaling picks C so that the network's size lands as close as
possible to a target. C is discrete (an even integer, because FactorizedReduce splits a cell's
channels in two), so the target is met only up to the spacing of that grid; the relative error is
reported. Sizes are measured on the `meta` device: the network's shapes without allocating it.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

import torch

from ...arch import Arch, build_model
from ...cost import count_macs, count_nonzero
from ...errors import UserError
from ...spaces.darts import OPS

STEPS = 4  # intermediate nodes per cell
STEM_MULTIPLIER = 3
MIN_WIDTH = 2  # the narrowest cell width the space allows (even)
MAX_WIDTH = 4096  # the widest considered; larger targets are refused
INPUTS_PER_NODE = 2
# Ops that bound the size of any genotype from below and above (per edge, in params and MACs).
SMALLEST_OP, LARGEST_OP = "max_pool_3x3", "sep_conv_5x5"


def reduction_cells(layers: int) -> list[int]:
    """Indices of the reduction cells: L//3 and 2L//3 (none below 3 cells), as in MGAS."""
    return sorted({layers // 3, 2 * layers // 3} - {0}) if layers >= 3 else []


def cell_widths(channels: int, layers: int) -> list[int]:
    """Width of every cell: C, doubled at each reduction cell."""
    reductions, widths, width = set(reduction_cells(layers)), [], channels
    for i in range(layers):
        if i in reductions:
            width *= 2
        widths.append(width)
    return widths


def cell_edges(steps: int = STEPS) -> list[tuple[int, int]]:
    """All (from, to) pairs of a cell: node j reads both inputs and every earlier node."""
    return [(src, dst) for dst in range(2, steps + 2) for src in range(dst)]


def derive_cell(weights: torch.Tensor, steps: int = STEPS) -> list[dict]:
    """Standard DARTS derivation from one cell's op weights (edges x ops, softmax rows): every node
    keeps the 2 incoming edges whose strongest op is strongest, each with that op. Ties go to the
    earlier input and the earlier op (deterministic)."""
    edges = cell_edges(steps)
    weights = weights.detach().cpu()
    chosen = []
    for dst in range(2, steps + 2):
        rows = [(k, src) for k, (src, d) in enumerate(edges) if d == dst]
        strength = [(-float(weights[k].max()), src, k) for k, src in rows]
        for _, src, k in sorted(strength)[:INPUTS_PER_NODE]:
            chosen.append({"from": src, "to": dst, "op": OPS[int(weights[k].argmax())]})
    return sorted(chosen, key=lambda e: (e["to"], e["from"]))


def random_cell(rng: random.Random, steps: int = STEPS) -> list[dict]:
    """A random cell: every node takes 2 distinct earlier nodes, each through a random op."""
    edges = []
    for dst in range(2, steps + 2):
        for src in sorted(rng.sample(range(dst), INPUTS_PER_NODE)):
            edges.append({"from": src, "to": dst, "op": rng.choice(OPS)})
    return edges


def uniform_cell(op: str, steps: int = STEPS) -> list[dict]:
    """Every node reads both cell inputs through `op` (for size bounds)."""
    return [{"from": src, "to": dst, "op": op} for dst in range(2, steps + 2) for src in (0, 1)]


@dataclass
class NetShape:
    """What the network must fit: the dataset's input and classes."""

    in_channels: int
    num_classes: int
    input_size: int


def make_arch(cells: list[list[dict]], channels: int, shape: NetShape, *,
              provenance: dict | None = None) -> Arch:
    """A darts-space architecture: every cell its own copy of its edges, with its own width."""
    reductions = set(reduction_cells(len(cells)))
    specs = [{"reduction": i in reductions, "channels": width, "concat": list(range(2, STEPS + 2)),
              "edges": [dict(e) for e in edges]}
             for i, (edges, width) in enumerate(zip(cells, cell_widths(channels, len(cells))))]
    config = {"in_channels": shape.in_channels, "num_classes": shape.num_classes,
              "input_size": shape.input_size, "stem_channels": STEM_MULTIPLIER * channels,
              "steps": STEPS, "pool_bn": True}  # BN after pools, like MGAS's export (no parameters)
    return Arch("darts", config, {"cells": specs}, None, provenance or {})


def measure(arch: Arch, unit: str) -> int:
    """Non-zero params (auxiliary heads excluded) or MACs of one sample, computed on `meta`."""
    with torch.device("meta"):
        model = build_model(arch)
    if unit == "macs":
        cfg = arch.config
        return count_macs(model, (cfg["in_channels"], cfg["input_size"], cfg["input_size"]))
    return count_nonzero(model)


@dataclass
class Scaled:
    arch: Arch
    channels: int
    size: int
    goal: int
    unit: str
    neighbours: dict  # sizes at the grid points beside the chosen width (C-2, C+2)

    @property
    def rel_error(self) -> float:
        return self.size / self.goal - 1.0


def size_bounds(layers: int, shape: NetShape, unit: str) -> tuple[int, int]:
    """The smallest and the largest network any 2-input genotype of this depth can be."""
    low = [uniform_cell(SMALLEST_OP)] * layers
    high = [uniform_cell(LARGEST_OP)] * layers
    return (measure(make_arch(low, MIN_WIDTH, shape), unit),
            measure(make_arch(high, MAX_WIDTH, shape), unit))


def check_target(goal: int, unit: str, layers: int, shape: NetShape) -> None:
    """Refuse up front a target no genotype of this depth can reach at any width."""
    smallest, largest = size_bounds(layers, shape, unit)
    flag = f"--target-{unit}"
    if goal < smallest:
        raise UserError(f"target {goal} {unit} is below the smallest network of {layers} cells "
                        f"({smallest} {unit} at the smallest width C={MIN_WIDTH})", where=flag,
                        fix=f"choose a target of at least {smallest}, or fewer --layers")
    if goal > largest:
        raise UserError(f"target {goal} {unit} is above the largest network of {layers} cells "
                        f"({largest} {unit} at C={MAX_WIDTH})", where=flag,
                        fix=f"choose a target of at most {largest}, or more --layers")


def scale_to_target(make: Callable[[int], Arch], goal: int, unit: str) -> Scaled:
    """Choose the even width C whose network's size is nearest to `goal` (bisection; size grows
    with C). `make(C)` builds the architecture at width C. Raises UserError (exit 2) when even the
    smallest width is above the goal or the largest below it."""
    size_at: dict[int, int] = {}

    def size(width: int) -> int:
        if width not in size_at:
            size_at[width] = measure(make(width), unit)
        return size_at[width]

    flag = f"--target-{unit}"
    if size(MIN_WIDTH) > goal:
        raise UserError(f"target {goal} {unit} is below this genotype's smallest network "
                        f"({size(MIN_WIDTH)} {unit} at the smallest width C={MIN_WIDTH})", where=flag,
                        fix=f"choose a target of at least {size(MIN_WIDTH)}, or fewer --layers")
    hi = MIN_WIDTH
    while size(hi) < goal:  # grow the bracket by doubling
        if hi >= MAX_WIDTH:
            raise UserError(f"target {goal} {unit} is above this genotype's network at the largest "
                            f"width C={MAX_WIDTH} ({size(MAX_WIDTH)} {unit})", where=flag,
                            fix="choose a smaller target, or more --layers")
        hi = min(MAX_WIDTH, hi * 2)
    lo = max(MIN_WIDTH, hi // 2) if hi > MIN_WIDTH else MIN_WIDTH
    # Invariant: size(lo) < goal <= size(hi) (or lo == hi == MIN_WIDTH); halves are even widths.
    while hi - lo > 2:
        mid = (lo + hi) // 2
        mid -= mid % 2
        if size(mid) < goal:
            lo = mid
        else:
            hi = mid
    best = min({lo, hi}, key=lambda w: (abs(size(w) - goal), w))
    neighbours = {w: size(w) for w in (best - 2, best + 2) if MIN_WIDTH <= w <= MAX_WIDTH}
    return Scaled(make(best), best, size(best), goal, unit, neighbours)
