"""Multi-stage MGAS: how much each stage cuts of the cells it searches (docs/mgas.md 10.17, 10.19)."""
from __future__ import annotations

import pytest
import torch

from budgetnas.methods.mgas import controller as ctl
from budgetnas.methods.mgas.landing import commit_gates, floored_size
from budgetnas.methods.mgas.prune import commit, restore, snapshot
from mgas_tiny import TINY, read_log, search_stub


def test_an_equal_stage_plan_plans_every_cell_searched_so_far_at_the_same_share():
    phase_cells = [range(0, 1), range(0, 2), range(0, 3), range(0, 3)]
    cells = [100.0, 200.0, 400.0]
    ratio = ctl.keep_ratio(goal=170.0, total=750.0, cell_sizes=cells)
    kw = dict(cells_start=cells, ratio=ratio, stage_plan="equal")
    for phase in range(3):  # after the k-th of 4 pruning phases: r ** (k / 4), whatever the cell
        shares = [ctl.cell_goal(c, phase, phase_cells, **kw) / cells[c] for c in phase_cells[phase]]
        assert shares == pytest.approx([ratio ** ((phase + 1) / 4)] * len(shares))
    # the even plan gives cell 1 r ** (1/3) after stage 2 (its 1st of 3 phases), equal r ** (2/4)
    assert ctl.cell_goal(1, 1, phase_cells, cells_start=cells, ratio=ratio) == pytest.approx(200.0 * ratio ** (1 / 3))
    now = [60.0, 200.0, 400.0]
    goal = ctl.phase_goal(1, phase_cells, goal=170.0, total_now=710.0, cells_now=now, **kw)
    assert goal == pytest.approx(50.0 + 400.0 + 300.0 * ratio ** 0.5)
    # a first stage that only trains does not count: 3 pruning phases
    trains = [range(0), range(0, 2), range(0, 3), range(0, 3)]
    assert ctl.cell_goal(0, 1, trains, **kw) == pytest.approx(100.0 * ratio ** (1 / 3))


def floors_search(stage_plan: str, phase: int = 1):
    """A search object around a small supernet, in an intermediate phase over cells 0-1."""
    return search_stub([range(0, 1), range(0, 2), range(0, 3)], phase, 0.3, stage_plan)


@torch.no_grad()
def close_gates(net) -> None:
    """Every gate of cell 1 closed, a few weights of cell 0."""
    cell1 = net.cells[1]
    cell1.t_op.fill_(2.0)
    cell1.t_fil.fill_(2.0)
    cell1.t_w.fill_(10.0)
    net.cells[0].t_w.fill_(0.05)


def test_an_equal_plan_commits_no_cell_below_its_floor_and_the_others_in_full():
    search, phase = floors_search("equal")
    st = search.state
    ratio = ctl.keep_ratio(search.goal, st.total_start, st.cells_start)
    floors = [ctl.cell_goal(c, 1, [p.commit_cells for p in search.phases], cells_start=st.cells_start,
                            ratio=ratio, stage_plan="equal") for c in phase.commit_cells]
    close_gates(search.net)
    masks = snapshot(search.net)
    commit(search.net, cells=phase.commit_cells)
    predicted = floored_size(search, phase)  # a plain commit, cell 1 counted at its floor
    restore(search.net, masks)
    commit_gates(search, phase)
    total, cells = search.sizer.sizes(search.net)
    assert floors[1] <= cells[1] <= floors[1] * 1.05  # cut to its floor, not to nothing
    assert floors[0] <= cells[0] < st.cells_start[0]  # cell 0's closed weights went
    assert total == pytest.approx(predicted, rel=0.02)
    # the even plan has no floors: the same gates take cell 1 far below that share
    even, phase = floors_search("even")
    close_gates(even.net)
    commit_gates(even, phase)
    assert even.sizer.sizes(even.net)[1][1] < floors[1] * 0.5


def test_a_late_stage_plan_cuts_less_in_the_stages_and_leaves_the_rest_to_the_final_phase():
    phase_cells = [range(0, 1), range(0, 2), range(0, 3), range(0, 3)]
    cells = [100.0, 200.0, 400.0]
    ratio = ctl.keep_ratio(goal=170.0, total=750.0, cell_sizes=cells)
    kw = dict(goal=170.0, cells_start=cells, ratio=ratio)
    late0 = ctl.phase_goal(0, phase_cells, total_now=750.0, cells_now=cells, stage_plan="late", **kw)
    assert late0 == pytest.approx(650.0 + 100.0 * ratio ** (1 / 16))  # r ** ((1/4) ** 2)
    # stage 2: cell 0 in its 2nd of 4 phases, cell 1 in its 1st of 3
    now = [60.0, 200.0, 400.0]
    even1 = ctl.phase_goal(1, phase_cells, total_now=710.0, cells_now=now, **kw)
    late1 = ctl.phase_goal(1, phase_cells, total_now=710.0, cells_now=now, stage_plan="late", **kw)
    assert even1 == pytest.approx(50.0 + 400.0 + 100.0 * ratio ** 0.5 + 200.0 * ratio ** (1 / 3))
    assert late1 == pytest.approx(50.0 + 400.0 + 100.0 * ratio ** 0.25 + 200.0 * ratio ** (1 / 9))
    assert late1 > even1
    # the final phase's goal is the target whatever the plan
    assert ctl.phase_goal(3, phase_cells, total_now=400.0, cells_now=cells, stage_plan="late", **kw) == 170.0


def test_the_stage_plan_option_reaches_the_controller_of_a_search(tmp_path):
    from budgetnas.methods.mgas.options import MGASOptions
    from budgetnas.methods.mgas.settings import settings_from
    from budgetnas.runs import run_method

    assert settings_from(MGASOptions()).stage_plan == "equal"
    target = 14000
    opts = MGASOptions(**{**TINY, "stages": 3, "stage_plan": "late", "warmup_epochs": 1,
                          "max_stage_epochs": 2, "stop_after": 3}, target_params=target,
                       out=tmp_path / "run")
    run_method("mgas", opts, progress=False)  # stopped after stage 1 (resumable)
    rows = read_log(tmp_path / "run")
    start, cells = rows[0]["size"], rows[0]["cell_sizes"]
    ratio = ctl.keep_ratio(goal=target, total=start, cell_sizes=cells)
    # stage 1 searches cell 0, the first of its 4 phases: r ** ((1/4) ** 2) of it, not r ** (1/4)
    planned = [row["planned"] for row in rows if row["stage"] == "stage1" and row["kind"] == "search"]
    assert planned[-1] == pytest.approx(start - cells[0] + cells[0] * ratio ** (1 / 16), rel=1e-6)


def test_a_three_stage_search_with_the_equal_plan_keeps_every_cell_at_its_share(tmp_path):
    from budgetnas.methods.mgas.options import MGASOptions
    from budgetnas.runs import run_method

    target = 9000
    opts = MGASOptions(**{**TINY, "stages": 3, "stage_plan": "equal", "warmup_epochs": 1,
                          "max_stage_epochs": 2, "stop_after": 11}, target_params=target,
                       out=tmp_path / "run")
    run_method("mgas", opts, progress=False)  # stopped in the final phase (resumable)
    rows = read_log(tmp_path / "run")
    start, cells = rows[0]["size"], rows[0]["cell_sizes"]
    ratio = ctl.keep_ratio(goal=target, total=start, cell_sizes=cells)
    searched = [row for row in rows if row["kind"] == "search" and row["stage"] != "final"]
    assert {row["stage"] for row in searched} == {"stage1", "stage2", "stage3"}
    for row in searched:
        k = int(row["stage"][-1])  # the k-th of 4 pruning phases searches cells [0, k)
        for c in range(k):
            assert row["cell_sizes"][c] >= ratio ** (k / 4) * cells[c] - 1, (row["stage"], c)
    # the floors held a cell back at least once (the gates alone would have cut it further)
    assert any(row["cell_sizes"][c] <= ratio ** (int(row["stage"][-1]) / 4) * cells[c] * 1.1
               for row in searched for c in range(int(row["stage"][-1])))
