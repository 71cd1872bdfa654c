"""Tiny MGAS configurations shared by the MGAS test modules (seeded, CPU, seconds each)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from budgetnas.methods.mgas.supernet import MGASSupernet

# a real digits search small enough for a test: 400 images, width 2, one final warm-up epoch
TINY = dict(dataset="digits", subset=400, preset="tiny", channels=2, batch_size=40,
            final_warmup_epochs=1, max_final_epochs=4, seed=0, threads=1, report=False)


def read_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def small_net(seed: int = 0) -> MGASSupernet:
    torch.manual_seed(seed)
    return MGASSupernet(channels=4, layers=3, in_channels=1, num_classes=10)
