"""A trained supernet as NAG's source of accuracy and cost (`budgetnas generate --supernet DIR`).

Accuracy of an architecture = held-out accuracy of the subnet with its inherited weights after
BatchNorm recalibration on the supernet's fixed calibration sample (one *evaluation*; the query
budget counts them, repeated questions are answered from a cache). Cost = params or MACs (exact:
the per-layer sums equal the built network's counts) or latency from a per-layer lookup table
measured on this device (`cost.mbconv.MBConvCosts`, cached across runs).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...cost.lookup import cache_dir
from ...cost.mbconv import MBConvCosts, out_size, stage_sizes
from ...data import Dataset
from ...errors import UserError
from ...spaces.decisions import DecisionSpace
from ...spaces.mbconv import CONFIG_DEFAULTS, mbconv_decisions
from ...train.loop import evaluate
from ..supernet.files import load_supernet
from ..supernet.subnets import calibrate_bn, calibration_batches, extract

COSTS = {"params": "params", "macs": "MACs", "latency": "ms"}
SPACE_SAMPLE = 5000       # random architectures whose costs define the quantile budgets
SPACE_SAMPLE_SEED = 0     # fixed: q50 names the same budget in every run


class SupernetSource:
    """Subnet evaluations (cached, counted) and exact or table costs of a supernet's space."""

    def __init__(self, path: Path, dataset: Dataset, cost: str, *, device: torch.device, threads: int = 1):
        if cost not in COSTS:
            raise UserError(f"unknown cost {cost!r} for a supernet", where="--cost",
                            fix="give --cost params, macs or latency")
        self.net, self.meta = load_supernet(path, device=device)
        check_dataset(self.meta, dataset, path)
        self.dataset, self.device, self.metric = dataset, device, cost
        self.config = self.meta["config"]
        self.cfg = {**CONFIG_DEFAULTS, **self.config}
        c = self.net.choices
        self.space: DecisionSpace = mbconv_decisions(self.net.widths, depths=c.depths, kernels=c.kernels,
                                                     expansions=c.expansions)
        cal = self.meta["calibration"]
        self.calibration = calibration_batches(dataset, int(cal["images"]), int(cal["batch_size"]), device)
        # Cached across runs: counts never change, and latency is measured once per device.
        name = f"mbconv-latency-{device.type}-t{threads}.json" if cost == "latency" else f"mbconv-{cost}.json"
        self.table = MBConvCosts(cost, cache_dir() / name, device=str(device.type), threads=threads)
        self.accuracies: dict[tuple[int, ...], float] = {}
        self._slots = None
        self.evaluations = 0

    # ---------------------------------------------------------------- costs
    def genotype(self, row) -> dict:
        return self.space.to_genotype(row)

    def _slot_costs(self) -> tuple[float, list[list[np.ndarray]]]:
        """(cost of the fixed parts, per stage and layer slot the cost of every kernel x expansion
        choice): a network's cost is the fixed cost plus its active slots' costs."""
        if getattr(self, "_slots", None) is None:
            cfg, c = self.cfg, self.net.choices
            sizes, c_in, stages = stage_sizes(cfg), cfg["first_channels"], []
            for s, (width, stride) in enumerate(zip(self.net.widths, cfg["strides"])):
                size, slots = sizes[s], []
                for j in range(max(c.depths)):
                    slots.append(np.array([[self.table.layer(cfg, c_in, width, stride if j == 0 else 1,
                                                             {"expansion": e, "kernel": k}, size)
                                            for e in c.expansions] for k in c.kernels]))
                    size, c_in = (out_size(size, stride) if j == 0 else size), width
                stages.append(slots)
            fixed = self.table.fixed_start(cfg) + self.table.fixed_end(cfg, c_in, sizes[-1])
            self._slots = (fixed, stages)
        return self._slots

    def cost(self, rows: np.ndarray) -> np.ndarray:
        """Cost of every row (exact for params and MACs, the table's estimate for latency)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1, len(self.space))
        fixed, stages = self._slot_costs()
        depths, at = np.asarray(self.net.choices.depths), self.space.index
        total = np.full(len(rows), fixed, dtype=np.float64)
        for s, slots in enumerate(stages):
            depth = depths[rows[:, at[f"depth_{s}"]]]
            for j, table in enumerate(slots):
                value = table[rows[:, at[f"kernel_{s}_{j}"]], rows[:, at[f"expansion_{s}_{j}"]]]
                total += np.where(depth > j, value, 0.0)
        return total

    def space_costs(self) -> np.ndarray:
        """Costs of a fixed random sample of the space (what quantile budgets refer to)."""
        costs = self.cost(self.space.sample_batch(np.random.default_rng(SPACE_SAMPLE_SEED), SPACE_SAMPLE))
        self.table.save()
        return costs

    def smallest(self) -> tuple[tuple[int, ...], float]:
        """The cheapest network of the space: the fewest layers, each at its cheapest choice
        (costs add up over layers, and a layer's cost depends only on its own choices)."""
        _, stages = self._slot_costs()
        c, values = self.net.choices, {}
        for s, slots in enumerate(stages):
            values[f"depth_{s}"] = min(c.depths)
            for j in range(min(c.depths)):
                k, e = np.unravel_index(int(np.argmin(slots[j])), slots[j].shape)
                values[f"kernel_{s}_{j}"], values[f"expansion_{s}_{j}"] = c.kernels[k], c.expansions[e]
        row = self.space.from_genotype(self.space._to(values))
        return row, float(self.cost(np.array([row]))[0])

    # ---------------------------------------------------------------- accuracy
    def subnet(self, row) -> torch.nn.Module:
        """The subnet of `row` with inherited weights and recalibrated BatchNorm statistics."""
        # channels_last: depthwise convolutions run about twice as fast on CPUs (same numbers up
        # to float rounding)
        model = extract(self.net, self.genotype(row)).to(memory_format=torch.channels_last)
        return calibrate_bn(model, self.calibration)

    def accuracy(self, row) -> float:
        key = tuple(int(v) for v in row)
        if key not in self.accuracies:
            self.accuracies[key] = evaluate(self.subnet(key), self.dataset, self.dataset.val, self.device)
            self.evaluations += 1
        return self.accuracies[key]

    def oracle(self, rows: np.ndarray):
        """NAG's oracle: (found, held-out accuracy, cost) of every row (all are found)."""
        rows = np.asarray(rows)
        acc = np.array([self.accuracy(r) for r in rows], dtype=np.float64)
        return np.ones(len(rows), dtype=bool), acc, self.cost(rows)


def check_dataset(meta: dict, dataset: Dataset, path: Path) -> None:
    """The data must be what the supernet was trained on (shape and classes at least)."""
    want = meta.get("dataset", {})
    have = {"name": dataset.name, "channels": dataset.channels, "input_size": dataset.input_size,
            "num_classes": dataset.num_classes}
    for key, value in have.items():
        if want.get(key) != value:
            flags = f"--dataset {want.get('name')}" + (f" --data-dir {want['data_dir']}" if want.get("data_dir") else "") \
                + (f" --image-size {want['image_size']}" if want.get("image_size") else "")
            raise UserError(f"the supernet was trained on other data ({key} {want.get(key)!r}, here {value!r})",
                            where=str(path), fix=f"give the data it was trained on: {flags}")
