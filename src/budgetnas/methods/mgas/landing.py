"""Landing on the target size: how commits are sized near the target, and the fallbacks.

The learned gates decide what to prune; these functions only make sure the search ends inside
the band target x (1 +- tolerance), as near the target as the units allow: a commit that would
go below the target is replaced by the largest share of it (nearest to pruning first) that stays
at or above it (bisection), a search below the band regrows ops towards the target, and a search
out of epochs above the band is forced down to the target (`force_land`, the emergency: whole ops
by margin, then weights by magnitude). Each of them is recorded in the search's ledger
(ledger.py: who pruned).

**Decision (docs/mgas.md §5):** the corrections aim at the target, not at the band's edge: the
band says when a size is accepted, and the baselines land within 0.3 % of the target, so a
network landed at the band's lower edge would be compared with 3 % fewer parameters.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from . import controller as ctl
from .prune import commit, regrow_op, restore, snapshot

if TYPE_CHECKING:
    from .search import MGASSearch
    from .settings import Phase


def band(search: "MGASSearch") -> tuple[float, float]:
    return search.goal * (1 - search.s.tolerance), search.goal * (1 + search.s.tolerance)


def commit_step(search: "MGASSearch", phase: "Phase") -> int:
    """Commit closed gates; if that would go below the target, commit only the largest share of
    them (nearest to pruning first) that stays at or above it: the pruning steps get smaller as
    the size nears the target, and an overshooting commit is undone (its units regrown) before
    the smaller step is taken. Returns the number of ops that died."""
    low, high = band(search)
    net = search.net
    before, size_before, mechanism = snapshot(net), search.sizer(net), "gates"
    died = commit_gates(search, phase)
    size = search.sizer(net)
    if size < search.goal:
        restore(net, before)
        died = land(search, phase.commit_cells, force=None)
        size, mechanism = search.sizer(net), "land"
    search.ledger.record(mechanism, net, before, size_before, size)
    if size < low:  # below the band already (e.g. after a stage change): regrow into it
        size = regrow_to_band(search)
    if low <= size <= high:
        search.state.reached = True
    return died


def cell_floors(search: "MGASSearch", phase: "Phase") -> dict[int, float]:
    """The sizes no commit of an intermediate phase may cut a cell below, with
    `--stage-plan equal` (none otherwise): each cell's planned size at the end of the phase."""
    st, s = search.state, search.s
    if s.stage_plan != "equal" or phase.final or not st.cells_start:
        return {}
    cells = [p.commit_cells for p in search.phases]
    ratio = ctl.keep_ratio(search.goal, st.total_start, st.cells_start)
    return {c: ctl.cell_goal(c, st.phase, cells, cells_start=st.cells_start, ratio=ratio,
                             stage_plan="equal") for c in phase.commit_cells}


def floored_size(search: "MGASSearch", phase: "Phase") -> float:
    """The size just after a plain commit, with each cell below its floor counted at its floor:
    what `commit_gates` leaves, without its bisections (the controller and the brake ask often).
    A cell starts every phase at or above the phase's floor, as floors only fall phase by phase."""
    floors = cell_floors(search, phase)
    if not floors:
        return search.sizer(search.net)
    total, cells = search.sizer.sizes(search.net)
    return total + sum(max(0.0, floor - cells[c]) for c, floor in floors.items())


def commit_gates(search: "MGASSearch", phase: "Phase") -> int:
    """Commit the closed gates of the phase's cells; returns the number of ops that died.

    **Decision (`--stage-plan equal`, docs/mgas.md 10.19):** a cell the commit would take below
    its floor gets only the largest share of its closed gates (nearest to pruning first) that
    keeps it at or above, so the intermediate phases keep every cell at the plan's share and the
    final phase alone decides the split between cells."""
    net = search.net
    floors = cell_floors(search, phase)
    before = snapshot(net) if floors else {}
    alive = sum(int(net.cells[c].alive_op.sum()) for c in phase.commit_cells)
    commit(net, cells=phase.commit_cells)
    if floors:
        sizes = search.sizer.sizes(net)[1]
        for c in (c for c, floor in floors.items() if sizes[c] < floor):
            _commit_to_floor(search, c, floors[c], before)
    return alive - sum(int(net.cells[c].alive_op.sum()) for c in phase.commit_cells)


def _commit_to_floor(search: "MGASSearch", c: int, floor: float, before: dict) -> None:
    """Redo cell c's commit with the largest fraction (bisection) that keeps it >= floor."""
    net = search.net
    mine = {name: mask for name, mask in before.items() if name.startswith(f"cells.{c}.")}
    lo, hi = 0.0, 1.0
    for _ in range(12):
        mid = (lo + hi) / 2
        restore(net, mine)
        commit(net, cells=range(c, c + 1), fraction=mid)
        lo, hi = (mid, hi) if search.sizer.sizes(net)[1][c] >= floor else (lo, mid)
    restore(net, mine)
    commit(net, cells=range(c, c + 1), fraction=lo)


def land(search: "MGASSearch", cells: range, *, force: str | None) -> int:
    """Commit the largest fraction (bisection) whose size stays >= the target."""
    net = search.net
    before = snapshot(net)
    lo, hi = 0.0, 1.0
    for _ in range(20):
        mid = (lo + hi) / 2
        restore(net, before)
        commit(net, cells=cells, fraction=mid, force=force)
        lo, hi = (mid, hi) if search.sizer(net) >= search.goal else (lo, mid)
        if hi - lo < 1e-4:
            break
    restore(net, before)
    return commit(net, cells=cells, fraction=lo, force=force)


def force_land(search: "MGASSearch") -> None:
    """Out of epochs above the band: prune whole ops by margin, then weights by magnitude
    (fine steps) down to the target."""
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
    beta 0, full masks, old alpha), until the target is reached, skipping any that would jump
    over the band or add nothing to the size (a parameter-free op when the target is params: it
    would only cost latency)."""
    with search.ledger.track("regrow", search.net, lambda: search.sizer(search.net)):
        return _regrow_to_band(search)


def _regrow_to_band(search: "MGASSearch") -> int:
    _, high = band(search)
    net = search.net
    size = search.sizer(net)
    candidates = []
    for c, cell in enumerate(net.cells):
        score = torch.sigmoid(cell.alpha.detach())
        for e, o in (~cell.alive_op).nonzero().tolist():
            candidates.append((-float(score[e, o]), c, e, o))
    for _, c, e, o in sorted(candidates):
        if size >= search.goal:
            break
        saved = snapshot(net)
        regrow_op(net, c, e, o, [search.w_opt, search.a_opt])
        new = search.sizer(net)
        if new > high or new <= size:
            restore(net, saved)
        else:
            size = new
    return size
