"""Additive per-choice cost tables: the cost of a part (a layer, an op on an edge), keyed by its
description, measured once on the built part and cached as JSON.

A network's cost is then a sum of table entries, which is what exact searches over many
candidates need (DNA's fronts, NAG's cost of unmeasured architectures, MGAS's latency target).
Params and MACs sums equal whole-network counts exactly; latency is a lookup-table estimate:
each part's median time measured on this device, summed (the usual LUT model; it ignores
effects between parts such as caching).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import torch.nn as nn

from ..io import read_json, write_json

METRICS = {"params": "params", "macs": "MACs", "latency": "ms"}


class CostTable:
    """Memoised costs keyed by part description; saved as JSON so latency is measured once."""

    def __init__(self, metric: str, path: Path | None = None, *, device: str = "cpu",
                 latency_runs: int = 20, threads: int | None = 1):
        if metric not in METRICS:
            raise ValueError(metric)
        self.metric = metric
        self.path = Path(path) if path else None
        self.device = device
        self.latency_runs = latency_runs
        self.threads = threads
        self.table: dict[str, float] = {}
        if self.path and self.path.is_file():
            stored = read_json(self.path)
            if stored.get("metric") == metric and stored.get("device") == device:
                self.table = stored["costs"]

    def save(self) -> None:
        if self.path:
            write_json(self.path, {"metric": self.metric, "device": self.device, "costs": self.table})

    def measure(self, key: list, build: Callable[[], nn.Module], input_shape: tuple[int, ...]) -> float:
        """The cost of the part `build()` makes for inputs of `input_shape` (C, H, W)."""
        text = json.dumps(key)
        if text not in self.table:
            from .counts import count_macs, count_params
            from .latency import measure_latency

            module = build()
            if self.metric == "params":
                value = float(count_params(module))
            elif self.metric == "macs":
                value = float(count_macs(module, input_shape))
            else:
                value = float(measure_latency(module, input_shape, device=self.device,
                                              warmup=max(2, self.latency_runs // 4),
                                              runs=self.latency_runs, threads=self.threads)["latency_ms"])
            self.table[text] = value
        return self.table[text]


def cache_dir() -> Path:
    """Where measured tables are cached across runs ($BUDGETNAS_CACHE, else the user cache)."""
    base = os.environ.get("BUDGETNAS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "budgetnas")
    return Path(base)
