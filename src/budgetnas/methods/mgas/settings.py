"""Settings, state and phases of an MGAS search (docs/mgas.md §4-§6).

A search is a sequence of phases: one per stage (multi-stage search; cells up to the stage's end,
into the stage's head) and a final whole-network phase. Settings come from a preset
(`presets.py`; with the budget controller, `presets.BUDGET` on top) with any option given on the
command line replacing the preset's value.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from .presets import BUDGET, PRESETS
from .supernet import stage_bounds


@dataclass
class SearchSettings:
    channels: int = 4
    layers: int = 4
    batch_size: int = 128
    stages: int = 3
    first_stage: str = "search"  # "search" or "train": stage 1 trains its cells without pruning them
    warmup_epochs: int = 1
    max_stage_epochs: int = 4
    final_warmup_epochs: int = 1
    max_final_epochs: int = 8
    commit_every: int = 2
    stage_ratio: float = 0.3
    regrow_ratio: float = 0.2
    n_thr: int = 12
    mu: float = 0.0
    lambda_delta: float = 1e-5
    lambda_cap: bool = True  # freeze lambda while CE < lambda * R_size (as published)
    tolerance: float = 0.03
    bilevel: bool = False
    lr_weights: float = 0.01
    weight_decay: float = 3e-4
    lr_alpha: float = 1.0
    lr_beta: float = 1.0
    lr_threshold: float = 0.1
    lr_weight_threshold: float = 0.001
    grad_clip: float = 5.0
    # budget controller, op cost and augmentation (docs/mgas.md §10)
    lambda_schedule: str = "budget"  # "budget" (controller.py) or "paper" (docs/mgas.md §4 schedule)
    plan: str = "geometric"  # shape of the budget controller's size plan (controller.PLAN_SHAPES)
    stage_plan: str = "equal"  # per-cell plan over the phases (controller.STAGE_PLANS; docs/mgas.md 10.19)
    brake_every: int = 0  # steps between the controller's in-epoch checks of the gated size (0: none)
    brake: str = "stop"  # once on the plan: "stop" pushing, "rewind" to it, "hold" there (Steering.brake)
    augment: bool = True  # crop/flip/Cutout during search, as in retraining (data.Augment)
    cutout: int | None = None  # None: Augment.standard's size for the dataset
    threshold_momentum: float = 0.9  # SGD momentum of t_op, t_fil, t_w (0.9 as published)
    lr_filter_threshold: float | None = None  # None: lr_threshold (as published)


@dataclass
class SearchState:
    phase: int = 0
    epoch_in_phase: int = 0
    global_epoch: int = 0
    lam: float = 0.0
    delta: float = 1e-5
    start_size: float | None = None
    frozen_pending: bool = False
    finishing: bool = False  # target reached: one last epoch with frozen masks, then done
    stage_pruned: list = field(default_factory=list)
    reached: bool = False
    done: bool = False
    seconds: float = 0.0
    last_ce: float = 0.0
    last_rsize: float = 0.0
    # budget controller (controller.py): the plan of the current phase and the run's start sizes
    total_start: float | None = None
    cells_start: list = field(default_factory=list)
    plan_start: float | None = None
    plan_goal: float | None = None
    planned: float | None = None
    gated: float | None = None
    shift: float = 0.0
    correction: float = 1.0
    t_start: float = 0.0  # mean op threshold when the epoch's lambda was set
    epoch_goal: float | None = None  # the plan's point at the end of this search epoch
    braked: int | None = None  # step of this epoch at which the gated size reached epoch_goal
    braked_gated: float | None = None  # the gated size the brake left (after its rewind, if any)
    pruned: dict | None = None  # ledger totals (ledger.py)


@dataclass
class Phase:
    name: str
    upto: int  # cells [0, upto) run
    head: int | None  # stage head index, None = classifier
    commit_cells: range
    stage_cells: range
    warmup: int
    max_epochs: int
    regrow: bool
    final: bool


def make_phases(s: SearchSettings) -> list[Phase]:
    """One phase per stage, then the final one.

    **Decision (`first_stage="train"`, docs/mgas.md 10.16):** stage 1 then only warms up its cells
    and prunes nothing (no commit cells); they are first pruned in stage 2 with deeper cells on
    top. Searched alone under its auxiliary head, a first stage of one cell kept the convolutions
    a one-cell network needs and pruned the pools and skips the whole network uses there. With
    stage 1 training only, cell 0 came out like a single-stage search's but the networks retrained
    no better on CIFAR-10, so the default stays the published `search`."""
    bounds = stage_bounds(s.layers, s.stages)
    phases = []
    if s.stages > 1:
        for k, (start, end) in enumerate(bounds):
            prunes = k > 0 or s.first_stage == "search"
            phases.append(Phase(f"stage{k + 1}", end, k if k < 2 else None,
                                range(0, end) if prunes else range(0), range(start, end),
                                s.warmup_epochs, s.max_stage_epochs if prunes else 0, k > 0, False))
    phases.append(Phase("final", s.layers, None, range(s.layers), range(s.layers),
                        s.final_warmup_epochs, s.max_final_epochs, False, True))
    return phases


def settings_from(opts) -> SearchSettings:
    """The preset's settings with every option the user gave in their place."""
    values = dict(PRESETS[opts.preset])
    if getattr(opts, "lambda_schedule", "budget") == "budget":
        values.update(BUDGET)
    for f in fields(SearchSettings):
        value = getattr(opts, f.name, None)
        if value is not None:
            values[f.name] = value
    return SearchSettings(**values)
