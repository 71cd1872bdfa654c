"""The budget controller inside the search loop (the math is in controller.py).

`Steering` is called by `MGASSearch` at three points: before a search epoch (plan the phase on
its first one; set lambda), after it before the commit (learn how far the thresholds really
moved), and after the commit (the gated size against the plan, for the log).

**Decision (feed-forward model):** the thresholds' motion over one epoch is predicted from the
regularizer's own gradient. With lambda = 1, -d(R_size + R_thr)/dt is each threshold's push
(R_thr's exp(-t), plus the mu term's op-cost gradient, which reaches t_op through the op gate and
t_fil / t_w through the soft parameter count). Without momentum a threshold then moves
steps * lr * lambda * push in an epoch, so the gated size after the epoch is a function of lambda
alone, found by committing a trial copy of the masks (`size_with`). Lambda is the largest value
whose predicted gated size stays above the plan's next point (controller.find_lambda). CE's push
back is not in the model; a gain learned from the realised motion of the op thresholds corrects
for it (controller.corrected).
"""
from __future__ import annotations

from typing import Callable

import torch

from . import controller as ctl
from .landing import floored_size
from .prune import commit, restore, snapshot
from .supernet import arch_group

THRESHOLDS = ("t_op", "t_fil", "t_pre", "t_w")
SCORE_MOMENTUM = 0.9  # of alpha and beta (docs/mgas.md §4)
REWINDING = ("rewind", "hold")  # brakes that put the scores and thresholds back on the plan
REWIND_ITERATIONS = 8  # bisection steps of `rewind`: to within 1/256 of the motion between two checks


def momentum_steps(steps: int, momentum: float) -> float:
    """How many plain steps `steps` SGD steps with momentum m amount to, starting at rest under
    a constant gradient: sum_k (1 - m^k) / (1 - m)."""
    if momentum <= 0:
        return float(steps)
    return (steps - momentum * (1 - momentum ** steps) / (1 - momentum)) / (1 - momentum)


class Steering:
    def __init__(self, search, regularizers: Callable):
        self.search = search
        self.regularizers = regularizers
        self.last_check: dict[str, torch.Tensor] | None = None  # at the last check above the plan

    # ---------------------------------------------------------------- plan
    def start_plan(self, phase) -> None:
        """At a phase's first search epoch: the phase's goal and start size (controller.py, 1-2)."""
        s, st = self.search, self.search.state
        total, cells = s.sizer.sizes(s.net)
        if st.total_start is None:
            st.total_start, st.cells_start = total, cells
        ratio = ctl.keep_ratio(s.goal, st.total_start, st.cells_start)
        st.plan_start, st.planned = total, total
        st.plan_goal = ctl.phase_goal(st.phase, [p.commit_cells for p in s.phases], goal=s.goal,
                                      total_now=total, cells_now=cells, cells_start=st.cells_start,
                                      ratio=ratio, stage_plan=s.s.stage_plan)

    # ---------------------------------------------------------------- before a search epoch
    def before_epoch(self, phase) -> None:
        s, st = self.search, self.search.state
        if st.plan_start is None:
            self.start_plan(phase)
        searched = st.epoch_in_phase - phase.warmup
        goal = ctl.planned_size(st.plan_start, st.plan_goal, searched + 1, phase.max_epochs,
                               s.s.plan)
        steps = s.steps_per_epoch()
        moves = {key: (p, self.carry_over(p, steps), push * self.rate_of(key[1], steps))
                 for key, (p, push) in self.push(phase).items()}
        effective = ctl.find_lambda(lambda lam: self.size_with(phase, moves, lam), goal)
        st.lam = effective * st.correction
        st.epoch_goal = goal  # st.braked was cleared at the start of the epoch (search.one_epoch)
        self.last_check = self.arch_state(phase) if s.s.brake in REWINDING else None
        st.t_start = self.mean_op_threshold(phase)
        st.shift = effective * self.mean_op_move(phase, moves)

    def push(self, phase) -> dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]]:
        """-d(R_size + R_thr)/dp at lambda = 1 for every threshold and op score (alpha) of the
        phase, with each tensor: {(cell, name): (tensor, push)}."""
        s = self.search
        params = {(c, name): getattr(s.net.cells[c], name) for c in phase.commit_cells
                  for name in THRESHOLDS + ("alpha",)}
        r_size, r_thr = self.regularizers(s.net, phase.commit_cells, s.s.mu)
        grads = torch.autograd.grad(r_size + r_thr, list(params.values()), allow_unused=True)
        return {key: (p, torch.zeros_like(p) if g is None else -g.detach())
                for (key, p), g in zip(params.items(), grads)}

    def carry_over(self, p: torch.Tensor, steps: int) -> torch.Tensor:
        """How far the momentum already in `p`'s optimizer state carries it over the next
        `steps` steps: -lr * buf * sum_{k=1..steps} m^k (after a large lambda, alpha keeps moving
        for ~10 steps; measured: a collapse one epoch after lambda had been at its cap)."""
        a_opt = self.search.a_opt
        buf = a_opt.state.get(p, {}).get("momentum_buffer")
        group = next((g for g in a_opt.param_groups if any(q is p for q in g["params"])), None)
        if buf is None or group is None or not group["momentum"]:
            return torch.zeros_like(p)
        m = group["momentum"]
        return -group["lr"] * buf.detach() * (m * (1 - m ** steps) / (1 - m))

    def rate_of(self, name: str, steps: int) -> float:
        """Displacement per unit of push and lambda over an epoch of `steps` steps."""
        s = self.search.s
        if name == "alpha":
            return s.lr_alpha * momentum_steps(steps, SCORE_MOMENTUM)
        if name == "t_w":
            lr = s.lr_weight_threshold
        elif name == "t_op" or s.lr_filter_threshold is None:
            lr = s.lr_threshold
        else:
            lr = s.lr_filter_threshold
        return lr * momentum_steps(steps, s.threshold_momentum)

    @torch.no_grad()
    def size_with(self, phase, moves: dict, lam: float) -> int:
        """The gated size if every threshold and score moved by its carried-over momentum plus
        lam * its move over the epoch (the state is left as it was)."""
        saved = {key: p.detach().clone() for key, (p, _, _) in moves.items()}
        for p, carried, move in moves.values():
            p.add_(carried).add_(move, alpha=lam)
        size = self.committed_size(phase)
        for key, (p, _, _) in moves.items():
            p.copy_(saved[key])
        return size

    def mean_op_threshold(self, phase) -> float:
        cells = [self.search.net.cells[i] for i in phase.commit_cells]
        live = [c.t_op.detach()[c.alive_op] for c in cells]
        return float(torch.cat(live).mean()) if live else 0.0

    def mean_op_move(self, phase, moves: dict) -> float:
        cells = {i: self.search.net.cells[i] for i in phase.commit_cells}
        live = [moves[(i, "t_op")][2][c.alive_op] for i, c in cells.items()]
        return float(torch.cat(live).mean()) if live else 0.0

    # ---------------------------------------------------------------- during a search epoch
    def brake(self, phase, step: int) -> bool:
        """The in-epoch brake (`--brake-every N`, 8 by default; docs/mgas.md 10.9, 10.12): once the
        gated size has reached the epoch's planned point, lambda is 0 for the rest of the epoch. The
        feed-forward model does not see CE spreading tied scores, and at the first search epoch of
        the CIFAR-10 supernet the thresholds crossed the whole cliff (413k -> 131k params against
        a plan of 334k). The same rule as between epochs (lambda 0 at or below the plan), checked
        every N steps. With `--brake rewind` (or `hold`) the scores and thresholds are also put
        back where the gated size crossed the plan (`rewind`); with `hold` the architecture then
        takes no steps for the rest of the epoch (`MGASSearch.holding`)."""
        st = self.search.state
        if st.braked is not None or st.epoch_goal is None:
            return st.braked is not None
        size = self.gated_size(phase)
        if size > st.epoch_goal:
            if self.search.s.brake in REWINDING:
                self.last_check = self.arch_state(phase)
            return False
        st.braked, st.braked_gated = step, size
        if self.search.s.brake in REWINDING and self.last_check is not None:
            st.braked_gated = self.rewind(phase, self.last_check, st.epoch_goal, size)
        return True

    def arch_params(self, phase) -> dict[str, torch.Tensor]:
        """The scores and thresholds of the phase's cells, by name."""
        cells = self.search.net.cells
        return {f"{c}.{name}": p for c in phase.commit_cells
                for name, p in cells[c].named_parameters() if arch_group(name) is not None}

    def arch_state(self, phase) -> dict[str, torch.Tensor]:
        return {k: p.detach().clone() for k, p in self.arch_params(phase).items()}

    @torch.no_grad()
    def rewind(self, phase, before: dict[str, torch.Tensor], goal: float, size_now: int,
               iterations: int = REWIND_ITERATIONS) -> int:
        """Put the scores and thresholds where the gated size first reached `goal` between the
        last check above it (`before`) and now: the smallest f in [0, 1] (bisection) with the
        gated size at before + f (now - before) at or below the goal. The scores' momentum is
        cleared, since it carries the push just stopped. `size_now` is the gated size now (at
        f = 1); returns the gated size left.

        **Decision (docs/mgas.md 10.18):** at or below the goal, as the brake without a rewind,
        so the epoch still reaches its point; the overshoot is then one group of tied units at
        the goal instead of up to `brake_every` steps of motion past it."""
        params = self.arch_params(phase)
        now = self.arch_state(phase)

        def move_to(f: float) -> None:
            for k, p in params.items():
                p.copy_(torch.lerp(before[k], now[k], f))

        lo, hi, size = 0.0, 1.0, size_now  # above the goal at lo, at or below it at hi (size)
        for _ in range(iterations):
            mid = (lo + hi) / 2
            move_to(mid)
            at_mid = self.gated_size(phase)
            lo, hi, size = (lo, mid, at_mid) if at_mid <= goal else (mid, hi, size)
        move_to(hi)
        for p in params.values():
            buf = self.search.a_opt.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                buf.zero_()
        return size

    # ---------------------------------------------------------------- after a search epoch
    def after_epoch(self, phase) -> None:
        """Before the commit: learn the gain from how far the op thresholds really moved (not
        after a braked epoch, whose commanded shift was cut short on purpose)."""
        st = self.search.state
        moved = self.mean_op_threshold(phase) - st.t_start
        if st.braked is None:
            st.correction = ctl.corrected(st.correction, st.shift, moved)

    @torch.no_grad()
    def gated_size(self, phase) -> int:
        """The exported size if every closed gate of the phase were committed now (what the
        brake and the log read)."""
        return self.committed_size(phase)

    def committed_size(self, phase) -> int:
        """The size after committing the phase's closed gates on a trial copy of the masks."""
        s = self.search
        masks = snapshot(s.net)
        commit(s.net, cells=phase.commit_cells)
        size = floored_size(s, phase)
        restore(s.net, masks)
        return size

    def after_commit(self, phase, searched: int) -> None:
        """The gated size against the plan at this control point (for the log)."""
        s, st = self.search, self.search.state
        st.gated = self.gated_size(phase)
        st.planned = ctl.planned_size(st.plan_start, st.plan_goal, searched, phase.max_epochs, s.s.plan)
