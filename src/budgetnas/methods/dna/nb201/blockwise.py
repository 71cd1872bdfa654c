"""Block-wise distillation over the NAS-Bench-201 space: teacher features, block training, ratings.

Teacher features (decision): the teacher's three stage outputs are computed once for the images a
step needs (search-training split for training and recalibration, held-out split for scoring) and
kept in memory as float16; block training then costs only the student. The price is no data
augmentation in block training (a fixed teacher tensor per image).

Training (block i): the student block reads the teacher's stage i-1 output (block 0: the image)
and regresses the teacher's stage i output with MSE; every step samples one op per edge, either
uniformly and independently (`uniform`) or so that over every 5 steps each edge uses each op
exactly once (`fair`, strict fairness). Adam, weight decay on weights only, learning rate
x`lr_decay` per epoch, one checkpoint per epoch; epoch e's data order and paths come from a
generator seeded by (seed, block, e), so a resumed block continues exactly.

Targets may be normalised per channel (`target_norm`): divided by the teacher's per-channel std on
the training images, so that every channel weighs the same in the loss and the ratings.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from ....data import Dataset, Split, batches
from ....io import fault_point, read_json, write_json
from ..blockwise import fingerprint, train_on_tensors
from ..teacher import Teacher
from .block import N_OPS, NB201BlockSupernet

BLOCK_CHECKPOINT = "checkpoint.pt"
RATINGS = "ratings.json"
SAMPLERS = ("uniform", "fair")


@torch.no_grad()
def teacher_features(teacher: Teacher, dataset: Dataset, split: Split, *, batch_size: int = 256,
                     device: torch.device = torch.device("cpu")) -> list[torch.Tensor]:
    """[images (normalised), stage 0, stage 1, stage 2] for every image of `split`, float16."""
    parts: list[list[torch.Tensor]] = [[] for _ in range(len(teacher.taps) + 1)]
    for x, _ in batches(split, dataset, batch_size, device=device):
        parts[0].append(x.cpu().half())
        for i, out in enumerate(teacher.capture(x)):
            parts[i + 1].append(out.cpu().half())
    return [torch.cat(p) for p in parts]


def fixed_head(split: Split, count: int, seed: int = 12345) -> Split:
    """`count` images of a fixed (run-seed independent) shuffle of `split`."""
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:count]
    return Split(split.x[order], split.y[order])


def sample_paths(gen: torch.Generator, steps: int, sampler: str) -> torch.Tensor:
    """(steps, 6) op indices: uniform, or strictly fair (each op once per edge every 5 steps)."""
    if sampler == "uniform":
        return torch.randint(N_OPS, (steps, 6), generator=gen)
    rounds = -(-steps // N_OPS)
    cols = [torch.cat([torch.randperm(N_OPS, generator=gen) for _ in range(rounds)]) for _ in range(6)]
    return torch.stack(cols, 1)[:steps]


def train_nb201_block(block: NB201BlockSupernet, inputs: torch.Tensor, targets: torch.Tensor,
                      directory: Path, *, epochs: int, batch_size: int, lr: float, lr_decay: float,
                      weight_decay: float, seed: int, settings: dict, sampler: str = "uniform",
                      stop_after: int | None = None) -> list[dict]:
    """Train one block on (inputs, targets) tensors; resumable per epoch. Returns the log."""
    def draw(gen: torch.Generator, steps: int) -> list[tuple]:
        return [tuple(row) for row in sample_paths(gen, steps, sampler).tolist()]

    return train_on_tensors(block, inputs, targets, directory, draw, epochs=epochs, batch_size=batch_size,
                            lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, seed=seed, settings=settings,
                            stop_after=stop_after)


RATINGS_KINDS = ("lstsq", "adapter", "rel-l1")


def rate_nb201_block(block: NB201BlockSupernet, x: torch.Tensor, y_all: torch.Tensor, n_recal: int,
                     directory: Path, *, settings: dict, rating: str = "lstsq") -> dict:
    """Ratings of all 15,625 cells (cached in ratings.json under the settings' key).

    `x`, `y_all`: block inputs and teacher targets of R recalibration rows then S scoring rows.
    rating: `lstsq` (held-out MSE of a per-cell least-squares adapter, `linear`),
    `adapter` (MSE through the trained adapter) or `rel-l1` (relative L1 through it, slow).
    Returns {"score": [...] (lower is better, normalised by the target's variance or std),
    "mse": [...] where computed, "target_var", ...}."""
    path = Path(directory) / RATINGS
    key = fingerprint({**settings, "rating": rating})
    if path.is_file():
        cached = read_json(path, what="ratings file")
        if cached.get("fingerprint") == key:
            return cached
    started = time.perf_counter()
    x, y_all = x.float(), y_all.float()
    y = y_all[n_recal:]
    row = {"fingerprint": key, "block": block.index, "rating": rating, "target_var": float(y.var()),
           "target_std": float(y.std()), "recal_images": n_recal, "score_images": len(y)}
    row.update(_rate(block, x, y_all, n_recal, rating))
    row["seconds"] = round(time.perf_counter() - started, 3)
    fault_point("rate")
    write_json(path, row)
    return row


def _rate(block: NB201BlockSupernet, x: torch.Tensor, y_all: torch.Tensor, n_recal: int, rating: str) -> dict:
    from .block import all_cells
    from .linear import lstsq_error, rate_linear
    from .moments import rate_moments
    from .rating import forward_recal, rate_direct, rate_tree

    y = y_all[n_recal:]
    if rating == "lstsq":
        centred_var = float((y - y_all[:n_recal].mean((0, 2, 3), keepdim=True)).pow(2).mean())
        if len(block.cells) == 1:
            mse = rate_linear(block, x, y_all, n_recal)
        else:
            mse = _per_cell(block, lambda c: lstsq_error(forward_recal(block, x, c, n_recal, adapter=False),
                                                         y_all, n_recal))
        return {"mse": mse.tolist(), "score": (mse / max(centred_var, 1e-12)).tolist()}
    if len(block.cells) > 1:
        rated = rate_direct(block, x, y, n_recal)
        cells = all_cells()
        rel, mse = [rated[c][0] for c in cells], [rated[c][1] for c in cells]
    elif rating == "rel-l1":
        both = rate_tree(block, x, y, n_recal)
        rel, mse = both[:, 0].tolist(), both[:, 1].tolist()
    else:
        rel, mse = None, rate_moments(block, x, y, n_recal).tolist()
    var = max(float(y.var()), 1e-12)
    return {"mse": mse, "score": rel if rating == "rel-l1" else [m / var for m in mse]}


@torch.no_grad()
def _per_cell(block: NB201BlockSupernet, error) -> torch.Tensor:
    """`error(cell)` for every distinct effective cell, copied to its duplicates."""
    from .block import all_cells, effective_cell

    block.eval()
    done: dict = {}
    out = []
    for cell in all_cells():
        eff = effective_cell(cell)
        if eff not in done:
            done[eff] = error(eff)
        out.append(done[eff])
    return torch.tensor(out, dtype=torch.float64)
