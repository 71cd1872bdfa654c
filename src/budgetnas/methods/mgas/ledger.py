"""Who pruned: the size reduction of a search split by the mechanism that made it.

Four mechanisms change the committed masks of the supernet:
- `gates`:  a commit of every closed learned gate (ops, filters, weights) at a commit point;
- `land`:   the bisection landing (`landing.land` without `force`): a commit of only the share
            of the closed gates nearest to pruning, used when committing all of them would jump
            below the target band;
- `force`:  the fallback (`landing.force_land`): whole ops, then weights, pruned by margin whether their
            gates are closed or not, when the search ran out of epochs above the target;
- `regrow`: anything that brings units back (the stage regrowth of docs/mgas.md §6 and the regrowth
            into the band after an undershoot).

**Decision (accounting):** every call of a mechanism is measured as the change of the exported
size (non-zero params or MACs, whatever the target counts) and of the boolean unit buffers it
flipped. Removals are *gross* per mechanism: a mechanism's removed size is the sum of its calls'
size decreases, and what regrowth adds back is counted on its own and never netted against the
mechanism that removed it, so `removed(gates + land + force) - added(regrow) = start size - final
size`. (A call's change is signed: a commit that kills a cell's only narrow conv op can widen
the planned cell, so a rare call adds a little; it stays in its own mechanism's sum.)
`pruned_by` is each pruning mechanism's share of the gross removals (gates + land + force = 1,
a negative sum counted as 0); `regrown` is the size added back on the same scale. Units are counted at their own level:
an op is one `alive_op` entry, a filter one entry of `alive_pre*/alive_mid/alive_out`, a weight
one entry of a conv's `mask` (a dying op does not count its filters and weights again). Physical
pruning (slicing to the planned widths) does not change the exported size and is not a
mechanism here.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch

MECHANISMS = ("gates", "land", "force", "regrow")
LEVELS = ("ops", "filters", "weights")


def level_of(buffer_name: str) -> str | None:
    """The level a boolean buffer of the supernet belongs to (None: not a unit buffer)."""
    leaf = buffer_name.rsplit(".", 1)[-1]
    if leaf == "alive_op":
        return "ops"
    if leaf.startswith("alive_"):
        return "filters"
    if leaf == "mask":
        return "weights"
    return None


def unit_buffers(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: b.clone() for n, b in net.named_buffers() if b.dtype == torch.bool and level_of(n)}


def flipped(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """Units switched off and on between two snapshots, per level (buffers of equal shape)."""
    off = dict.fromkeys(LEVELS, 0)
    on = dict.fromkeys(LEVELS, 0)
    for name, old in before.items():
        new, level = after.get(name), level_of(name)
        if new is None or new.shape != old.shape or level is None:
            continue
        off[level] += int((old & ~new).sum())
        on[level] += int((~old & new).sum())
    return off, on


def empty_counts() -> dict[str, dict[str, int]]:
    return {m: {**dict.fromkeys(LEVELS, 0), "size": 0} for m in MECHANISMS}


class Ledger:
    """Running totals (whole search) and per-epoch counts of what each mechanism did."""

    def __init__(self, totals: dict | None = None):
        self.totals = totals or empty_counts()
        self.epoch = empty_counts()

    def new_epoch(self) -> None:
        self.epoch = empty_counts()

    def add(self, mechanism: str, *, size_before: int, size_after: int, off: dict, on: dict) -> None:
        """Record one call. Regrowth counts units switched on and size added; the pruning
        mechanisms count units switched off and size removed (gross, see the module doc)."""
        growing = mechanism == "regrow"
        units = on if growing else off
        delta = size_after - size_before if growing else size_before - size_after
        for book in (self.totals, self.epoch):
            for level in LEVELS:
                book[mechanism][level] += units[level]
            book[mechanism]["size"] += delta

    def record(self, mechanism: str, net: torch.nn.Module, units_before: dict[str, torch.Tensor],
               size_before: int, size_after: int) -> None:
        """Record a call whose start state the caller kept (`prune.snapshot` or `unit_buffers`)."""
        off, on = flipped(units_before, unit_buffers(net))
        self.add(mechanism, size_before=size_before, size_after=size_after, off=off, on=on)

    @contextmanager
    def track(self, mechanism: str, net: torch.nn.Module, size: Callable[[], int]) -> Iterator[None]:
        """Measure the block as one call of `mechanism`."""
        before_units, before_size = unit_buffers(net), size()
        yield
        self.record(mechanism, net, before_units, before_size, size())


def pruned_by(totals: dict) -> dict[str, float]:
    """Shares of the gross size removals made by gates, landing and fallback (they sum to 1;
    all 0 when nothing was removed), plus what regrowth added back on the same scale."""
    removed = {m: max(0, totals[m]["size"]) for m in ("gates", "land", "force")}
    total = sum(removed.values())
    if total <= 0:
        return {"gates": 0.0, "land": 0.0, "force": 0.0, "regrown": 0.0}
    shares = {m: v / total for m, v in removed.items()}
    shares["regrown"] = totals["regrow"]["size"] / total
    return shares
