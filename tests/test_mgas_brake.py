"""The budget controller's in-epoch brake: when it stops the push, rewinds or holds (docs/mgas.md 10.12, 10.18)."""
from __future__ import annotations

import pytest
import torch

from mgas_tiny import TINY, read_log, small_net


def test_brake_stops_the_push_once_the_gated_size_is_on_the_plan():
    from types import SimpleNamespace

    from budgetnas.methods.mgas.settings import SearchState
    from budgetnas.methods.mgas.steering import Steering

    state = SearchState(epoch_goal=100.0, correction=1.0, shift=0.2, t_start=0.0)
    steering = Steering(SimpleNamespace(state=state, s=SimpleNamespace(brake="stop")), regularizers=None)
    sizes = iter([130, 101, 99, 150])
    steering.gated_size = lambda phase: next(sizes)
    steering.mean_op_threshold = lambda phase: 0.05  # moved less than commanded
    assert not steering.brake(None, 8) and not steering.brake(None, 16)  # above the plan
    assert steering.brake(None, 24) and state.braked == 24  # reached: no push for the rest
    assert state.braked_gated == 99  # the gated size it stopped at, for the log
    assert steering.brake(None, 32) and state.braked == 24  # stays braked, first step kept
    steering.after_epoch(None)
    assert state.correction == 1.0  # a braked epoch's short motion is not CE's push-back
    state.braked = None
    steering.after_epoch(None)
    assert state.correction == 2.0


def test_a_rewinding_brake_puts_the_thresholds_where_the_gated_size_crossed_the_plan():
    from types import SimpleNamespace

    from budgetnas.methods.mgas.regularizers import make_optimizers
    from budgetnas.methods.mgas.settings import SearchSettings, SearchState
    from budgetnas.methods.mgas.steering import Steering

    net = small_net()
    settings = SearchSettings(brake="rewind")
    _, a_opt = make_optimizers(net, settings)
    state = SearchState(epoch_goal=800.0)
    phase = SimpleNamespace(commit_cells=range(2))
    steering = Steering(SimpleNamespace(state=state, s=settings, net=net, a_opt=a_opt), regularizers=None)
    cell = net.cells[1]
    # the gated size falls as cell 1's op thresholds rise: 1000 at 0, 500 at 0.5
    steering.gated_size = lambda phase: 1000 - 1000 * float(cell.t_op.detach().mean())
    steering.last_check = steering.arch_state(phase)  # a check above the plan
    with torch.no_grad():
        cell.t_op.fill_(0.5)  # the next check: 300 below the plan
        cell.alpha.fill_(-1.0)
    cell.alpha.grad = torch.ones_like(cell.alpha)
    a_opt.step()  # the scores' momentum carries the push on
    assert a_opt.state[cell.alpha]["momentum_buffer"].abs().sum() > 0
    alpha_now = float(cell.alpha.detach().mean())
    assert steering.brake(phase, 16) and state.braked == 16
    # the first point at or below the plan between the two checks: t_op 0.2 (to 1/256 of 0.5)
    assert 0.2 <= float(cell.t_op.detach().mean()) <= 0.2 + 0.5 / 256 + 1e-6
    assert 798 <= state.braked_gated <= 800
    f = float(cell.t_op.detach().mean()) / 0.5  # scores and thresholds move back together
    assert float(cell.alpha.detach().mean()) == pytest.approx(f * alpha_now, rel=1e-5)
    assert a_opt.state[cell.alpha]["momentum_buffer"].abs().sum() == 0  # the push is stopped
    assert float(net.cells[0].t_op.detach().abs().sum()) == 0  # what did not move stays


def test_the_brake_checks_every_n_steps_and_a_rewinding_brake_also_after_the_last_step():
    from types import SimpleNamespace

    from budgetnas.methods.mgas.search import MGASSearch

    def due(brake, done, steps=20, every=8):
        fake = SimpleNamespace(s=SimpleNamespace(brake_every=every, brake=brake))
        return MGASSearch.brake_due(fake, done, steps)

    assert [d for d in range(1, 21) if due("stop", d)] == [8, 16]
    assert [d for d in range(1, 21) if due("rewind", d)] == [8, 16, 20]
    assert [d for d in range(1, 21) if due("hold", d)] == [8, 16, 20]
    assert not any(due("rewind", d, every=0) for d in range(1, 21))


def test_a_holding_brake_keeps_the_architecture_still_for_the_rest_of_the_epoch(tmp_path, monkeypatch):
    from budgetnas.methods.mgas.options import MGASOptions
    from budgetnas.methods.mgas.search import MGASSearch
    from budgetnas.methods.mgas.steering import Steering
    from budgetnas.runs import run_method

    seen = []  # (epoch, held, arch step, the op thresholds after the step) in the epochs that pushed
    real_step = MGASSearch._step

    def step(self, loss, params, *, arch, weights, weight_params=None):
        real_step(self, loss, params, arch=arch, weights=weights, weight_params=weight_params)
        if self.state.lam > 0 and weights:
            t_op = float(self.net.cells[0].t_op.detach().sum())
            seen.append((self.state.global_epoch, self.holding(), arch, t_op))

    monkeypatch.setattr(MGASSearch, "_step", step)
    monkeypatch.setattr(Steering, "gated_size", lambda self, phase: 0)  # on the plan at every check
    run_method("mgas", MGASOptions(**{**TINY, "brake_every": 3, "brake": "hold", "max_final_epochs": 2},
                                   target_params=12000, out=tmp_path / "run"), progress=False)
    held = [(epoch, t) for epoch, h, _, t in seen if h]
    assert held and all(not arch for _, h, arch, _ in seen if h)  # no architecture step once braked
    assert any(arch for _, h, arch, _ in seen if not h)
    assert len(set(held)) == len({epoch for epoch, _ in held})  # the thresholds stay still once held


def test_the_brake_option_reaches_the_settings_and_stop_is_the_default():
    from budgetnas.methods.mgas.options import MGASOptions
    from budgetnas.methods.mgas.settings import settings_from

    assert settings_from(MGASOptions()).brake == "stop"
    assert settings_from(MGASOptions(brake="hold")).brake == "hold"
    with pytest.raises(ValueError):
        MGASOptions(brake="slide")


def test_the_budget_controller_brakes_by_default_and_the_user_can_turn_it_off():
    from budgetnas.methods.mgas.options import MGASOptions
    from budgetnas.methods.mgas.settings import settings_from

    assert settings_from(MGASOptions()).brake_every == 8
    assert settings_from(MGASOptions(brake_every=0)).brake_every == 0
    # the published schedule has no plan to brake at
    assert settings_from(MGASOptions(lambda_schedule="paper")).brake_every == 0


def test_search_loop_brakes_where_the_controller_says_so(tmp_path, monkeypatch):
    from budgetnas.methods.mgas.options import MGASOptions
    from budgetnas.methods.mgas.steering import Steering
    from budgetnas.runs import run_method

    # every check finds the gated size on the plan: each pushing epoch stops at its first check
    monkeypatch.setattr(Steering, "gated_size", lambda self, phase: 0)
    out = run_method("mgas", MGASOptions(**{**TINY, "brake_every": 3, "max_final_epochs": 2},
                                         target_params=12000, out=tmp_path / "run"), progress=False)
    rows = read_log(out)
    pushed = [row for row in rows if row["kind"] == "search" and row["lambda"] > 0]
    assert pushed and all(row["braked_at_step"] == 3 for row in pushed)
    assert all(row["braked_at_step"] is None for row in rows if row not in pushed)
