"""Landing on the target size: how commits are sized near the target, and the fallbacks.

The learned gates decide what to prune; these functions only make sure the search ends inside
the band target x (1 +- tolerance): a commit that would undershoot the band is replaced by the
largest share of it (nearest to pruning first) that stays in it (bisection), a search below the
band regrows ops, and a search out of epochs above the band is forced down (`force_land`, the
emergency: whole ops by margin, then weights by magnitude). Each of them is recorded in the
search's ledger (ledger.py: who pruned).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .prune import commit, regrow_op, restore, snapshot

if TYPE_CHECKING:
    from .search import MGASSearch
    from .settings import Phase


def band(search: "MGASSearch") -> tuple[float, float]:
    return search.goal * (1 - search.s.tolerance), search.goal * (1 + search.s.tolerance)


def commit_step(search: "MGASSearch", phase: "Phase") -> int:
    """Commit closed gates; if that would undershoot the target band, commit only the largest
    share of them (nearest to pruning first) that stays at or above it: the pruning steps get
    smaller as the size nears the target, and an overshooting commit is undone (its units
    regrown) before the smaller step is taken. Returns the number of ops that died."""
    low, high = band(search)
    net = search.net
    before, size_before, mechanism = snapshot(net), search.sizer(net), "gates"
    died = commit(net, cells=phase.commit_cells)
    size = search.sizer(net)
    if size < low:
        restore(net, before)
        died = land(search, phase.commit_cells, force=None)
        size, mechanism = search.sizer(net), "land"
    search.ledger.record(mechanism, net, before, size_before, size)
    if size < low:  # below the band already (e.g. after a stage change): regrow into it
        size = regrow_to_band(search)
    if low <= size <= high:
        search.state.reached = True
    return died


def land(search: "MGASSearch", cells: range, *, force: str | None) -> int:
    """Commit the largest fraction (bisection) whose size stays >= the band's lower edge."""
    low, _ = band(search)
    net = search.net
    before = snapshot(net)
    lo, hi = 0.0, 1.0
    for _ in range(20):
        mid = (lo + hi) / 2
        restore(net, before)
        commit(net, cells=cells, fraction=mid, force=force)
        lo, hi = (mid, hi) if search.sizer(net) >= low else (lo, mid)
        if hi - lo < 1e-4:
            break
    restore(net, before)
    return commit(net, cells=cells, fraction=lo, force=force)


def force_land(search: "MGASSearch") -> None:
    """Out of epochs above the target: prune whole ops by margin, then weights by magnitude
    (fine steps) until the size is inside the band."""
    cells = range(search.s.layers)
    with search.ledger.track("force", search.net, lambda: search.sizer(search.net)):
        for level in ("ops", "weights"):
            if search.sizer(search.net) <= band(search)[1]:
                break
            land(search, cells, force=level)
    if search.sizer(search.net) < band(search)[0]:
        regrow_to_band(search)


def regrow_to_band(search: "MGASSearch") -> int:
    """Below the band: bring pruned ops back, highest sigmoid(alpha) first (fresh weights,
    beta 0, full masks, old alpha), skipping any that would jump over the band."""
    with search.ledger.track("regrow", search.net, lambda: search.sizer(search.net)):
        return _regrow_to_band(search)


def _regrow_to_band(search: "MGASSearch") -> int:
    low, high = band(search)
    net = search.net
    size = search.sizer(net)
    candidates = []
    for c, cell in enumerate(net.cells):
        score = torch.sigmoid(cell.alpha.detach())
        for e, o in (~cell.alive_op).nonzero().tolist():
            candidates.append((-float(score[e, o]), c, e, o))
    for _, c, e, o in sorted(candidates):
        if size >= low:
            break
        saved = snapshot(net)
        regrow_op(net, c, e, o, [search.w_opt, search.a_opt])
        new = search.sizer(net)
        if new > high:
            restore(net, saved)
        else:
            size = new
    return size
