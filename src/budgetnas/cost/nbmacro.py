"""Exact params and MACs of NAS-Bench-Macro networks from a per-layer table.

Each searchable layer's cost depends only on its position and its choice, so every one of the
6,561 networks costs the fixed parts (stem, head, classifier) plus one table entry per layer: the
8 x 3 entries are measured on built layers (`lookup.CostTable`), the fixed part once.
"""
from __future__ import annotations

import numpy as np
import torch.nn as nn

from ..spaces.nbmacro import CHOICES, CONFIG_DEFAULTS, layer_plan, make_layer
from .lookup import CostTable


class _Fixed(nn.Module):
    """Stem, head and classifier of a network without searchable layers (cost only)."""

    def __init__(self, cfg: dict):
        super().__init__()
        from ..spaces.nbmacro import NBMacroNetwork

        full = NBMacroNetwork(cfg, "0" * 8)
        self.stem, self.head, self.pool, self.classifier = full.stem, full.head, full.pool, full.classifier
        self.last = layer_plan(cfg["stem_channels"])[-1][1]
        self.size = cfg["input_size"] // 8

    def forward(self, x):
        n = x.shape[0]
        self.stem(x)  # counted at the input size; the head then sees the last stage's map
        h = x.new_zeros(n, self.last, self.size, self.size)
        return self.classifier(self.pool(self.head(h)).flatten(1))


def layer_costs(config: dict | None = None) -> dict[str, np.ndarray]:
    """{"params"|"macs": (fixed, table[8 layers, 3 choices])} for a macro config."""
    cfg = {**CONFIG_DEFAULTS, **(config or {})}
    out = {}
    for metric in ("params", "macs"):
        table = CostTable(metric)
        size, rows = cfg["input_size"], []
        for i, (c_in, c_out, stride) in enumerate(layer_plan(cfg["stem_channels"])):
            rows.append([table.measure(["nbmacro", i, ch, c_in, c_out, stride, size],
                                       lambda ch=ch, c_in=c_in, c_out=c_out, s=stride: make_layer(ch, c_in, c_out, s),
                                       (c_in, size, size)) for ch in CHOICES])
            size //= stride
        fixed = table.measure(["nbmacro-fixed", cfg], lambda: _Fixed(cfg), (cfg["in_channels"], cfg["input_size"],
                                                                            cfg["input_size"]))
        out[metric] = (fixed, np.array(rows))
    return out


def nbmacro_costs(genotypes: list[str], config: dict | None = None) -> dict[str, np.ndarray]:
    """params and MACs of each 8-character genotype."""
    costs = layer_costs(config)
    idx = np.array([[CHOICES.index(ch) for ch in g] for g in genotypes], dtype=np.int64)
    return {metric: fixed + table[np.arange(len(table))[None, :], idx].sum(axis=1)
            for metric, (fixed, table) in costs.items()}
