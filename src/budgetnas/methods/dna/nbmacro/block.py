"""Block supernets over the NAS-Bench-Macro space: one block per stage (2, 3, 3 layers).

A block holds every choice of each of its layers (`make_layer` of the space, so a fixed path is
exactly the standalone network's stage); block 0 also holds the fixed stem and reads the image,
blocks 1 and 2 read the teacher's previous stage output. A path is the block's part of the
8-character genotype, e.g. "120" for stage 2.

Candidates: 3^L strings per block (9, 27, 27). Strings that differ only in where a non-first zero
sits are the same network (`spaces.nbmacro.canonical`), so each canonical string (9, 21, 21) is
rated once and its rating copied to the others.

Rating (`rate_block`): every BN on the path gets the mean and unbiased variance of its input over
R recalibration rows (search-training split, one batch, so the statistics are exact), then the
path is scored on S held-out rows: MSE to the teacher's stage output divided by the target's
variance (unitless, lower is better).
"""
from __future__ import annotations

import itertools
from contextlib import contextmanager

import torch
import torch.nn as nn

from ....spaces.nbmacro import CHOICES, STAGES, canonical, layer_plan, make_layer

FIRST = [sum(STAGES[:i]) for i in range(len(STAGES))]  # index of each stage's first layer


def block_paths(index: int) -> list[str]:
    """All strings of block `index`, in genotype order ('00', '01', ...)."""
    return ["".join(p) for p in itertools.product(CHOICES, repeat=STAGES[index])]


def canonical_path(index: int, path: str) -> str:
    """The canonical form of a block's string (zeros after the first layer moved to the end)."""
    start = FIRST[index]
    full = "0" * start + path + "0" * (sum(STAGES) - start - len(path))
    return canonical(full)[start:start + len(path)]


class NBMacroBlockSupernet(nn.Module):
    """Stage `index` of the space with all three choices per layer (+ the stem for block 0)."""

    def __init__(self, index: int, stem_channels: int = 32, in_channels: int = 3):
        super().__init__()
        self.index = index
        plan = layer_plan(stem_channels)[FIRST[index]:FIRST[index] + STAGES[index]]
        self.stem = (nn.Sequential(nn.Conv2d(in_channels, stem_channels, 3, 1, 1, bias=False),
                                   nn.BatchNorm2d(stem_channels), nn.ReLU(inplace=True))
                     if index == 0 else None)
        self.layers = nn.ModuleList(nn.ModuleList(make_layer(ch, c_in, c_out, s) for ch in CHOICES)
                                    for c_in, c_out, s in plan)
        self.out_channels = plan[-1][1]

    def forward(self, x: torch.Tensor, path: str) -> torch.Tensor:
        if self.stem is not None:
            x = self.stem(x)
        for layer, ch in zip(self.layers, path):
            x = layer[CHOICES.index(ch)](x)
        return x


def copy_stage_weights(block: NBMacroBlockSupernet, network: nn.Module, genotype: str) -> None:
    """Copy a standalone NBMacroNetwork's stage weights onto the block's path for `genotype`."""
    start = FIRST[block.index]
    if block.stem is not None:
        block.stem.load_state_dict(network.stem.state_dict())
    for j, layer in enumerate(block.layers):
        layer[CHOICES.index(genotype[start + j])].load_state_dict(network.layers[start + j].state_dict())


@contextmanager
def recalibrating(module: nn.Module, state: dict):
    """Eval mode; while `state["on"]`, every BN first sets its statistics (mean, unbiased
    variance) from the whole batch it receives, then normalises it with them."""
    def hook(bn, inputs):
        if state["on"]:
            bn.running_mean.copy_(inputs[0].mean((0, 2, 3)))
            bn.running_var.copy_(inputs[0].var((0, 2, 3), unbiased=True))

    handles = [m.register_forward_pre_hook(hook) for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)


@torch.no_grad()
def rate_block(block: NBMacroBlockSupernet, x: torch.Tensor, y_all: torch.Tensor, n_recal: int,
               batch_size: int = 256) -> dict[str, float]:
    """{path: score} for every string of the block (canonical strings computed, others copied).

    `x`, `y_all`: block inputs and teacher targets, R recalibration rows then S scoring rows."""
    x, y = x.float(), y_all[n_recal:].float()
    var = max(float(y.var()), 1e-12)
    done: dict[str, float] = {}
    state = {"on": False}
    with recalibrating(block, state):
        for path in block_paths(block.index):
            key = canonical_path(block.index, path)
            if key in done:
                continue
            state["on"] = True  # one pass over all R rows sets every BN on the path, in order
            block(x[:n_recal], key)
            state["on"] = False
            err = sum(float((block(x[n_recal + b:n_recal + b + batch_size], key)
                             - y[b:b + batch_size]).pow(2).sum()) for b in range(0, len(y), batch_size))
            done[key] = err / y.numel() / var
    return {path: done[canonical_path(block.index, path)] for path in block_paths(block.index)}
