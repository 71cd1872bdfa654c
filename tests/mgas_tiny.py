"""Tiny MGAS configurations shared by the MGAS test modules (seeded, CPU, seconds each)."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch

from budgetnas.methods.mgas.ledger import Ledger
from budgetnas.methods.mgas.sizer import Sizer
from budgetnas.methods.mgas.supernet import MGASSupernet

# a real digits search small enough for a test: 400 images, width 2, one final warm-up epoch
TINY = dict(dataset="digits", subset=400, preset="tiny", channels=2, batch_size=40,
            final_warmup_epochs=1, max_final_epochs=4, seed=0, threads=1, report=False)


def read_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def small_net(seed: int = 0) -> MGASSupernet:
    torch.manual_seed(seed)
    return MGASSupernet(channels=4, layers=3, in_channels=1, num_classes=10)


def search_stub(phase_cells: list[range], phase: int, share: float, stage_plan: str = "even"):
    """A search object around `small_net()` for the landing functions: the phases over
    `phase_cells` (the last one final), in phase `phase`, the goal at `share` of the supernet."""
    net = small_net()
    sizer = Sizer("params", 8)
    total, cells = sizer.sizes(net)
    phases = [SimpleNamespace(commit_cells=c, final=i == len(phase_cells) - 1)
              for i, c in enumerate(phase_cells)]
    state = SimpleNamespace(phase=phase, cells_start=cells, total_start=total, reached=False)
    search = SimpleNamespace(net=net, sizer=sizer, state=state, phases=phases, goal=total * share,
                             s=SimpleNamespace(stage_plan=stage_plan, tolerance=0.03, layers=3),
                             ledger=Ledger(), w_opt=None, a_opt=None)
    return search, phases[phase]
