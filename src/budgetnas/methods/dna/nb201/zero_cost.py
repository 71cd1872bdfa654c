"""A training-free score beside DNA's ratings: `--nb201-zero-cost naswot` (same-cell search).

Every one of the 15,625 cells is built as an untrained proxy network (the students' width and
cells per stage) and scored with NASWOT (`budgetnas.naswot`) on one fixed batch of 64
search-training images, the same seed for every cell. The network score used by the search is
then the mean of the two normalised ranks (`ranking.rank_mean`): DNA's summed block ratings and
NASWOT. Scores are saved to `round0/naswot.json` every 500 cells (a killed run continues).

**Decision** (docs/bench_dna.md, NAS-Bench-201 / CIFAR-10, seed 0): DNA's ratings alone rank the
cells with Kendall tau 0.588 against the table, NASWOT alone 0.614, their rank mean 0.716 (mean
within-bin tau 0.439 / 0.487 / 0.546); NASWOT + params without DNA reaches 0.644, so DNA's
ratings carry what the training-free score lacks. A rank mean needs no weight between a
distillation loss and a log-determinant. Off by default: the ratings alone are the published
method. NASWOT costs about 10 minutes on one CPU thread at C=8, 16 px.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ....data import Dataset
from ....io import read_json, write_json
from ....naswot import naswot_score
from ....spaces.nb201 import NB201Network
from .block import all_cells, string_of_cell

FILE = "naswot.json"
BATCH = 64
SAVE_EVERY = 500


def score_cell(cell: str, config: dict, x: torch.Tensor, seed: int) -> float:
    """NASWOT of the untrained proxy network with this cell in every position."""
    torch.manual_seed(seed)
    return naswot_score(NB201Network(config, cell), x)


def naswot_all_cells(opts, dataset: Dataset, rdir: Path) -> tuple[np.ndarray, float]:
    """(NASWOT of every cell in `all_cells()` order, seconds spent over all runs), resumable."""
    config = {"in_channels": dataset.channels, "num_classes": dataset.num_classes,
              "input_size": dataset.input_size, "C": opts.nb201_channels, "cells_per_stage": opts.nb201_cells}
    key = {"config": config, "batch": BATCH, "seed": opts.seed, "dataset": dataset.name,
           "train_images": len(dataset.train)}
    order = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(opts.seed))
    return naswot_cells(config, lambda: dataset.normalize(dataset.train.x[order[:BATCH]]), opts.seed,
                        rdir / FILE, key)


def naswot_cells(config: dict, batch, seed: int, path: Path, key: dict) -> tuple[np.ndarray, float]:
    """(NASWOT of every cell of the network `config` on the images `batch()`, seconds spent over
    all runs), saved to `path` every 500 cells (`score_all_cells`)."""
    def scorer():
        x = batch()
        return lambda cell: score_cell(cell, config, x, seed)

    return score_all_cells(scorer, path, key)


def score_all_cells(scorer: Callable[[], Callable[[str], float]], path: Path, key: dict,
                    save_every: int = SAVE_EVERY) -> tuple[np.ndarray, float]:
    """(score of every cell in `all_cells()` order, seconds spent over all runs) for a training-free
    score: `scorer()` returns the function of a cell string, and is called only when something is
    left to score (preparing it may load images). Saved to `path` every `save_every` cells; a file
    with another `key` is started again. A cell scoring -inf (no path through the network) is put
    below every other cell."""
    state = read_json(path) if path.is_file() else {}
    if state.get("key") != key:
        state = {"key": key, "scores": [], "seconds": 0.0}
    cells = all_cells()
    if len(state["scores"]) < len(cells):
        score = scorer()
        started = time.perf_counter()
        for k in range(len(state["scores"]), len(cells)):
            state["scores"].append(score(string_of_cell(cells[k])))
            if (k + 1) % save_every == 0 or k + 1 == len(cells):
                state["seconds"] += time.perf_counter() - started
                started = time.perf_counter()
                write_json(path, state)
    scores = np.array(state["scores"], dtype=np.float64)
    finite = np.isfinite(scores)
    floor = scores[finite].min() - 1 if finite.any() else 0.0
    return np.where(finite, scores, floor), float(state["seconds"])
