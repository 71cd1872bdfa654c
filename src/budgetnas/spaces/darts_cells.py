"""Networks of whole DARTS cells (every node reads exactly 2 inputs), and width scaling to a target.

Used by the DARTS and random baselines and by MGAS's target checks. A network is a list of cell
genotypes plus its widths: the stem's and one per stage (the cells between reductions share it).
By default the stem has 3C channels and the stages C, 2C, 4C (cells at L//3 and 2L//3 reduce, as
in MGAS's supernet). Width scaling lands a network on a target size: the integer C whose network
is the largest not above the target, then single-channel steps on one stage width or the stem at
a time, the knob with the largest effect first, so the size ends as close to the target as the
finest knob allows (within +-3 % for any target a few percent above the smallest network).
**Decision:** widths are any integer >= 2 (a factorized reduce splits an odd width unevenly), so
the baselines are compared with MGAS at equal size, not on a grid of even C. Sizes are measured
on the `meta` device: the network's shapes without allocating it.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch

from ..errors import UserError
from .darts import OPS

if TYPE_CHECKING:
    from ..arch import Arch

STEPS = 4  # intermediate nodes per cell
STEM_MULTIPLIER = 3
MIN_WIDTH = 2  # the narrowest width C of the default widths
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

    @classmethod
    def of(cls, dataset) -> "NetShape":
        return cls(dataset.channels, dataset.num_classes, dataset.input_size)


@dataclass(frozen=True)
class Widths:
    """The stem's width and one width per stage."""

    stem: int
    stages: tuple[int, ...]

    @classmethod
    def base(cls, channels: int, layers: int) -> "Widths":
        """Stem 3C, stages C, 2C, 4C (one stage below 3 cells)."""
        stages = len(reduction_cells(layers)) + 1
        return cls(STEM_MULTIPLIER * channels, tuple(channels * 2 ** k for k in range(stages)))

    def cell_widths(self, layers: int) -> list[int]:
        reductions, stage = set(reduction_cells(layers)), 0
        out = []
        for i in range(layers):
            stage += i in reductions
            out.append(self.stages[stage])
        return out

    def step(self, knob: int) -> "Widths":
        """One channel more on knob `knob` (0 = stem, k = stage k)."""
        if knob == 0:
            return Widths(self.stem + 1, self.stages)
        stages = list(self.stages)
        stages[knob - 1] += 1
        return Widths(self.stem, tuple(stages))


def make_arch(cells: list[list[dict]], widths: "int | Widths", shape: NetShape, *,
              provenance: dict | None = None) -> "Arch":
    """A darts-space architecture: every cell its own copy of its edges, with its stage's width.
    `widths`: an integer C (the default widths for C) or explicit `Widths`."""
    from ..arch import Arch

    if isinstance(widths, int):
        widths = Widths.base(widths, len(cells))
    reductions = set(reduction_cells(len(cells)))
    specs = [{"reduction": i in reductions, "channels": width, "concat": list(range(2, STEPS + 2)),
              "edges": [dict(e) for e in edges]}
             for i, (edges, width) in enumerate(zip(cells, widths.cell_widths(len(cells))))]
    config = {"in_channels": shape.in_channels, "num_classes": shape.num_classes,
              "input_size": shape.input_size, "stem_channels": widths.stem,
              "steps": STEPS, "pool_bn": True}  # BN after pools, like MGAS's export (no parameters)
    return Arch("darts", config, {"cells": specs}, None, provenance or {})


def measure(arch: "Arch", unit: str) -> int:
    """Non-zero params (auxiliary heads excluded) or MACs of one sample, computed on `meta`."""
    from ..arch import build_model
    from ..cost import count_macs, count_nonzero

    with torch.device("meta"):
        model = build_model(arch)
    if unit == "macs":
        # Small networks on small inputs are counted on the CPU with uninitialised weights (only
        # shapes matter): there the flop counter's dispatch on meta tensors took 2-40x as long as
        # a real forward (8x8 input, C=4..40: 0.06-1.2 s against 0.03 s; 32-64 px: up to 3x).
        # Large ones stay on meta: at 224 px, or at the widest widths, the real forward is the
        # slower one (2.6 s against 0.5 s for 14 cells at C=48) and would allocate the weights.
        cfg = arch.config
        if cfg["input_size"] <= 64 and sum(p.numel() for p in model.parameters()) <= 1_000_000:
            model = model.to_empty(device="cpu")
        return count_macs(model, (cfg["in_channels"], cfg["input_size"], cfg["input_size"]))
    return count_nonzero(model)


@dataclass
class Scaled:
    arch: "Arch"
    channels: int  # the base width C before the per-stage steps
    widths: Widths
    size: int
    goal: int
    unit: str

    @property
    def rel_error(self) -> float:
        return self.size / self.goal - 1.0

    def summary(self) -> dict:
        """summary.json fields: the widths found and the distance to the target."""
        return {"channels": self.channels, "stem_channels": self.widths.stem,
                "stage_widths": list(self.widths.stages), "target_error": round(self.rel_error, 5),
                "width_search": "integer C by bisection, then one-channel steps on single stage "
                                "widths and the stem, largest effect first"}


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


def scale_to_target(make: Callable[[Widths], "Arch"], goal: int, unit: str, *, layers: int) -> Scaled:
    """The widths whose network's size is nearest to `goal`: bisection on the integer C of the
    default widths (size grows with C) for the largest network not above the goal, then single
    channel steps, knob by knob from the largest effect to the smallest, while the size stays
    within the goal; the last step over the goal, or the next default width, is taken when it lands
    nearer. `make(widths)` builds the architecture. Raises UserError (exit 2) when even the smallest width is above the
    goal or the largest below it."""
    size_at: dict[Widths, int] = {}

    def size(widths: Widths) -> int:
        if widths not in size_at:
            size_at[widths] = measure(make(widths), unit)
        return size_at[widths]

    def at(c: int) -> Widths:
        return Widths.base(c, layers)

    flag = f"--target-{unit}"
    if size(at(MIN_WIDTH)) > goal:
        raise UserError(f"target {goal} {unit} is below this genotype's smallest network "
                        f"({size(at(MIN_WIDTH))} {unit} at the smallest width C={MIN_WIDTH})", where=flag,
                        fix=f"choose a target of at least {size(at(MIN_WIDTH))}, or fewer --layers")
    hi = MIN_WIDTH
    while size(at(hi)) <= goal:  # grow the bracket by doubling
        if hi >= MAX_WIDTH:
            raise UserError(f"target {goal} {unit} is above this genotype's network at the largest "
                            f"width C={MAX_WIDTH} ({size(at(MAX_WIDTH))} {unit})", where=flag,
                            fix="choose a smaller target, or more --layers")
        hi = min(MAX_WIDTH, hi * 2)
    lo = max(MIN_WIDTH, hi // 2)
    while hi - lo > 1:  # invariant: size(lo) <= goal < size(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if size(at(mid)) <= goal else (lo, mid)
    widths = at(lo)
    knobs = sorted(range(len(widths.stages) + 1), key=lambda k: size(widths.step(k)), reverse=True)
    for knob in knobs:
        while size(widths.step(knob)) <= goal:
            widths = widths.step(knob)
    # the next default width stays a candidate: single steps from below can stop short of it
    candidates = [widths, at(hi)] + [widths.step(k) for k in knobs]
    best = min(candidates, key=lambda w: (abs(size(w) - goal), size(w)))
    return Scaled(make(best), hi if best == at(hi) else lo, best, size(best), goal, unit)
