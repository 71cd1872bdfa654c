"""MGAS budget controller, op cost (mu) and the accounting of who pruned (the brake: test_mgas_brake.py)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from budgetnas.methods.mgas import controller as ctl
from budgetnas.methods.mgas.ledger import Ledger, flipped, pruned_by, unit_buffers
from budgetnas.methods.mgas.opcost import op_costs, overheads
from budgetnas.methods.mgas.prune import commit
from budgetnas.methods.mgas.supernet import MGASSupernet
from budgetnas.spaces.darts import OPS
from mgas_tiny import TINY, read_log, small_net


# ------------------------------------------------------------------ controller (pure functions)
def falling_size(size: float):
    """A predicted gated size that falls as lambda grows (each unit of lambda removes a share)."""
    return lambda lam: size * math.exp(-lam)


def test_controller_raises_lambda_when_the_size_lags_the_plan_and_lowers_it_when_ahead():
    on_plan = ctl.find_lambda(falling_size(1000.0), 900.0)  # one planned step of 10 %
    lagging = ctl.find_lambda(falling_size(1200.0), 900.0)
    far_behind = ctl.find_lambda(falling_size(2000.0), 900.0)
    ahead = ctl.find_lambda(falling_size(880.0), 900.0)
    assert 0 < on_plan < lagging < far_behind
    assert ahead == 0.0  # at or below the plan's next point: no pressure, CE may reopen gates
    # the lambda found is the last one above the plan (never past it), to within 5 %
    size_at = falling_size(1000.0)
    assert size_at(on_plan) > 900.0 >= size_at(on_plan * 1.05)
    cliff = lambda lam: 1000.0 if lam < 0.3 else 100.0  # noqa: E731 - tied scores
    assert 0.28 < ctl.find_lambda(cliff, 900.0) < 0.3  # stops at the edge of the cliff


def test_momentum_model_matches_sgd():
    from budgetnas.methods.mgas.steering import momentum_steps

    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    for _ in range(9):  # constant gradient 1 from rest
        p.grad = torch.ones(1)
        opt.step()
    assert float(-p.detach()) == pytest.approx(0.1 * momentum_steps(9, 0.9), rel=1e-5)
    assert momentum_steps(9, 0.0) == 9.0


def test_correction_follows_the_realised_shift():
    assert ctl.corrected(1.0, commanded=0.2, realised=0.1) == pytest.approx(2.0)  # CE held back
    assert ctl.corrected(1.0, commanded=0.2, realised=0.4) == pytest.approx(0.5)
    assert ctl.corrected(1.0, commanded=0.001, realised=0.0) == 1.0  # too small to learn from
    assert ctl.corrected(4.0, commanded=0.2, realised=0.01) == ctl.CORRECTION_RANGE[1]


def test_every_stage_of_a_three_stage_tiny_search_warms_up_as_long_as_the_final_phase():
    from budgetnas.methods.mgas.options import MGASOptions
    from budgetnas.methods.mgas.settings import make_phases, settings_from

    # docs/mgas.md 10.15: with 1 warm-up epoch the new cells and head of a stage were pruned untrained
    phases = make_phases(settings_from(MGASOptions(stages=3)))
    assert [p.name for p in phases] == ["stage1", "stage2", "stage3", "final"]
    assert [p.warmup for p in phases] == [4, 4, 4, 4]
    assert [p.warmup for p in make_phases(settings_from(MGASOptions(stages=3, warmup_epochs=1)))] == [1, 1, 1, 4]
    assert [p.name for p in make_phases(settings_from(MGASOptions()))] == ["final"]  # the default: one stage


def test_cubic_plan_cuts_most_early_and_least_at_the_end():
    sizes = [ctl.planned_size(1000, 10, k, 4, "cubic") for k in range(6)]
    assert sizes[0] == 1000 and sizes[4] == sizes[5] == pytest.approx(10)
    assert sizes[2] == pytest.approx(10 + 990 / 8)
    cuts = [a - b for a, b in zip(sizes, sizes[1:4])]
    assert cuts == sorted(cuts, reverse=True)  # every step smaller than the one before
    geometric = [ctl.planned_size(1000, 10, k, 4) for k in range(5)]
    # the last step removes a smaller share than the geometric plan's equal shares
    assert sizes[3] / sizes[4] < geometric[3] / geometric[4]
    # the option reaches the settings the controller reads (geometric stays the default)
    from budgetnas.methods.mgas.options import MGASOptions
    from budgetnas.methods.mgas.settings import settings_from

    assert settings_from(MGASOptions(plan="cubic")).plan == "cubic"
    assert settings_from(MGASOptions()).plan == "geometric"


def test_plan_is_geometric_and_per_cell():
    assert ctl.planned_size(1000, 10, 0, 4) == 1000
    assert ctl.planned_size(1000, 10, 2, 4) == pytest.approx(100)
    assert ctl.planned_size(1000, 10, 9, 4) == pytest.approx(10)
    phase_cells = [range(0, 1), range(0, 2), range(0, 3), range(0, 3)]
    cells = [100.0, 200.0, 400.0]
    ratio = ctl.keep_ratio(goal=170.0, total=750.0, cell_sizes=cells)  # fixed part 50
    assert ratio == pytest.approx(120 / 700)
    g0 = ctl.phase_goal(0, phase_cells, goal=170.0, total_now=750.0, cells_now=cells,
                        cells_start=cells, ratio=ratio)
    # stage 1 searches cell 0 only, in 4 phases of which this is the first: r ** (1/4) of it
    assert g0 == pytest.approx(750.0 - 100.0 + 100.0 * ratio ** 0.25)
    assert ctl.phase_goal(3, phase_cells, goal=170.0, total_now=400.0, cells_now=cells,
                          cells_start=cells, ratio=ratio) == 170.0


# ------------------------------------------------------------------ op cost (mu)
def test_op_cost_prices_op_kinds_and_pushes_op_thresholds_up():
    net = small_net()
    cell = net.cells[0]
    cost = op_costs(cell)
    sep, pool, skip = OPS.index("sep_conv_3x3"), OPS.index("max_pool_3x3"), OPS.index("skip_connect")
    row = cost.detach()[0]
    assert float(row[sep]) > float(row[pool]) > float(row[skip]) == 0.0
    assert float(overheads(net.cells[1])[0, skip]) > 0  # stride-2 skip = factorized reduce
    cost.sum().backward()
    # raising an op's threshold (or lowering its score) lowers the cost: mu prices op count
    assert float(cell.t_op.grad[0, sep]) < float(cell.t_op.grad[0, pool]) < 0
    assert float(cell.alpha.grad[0, sep]) > 0


# ------------------------------------------------------------------ ledger
def test_ledger_counts_units_per_level_and_shares_sum_to_one():
    net = small_net()
    before = unit_buffers(net)
    with torch.no_grad():
        net.cells[0].t_op.fill_(0.99)  # every op gate closed: ops die (node protection keeps 4)
        net.cells[1].t_w.fill_(0.05)  # small weights of cell 1 close
    commit(net, cells=range(2))
    off, on = flipped(before, unit_buffers(net))
    assert off["ops"] == 14 * len(OPS) - 4 and off["weights"] > 0 and on == dict.fromkeys(off, 0)
    ledger = Ledger()
    ledger.add("gates", size_before=1000, size_after=700, off=off, on=on)
    ledger.add("land", size_before=700, size_after=650, off=off, on=on)
    ledger.add("regrow", size_before=650, size_after=660, off=on, on={"ops": 1, "filters": 0,
                                                                       "weights": 0})
    ledger.add("force", size_before=660, size_after=600, off=off, on=on)
    shares = pruned_by(ledger.totals)
    assert shares["gates"] + shares["land"] + shares["force"] == pytest.approx(1.0)
    assert shares["gates"] == pytest.approx(300 / 410) and shares["regrown"] == pytest.approx(10 / 410)
    removed = sum(ledger.totals[m]["size"] for m in ("gates", "land", "force"))
    assert removed - ledger.totals["regrow"]["size"] == 1000 - 600  # gross - regrown = net
    assert ledger.totals["regrow"]["ops"] == 1
    assert pruned_by(Ledger().totals) == {"gates": 0.0, "land": 0.0, "force": 0.0, "regrown": 0.0}


# ------------------------------------------------------------------ fast size
def test_fast_size_equals_the_built_network():
    from budgetnas import build_model, load_arch
    from budgetnas.cost import count_nonzero
    from budgetnas.methods.mgas.derive import plan_network
    from budgetnas.methods.mgas.fastsize import nonzero_params
    from budgetnas.methods.mgas.sizer import Sizer

    net = small_net(3)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for cell in net.cells:  # random committed state: dead ops, filters and weights
            cell.alive_op &= torch.rand(cell.alive_op.shape, generator=gen) > 0.6
            for row in cell.ops:
                for op in row:
                    if hasattr(op, "convs"):
                        op.alive_out &= torch.rand(op.alive_out.shape, generator=gen) > 0.3
                        for conv in op.convs():
                            conv.mask &= torch.rand(conv.mask.shape, generator=gen) > 0.2
            cell.alive_op[0, 0] = True
    arch = Sizer("params", 8).arch(net)
    model = build_model(arch)
    total, cells = nonzero_params(arch)
    assert total == count_nonzero(model)
    assert cells == [count_nonzero(c) for c in model.cells]
    for path in ("examples/small_digits.json", "examples/darts_v2.json"):
        arch = load_arch(Path(__file__).resolve().parents[1] / path)
        assert nonzero_params(arch)[0] == count_nonzero(build_model(arch))
    assert plan_network(net)  # the plan used above is the export's


# ------------------------------------------------------------------ a whole (tiny) search
# A tiny search that still learns something: the C=2 supernet on 400 digits, 1 warm-up and 4
# search epochs of 8 steps (with fewer steps every score is still sigmoid(0) when the gates must
# close, and no controller can close half of a set of tied gates).
def test_learned_gates_do_the_pruning_at_every_level(tmp_path):
    from budgetnas.methods.mgas.options import MGASOptions
    from budgetnas.runs import run_method

    target = 12000
    out = run_method("mgas", MGASOptions(**TINY, target_params=target, out=tmp_path / "run"),
                     progress=False)
    summary = json.loads((out / "summary.json").read_text())
    shares = summary["pruned_by"]
    assert shares["gates"] + shares["land"] + shares["force"] == pytest.approx(1.0)
    assert shares["gates"] >= 0.9, shares
    assert abs(summary["params_nonzero"] / target - 1) <= 0.03
    ratios = summary["remaining_ratios"]
    assert ratios["op_ratio"] < 1 and ratios["filter_ratio"] < 1 and ratios["weight_ratio"] < 1
    units = summary["pruned_units"]
    assert all(units["gates"][level] > 0 for level in ("ops", "filters", "weights"))
    log = read_log(out)
    assert summary["lambda_schedule"] == "budget"
    for row in log:  # every row counts what each mechanism removed at every level, and each cell's size
        assert len(row["cell_sizes"]) == 3 and 0 < sum(row["cell_sizes"]) < row["size"]
        assert set(row["pruned"]) == {"gates", "land", "force", "regrow"}
        assert all(set(v) == {"ops", "filters", "weights", "size"} for v in row["pruned"].values())
    removed = sum(units[m]["size"] for m in ("gates", "land", "force"))
    assert removed - units["regrow"]["size"] == log[0]["size"] - summary["params_nonzero"]


# ------------------------------------------------------------------ supernet width from the target
def test_width_for_target_picks_the_narrowest_even_width_with_the_headroom():
    from budgetnas.methods.mgas.width import width_for_target

    def size_at(width):  # params grow with the width squared
        return 1000.0 * width ** 2

    assert width_for_target(size_at, 8, 8000.0) == 8  # 64,000 is already 8x 8,000
    wide = width_for_target(size_at, 8, 20000.0)  # needs 160,000: width 12.6 -> 14
    assert wide == 14 and size_at(wide) >= 8 * 20000 > size_at(wide - 2)
    assert width_for_target(size_at, 8, 1e9) == 32  # at most 4x the preset's width


def test_only_the_cpu_preset_with_a_params_or_macs_target_and_no_channels_is_widened():
    from budgetnas.methods.mgas.method import widens
    from budgetnas.methods.mgas.options import MGASOptions

    assert widens(MGASOptions(target_params=32000)) and widens(MGASOptions(target_macs=10 ** 6))
    assert not widens(MGASOptions())  # the default target is a share of the supernet
    assert not widens(MGASOptions(target_params=32000, channels=8))
    assert not widens(MGASOptions(target_latency_ms=2.0))
    assert not widens(MGASOptions(preset="darts8_c24", target_params=700000))  # published width


def test_a_large_target_widens_the_supernet_and_channels_given_keeps_it(tmp_path, cli_in_process):
    from budgetnas.methods.mgas.method import widened
    from budgetnas.methods.mgas.settings import SearchSettings
    from budgetnas.methods.mgas.sizer import Sizer

    shape = type("Shape", (), {"input_size": 8, "channels": 1, "num_classes": 10})
    width = widened(SearchSettings(channels=8, layers=3), shape, "params", 32000)
    size = Sizer("params", 8)(MGASSupernet(channels=width, layers=3, in_channels=1, num_classes=10))
    narrower = Sizer("params", 8)(MGASSupernet(channels=width - 2, layers=3, in_channels=1, num_classes=10))
    assert width > 8 and size >= 8 * 32000 > narrower
    common = ["search", "mgas", "--dataset", "digits", "--subset", "100", "--batch-size", "50",
              "--target-params", "32000", "--no-report", "--threads", "1"]
    proc = cli_in_process(*common, "--warmup-epochs", "0", "--final-warmup-epochs", "0", "--max-final-epochs", "1",
                          "--out", tmp_path / "auto")
    assert proc.returncode == 0, proc.stderr
    assert f"widened from C=8 to C={width}" in proc.stdout
    assert f"C={width} (target (8x headroom; preset C=8))" in proc.stdout  # the result table says it
    summary = json.loads((tmp_path / "auto" / "summary.json").read_text())
    assert summary["channels"] == width and summary["channels_from"].startswith("target")
    proc = cli_in_process(*common, "--channels", "8", "--stop-after", "1", "--out", tmp_path / "given")
    assert proc.returncode == 0, proc.stderr
    assert "widened" not in proc.stdout


def test_a_resumed_run_keeps_the_width_it_started_with(tmp_path, cli_in_process, monkeypatch):
    """A run started under another width rule (an older version: no widening) resumes at its own
    width, not at the one the rule would choose now."""
    from budgetnas.methods.mgas import width as width_rule

    out = tmp_path / "run"
    common = ["search", "mgas", "--dataset", "digits", "--subset", "100", "--batch-size", "50",
              "--target-params", "32000", "--warmup-epochs", "0", "--final-warmup-epochs", "0",
              "--max-final-epochs", "1", "--no-report", "--threads", "1", "--out", out]
    monkeypatch.setattr(width_rule, "HEADROOM", 1.0)  # the supernet is wide enough as it is
    proc = cli_in_process(*common, "--stop-after", "1")
    assert proc.returncode == 0 and "widened" not in proc.stdout, proc.stderr
    monkeypatch.setattr(width_rule, "HEADROOM", 8.0)
    proc = cli_in_process(*common, "--resume")
    assert proc.returncode == 0 and "widened" not in proc.stdout, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["channels"], summary["channels_from"]) == (8, "the resumed run's checkpoint")
    assert json.loads((out / "arch.json").read_text())["config"]["stem_channels"] == 24


def test_a_first_stage_that_only_trains_prunes_nothing_and_its_cells_are_pruned_later(tmp_path):
    from budgetnas.methods.mgas.options import MGASOptions
    from budgetnas.methods.mgas.settings import make_phases, settings_from
    from budgetnas.runs import run_method

    # docs/mgas.md 10.16: stage 1 warms up cell 0 only; stage 2 is the first to prune it
    phases = make_phases(settings_from(MGASOptions(stages=3, first_stage="train", layers=3)))
    assert [list(p.commit_cells) for p in phases] == [[], [0, 1], [0, 1, 2], [0, 1, 2]]
    assert phases[0].max_epochs == 0 and not phases[0].regrow
    searched = make_phases(settings_from(MGASOptions(stages=3, layers=3)))
    assert [list(p.commit_cells) for p in searched][0] == [0]  # the published first stage

    target = 14000
    opts = MGASOptions(**{**TINY, "stages": 3, "first_stage": "train", "warmup_epochs": 2,
                          "max_stage_epochs": 2}, target_params=target, out=tmp_path / "run")
    out = run_method("mgas", opts, progress=False)
    rows = read_log(out)
    first = [row for row in rows if row["stage"] == "stage1"]
    assert [row["kind"] for row in first] == ["warmup", "warmup"]
    assert {row["size"] for row in first} == {rows[0]["size"]}
    assert all(v["ops"] == 0 for row in first for v in row["pruned"].values())
    assert [row["stage"] for row in rows].count("stage2") > 2  # stage 2 warms up, then searches
    arch = json.loads((out / "arch.json").read_text())
    kept_in_cell0 = len(arch["genotype"]["cells"][0]["edges"])
    assert kept_in_cell0 < 14 * 7  # cell 0 was pruned after all, by the later stages
    summary = json.loads((out / "summary.json").read_text())
    assert abs(summary["params_nonzero"] / target - 1) <= 0.03
