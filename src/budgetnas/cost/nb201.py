"""Exact params and MACs of NAS-Bench-201 networks from per-op costs.

Every op on every edge adds a fixed amount to a network's params and MACs (the cell is repeated
with the same op everywhere), so the costs of all 15,625 cells follow from 6 x 5 measured entries
plus the all-`none` network: an additive per-choice table, measured once per macro config on
built networks, checked against full builds, and cached (`lookup.cache_dir()`).
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

from ..errors import UserError
from .lookup import CostTable, cache_dir


def nb201_op_costs(config: dict, *, verify: int = 6) -> dict:
    """{"base": {params, macs}, "edge": [[{params, macs} per op] per edge]} for a macro config,
    from built networks measured through per-config cost tables (`lookup.CostTable`, cached);
    freshly measured tables are first checked against full builds of random cells."""
    from ..arch import Arch, build_model
    from ..spaces.nb201 import CONFIG_DEFAULTS, OPS, arch_string

    cfg = {**CONFIG_DEFAULTS, **config}
    key = hashlib.sha1(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]
    tables = {m: CostTable(m, cache_dir() / f"nb201_{m}-{key}.json") for m in ("params", "macs")}
    fresh = not all(t.table for t in tables.values())
    shape = (cfg["in_channels"], cfg["input_size"], cfg["input_size"])

    def cost(ops: list[str]) -> dict:
        return {m: int(t.measure(["nb201", ops], lambda: build_model(Arch("nb201", cfg, arch_string(ops))), shape))
                for m, t in tables.items()}

    base = cost(["none"] * 6)
    edge = []
    for e in range(6):
        per_op = []
        for op in OPS:
            ops = ["none"] * 6
            ops[e] = op
            c = cost(ops)
            per_op.append({k: c[k] - base[k] for k in c})
        edge.append(per_op)
    data = {"config": cfg, "base": base, "edge": edge}
    rng = np.random.default_rng(0)
    for _ in range(verify if fresh else 0):  # additivity check on random cells
        idx = rng.integers(0, len(OPS), size=6)
        full = cost([OPS[i] for i in idx])
        composed = _compose(data, idx[None, :])
        if any(int(composed[k][0]) != full[k] for k in full):
            raise RuntimeError(f"NB201 cost composition disagrees with a full build: {full} vs "
                               f"{ {k: int(v[0]) for k, v in composed.items()} }")
    for table in tables.values():
        try:
            table.save()
        except (OSError, UserError):
            pass  # an unwritable cache only costs time
    return data


def _compose(data: dict, rows: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for k in ("params", "macs"):
        table = np.array([[op[k] for op in edge] for edge in data["edge"]], dtype=np.float64)
        out[k] = data["base"][k] + table[np.arange(6)[None, :], rows].sum(axis=1)
    return out


def nb201_costs(rows: np.ndarray, config: dict) -> dict[str, np.ndarray]:
    """params and macs of NB201 cells given as (N, 6) op indices."""
    return _compose(nb201_op_costs(config), np.asarray(rows, dtype=np.int64))
