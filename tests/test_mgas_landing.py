"""Landing on the target (landing.py, docs/mgas.md §5): the corrections aim at the target itself,
not at the band's lower edge, so a found network is compared with the baselines at the size asked."""
from __future__ import annotations

import torch

from budgetnas.methods.mgas.landing import band, commit_step, force_land, regrow_to_band
from budgetnas.methods.mgas.prune import commit
from mgas_tiny import search_stub


def landing_search(share: float):
    """A search object around a small supernet in its final phase, the goal at `share` of it."""
    return search_stub([range(0, 3)], 0, share)


@torch.no_grad()
def close_all_gates(net) -> None:
    for cell in net.cells:
        cell.t_w.fill_(10.0)


def test_a_commit_that_would_go_below_the_target_lands_just_above_it():
    search, phase = landing_search(0.5)
    close_all_gates(search.net)  # a full commit would take nearly everything
    commit_step(search, phase)
    size = search.sizer(search.net)
    assert search.goal <= size <= search.goal * 1.005  # not at the band's lower edge (0.97 x)
    assert search.state.reached
    assert search.ledger.totals["land"]["size"] > 0  # the bisection did this step, and says so


def test_force_land_prunes_down_to_the_target_not_to_the_band_edge():
    search, _ = landing_search(0.5)
    force_land(search)
    size = search.sizer(search.net)
    assert search.goal <= size <= search.goal * 1.005
    assert search.ledger.totals["force"]["size"] > 0


def test_regrowth_below_the_band_climbs_to_the_target_without_jumping_over_the_band():
    search, _ = landing_search(0.6)
    opts = [torch.optim.SGD([p for n, p in search.net.named_parameters() if "alpha" not in n], lr=0.1)]
    search.w_opt, search.a_opt = opts[0], torch.optim.SGD([c.alpha for c in search.net.cells], lr=1.0)
    with torch.no_grad():
        for cell in search.net.cells:
            cell.t_op.fill_(2.0)  # every op closed: a commit leaves the network far below the band
    commit(search.net, cells=range(0, 3))
    assert search.sizer(search.net) < band(search)[0]
    alive = [cell.alive_op.clone() for cell in search.net.cells]
    regrow_to_band(search)
    size = search.sizer(search.net)
    assert search.goal <= size <= band(search)[1]
    grown = [search.net.cells[c].ops[e][o] for c, cell in enumerate(search.net.cells)
             for e, o in (cell.alive_op & ~alive[c]).nonzero().tolist()]
    assert grown  # and none of them parameter-free: they add nothing to a params target
    assert all(any(True for _ in op.parameters()) for op in grown)
