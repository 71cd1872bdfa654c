"""`budgetnas search random`: random cell networks scaled to the target size.

Candidate i draws every cell's genotype at random (each node: 2 distinct earlier nodes, a random
op on each) from a generator seeded by (seed, i), so the same seed gives the same candidates.
Each candidate is width-scaled to the target exactly like the DARTS baseline. With
--epochs-per-candidate > 0 each one is rated by a short training on the train split and the best
on the held-out val split is kept; with 0 the first candidate is kept. One step = one candidate,
checkpointed, so `--resume` continues to the identical result.
"""
from __future__ import annotations

import random
import time

import torch

from ...arch import Arch, build_model, make_provenance
from ...errors import UserError
from ...runs import Method
from ...spaces.darts_cells import NetShape, Scaled, check_target, make_arch, measure, random_cell, scale_to_target
from ...train.loop import epoch_seed, peak_memory_mb, quick_fit
from .options import RandomOptions


class RandomMethod(Method):
    unit = "candidate"
    opts: RandomOptions

    def check(self, ctx) -> None:
        opts, ds = self.opts, ctx.dataset
        self.target = opts.target()
        self.layers = opts.preset_value("cells", "layers")
        self.width = opts.preset_value("C", "channels")
        self.batch_size = opts.preset_value("batch_size", "batch_size")
        self.shape = NetShape.of(ds)
        if self.target:
            check_target(self.target[1], self.target[0], self.layers, self.shape)
        if opts.epochs_per_candidate and len(ds.train) < self.batch_size:
            raise UserError(f"too little data for batch size {self.batch_size} ({len(ds.train)} training "
                            "images)", where="--batch-size", fix="lower --batch-size or raise --subset")
        self.title = f"random search finished ({opts.candidates} candidates)"

    def cells(self, index: int) -> list[list[dict]]:
        """The genotype of candidate `index`: one random cell per layer."""
        return candidate_cells(self.opts.seed, index, self.layers)

    def arch(self, index: int, provenance: dict | None = None) -> tuple[Arch, Scaled | None]:
        make = lambda w: make_arch(self.cells(index), w, self.shape, provenance=provenance)  # noqa: E731
        if self.target is None:
            return make(self.width), None
        scaled = scale_to_target(make, self.target[1], self.target[0], layers=self.layers)
        return scaled.arch, scaled

    @property
    def done(self) -> bool:
        return len(self.log) >= self.opts.candidates

    @property
    def progress(self) -> tuple[int, int | None]:
        return len(self.log), self.opts.candidates

    def step(self) -> dict:
        index, opts, ctx = len(self.log), self.opts, self.ctx
        started = time.perf_counter()
        try:
            arch, scaled = self.arch(index)
        except UserError as exc:  # this genotype cannot reach the target at any width
            return {"sample": index, "skipped": str(exc)}
        row = {"sample": index, "channels": scaled.channels if scaled else self.width,
               "params_nonzero": measure(arch, "params"), "macs": measure(arch, "macs"),
               "target_error": round(scaled.rel_error, 5) if scaled else None, "val_acc": None}
        if opts.epochs_per_candidate:
            seed = epoch_seed(opts.seed, index)
            torch.manual_seed(seed)
            model = build_model(arch).to(ctx.device)
            row["val_acc"] = quick_fit(model, ctx.dataset, epochs=opts.epochs_per_candidate,
                                       batch_size=self.batch_size, seed=seed, device=ctx.device)
        row["seconds"] = round(time.perf_counter() - started, 3)
        row["peak_memory_mb"] = round(peak_memory_mb(ctx.device), 1)
        return row

    def step_line(self, row: dict) -> str:
        if "skipped" in row:
            return f"#{row['sample']} skipped"
        acc = "" if row["val_acc"] is None else f" val {row['val_acc']:.3f}"
        return f"#{row['sample']} C={row['channels']} {row['params_nonzero']} params{acc}"

    def result(self) -> tuple[Arch, dict]:
        opts = self.opts
        best = pick(self.log, rated=opts.epochs_per_candidate > 0)
        target = {self.target[0]: self.target[1]} if self.target else {}
        arch, scaled = self.arch(best["sample"], make_provenance("random", opts.dataset, target, opts.seed))
        self.title = f"random search finished ({opts.candidates} candidates, picked #{best['sample']})"
        extras = {"target": target, "val_acc": best["val_acc"], "picked": best["sample"],
                  "rated_by": (f"{opts.epochs_per_candidate} training epoch(s) on the train split, "
                               "accuracy on the held-out split") if opts.epochs_per_candidate
                  else "not rated: first candidate",
                  "candidates": opts.candidates, "skipped": sum("skipped" in r for r in self.log),
                  "peak_memory_mb": max((r.get("peak_memory_mb", 0.0) for r in self.log), default=0.0),
                  "cells": self.layers,
                  **(scaled.summary() if scaled else {"channels": self.width, "target_error": None}),
                  "options": opts.model_dump(mode="json")}
        return arch, extras

    def table_rows(self, summary: dict) -> dict:
        return {"cell width C": summary.get("channels")}


def candidate_cells(seed: int, index: int, layers: int) -> list[list[dict]]:
    """The genotype of candidate `index`: one random cell per layer."""
    rng = random.Random(epoch_seed(seed, index))
    return [random_cell(rng) for _ in range(layers)]


def pick(rows: list[dict], rated: bool) -> dict:
    usable = [r for r in rows if "skipped" not in r]
    if not usable:
        raise UserError("no sampled genotype can reach the target at any width", where="--target-*",
                        fix="choose a larger target or sample more --candidates")
    if not rated:
        return usable[0]
    return max(usable, key=lambda r: (r["val_acc"], -r["sample"]))  # ties: the earliest
