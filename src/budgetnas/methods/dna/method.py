"""`budgetnas search dna`: block-wise distillation, every candidate rated, exact search.

Steps (each cached in the run directory and reused when its settings match):
1. teacher: torchvision:NAME, a budgetnas run directory, `train` or `none` (see teacher.py);
2. per block: train its supernet cells against the teacher (round<r>/block<i>/checkpoint.pt),
   then rate every candidate (round<r>/block<i>/ratings.json);
3. per-layer cost table (round<r>/costs_<metric>.json), per-block Pareto fronts, merged into
   the front of whole networks (front.json); the best network under the target -> arch.json;
4. with --progressive N: retrain the found network and use it as the next round's teacher;
5. the final network is retrained briefly on the search-training split (--final-epochs) for
   summary.json's val_acc on the held-out split.

`--space nb201` hands the work to `nb201/steps.py` (a block is a stage of the NAS-Bench-201
network, a candidate a cell genotype; every one of the 15,625 cells is rated in every block);
`--space nbmacro` to `nbmacro/steps.py` (a block is a stage of 2, 3, 3 layers; every string of
every block is rated and ratings.csv scores all 6,561 networks).

`--block K` trains and rates block K only, so blocks can run in separate processes with the same
--out (each locks its own block directory); a run without --block then reuses them.
"""
from __future__ import annotations

from pathlib import Path

from ...arch import Arch
from ...cost.lookup import METRICS
from ...errors import UserError
from ...io import write_json
from ...runs import Method
from .options import DNAOptions
from .rounds import describe, retrain, search_round
from .supernet import check_groups, parse_ops
from .teacher import check_teacher_strength


class DNAMethod(Method):
    title = "DNA search finished"
    unit = "round"
    # Ratings do not depend on the budget: a resumed run answers another one from the cache
    # (each block's own settings are checked against its cached training and ratings).
    resume_free = frozenset({"target_params", "target_macs", "target_latency_ms", "final_epochs",
                             "nb201_per_stage", "nb201_export_channels", "nb201_export_cells",
                             "nb201_zero_cost", "allow_weak_teacher"})
    opts: DNAOptions

    def check(self, ctx) -> None:
        opts = self.opts
        opts.check_space_options()
        if opts.space != "mbconv":
            self.target = self.steps().check(opts)
            return
        self.target = opts.target()
        if opts.block is None and self.target is None:
            raise UserError("give a budget", where="--target-params",
                            fix="add --target-params N, --target-macs N or --target-latency-ms X")
        if opts.block is not None and (opts.out is None or opts.progressive):
            raise UserError("--block needs --out (the shared run directory) and no --progressive",
                            where="--block")
        for text, where in ((opts.depths, "--depths"), (opts.widths, "--widths")):
            if text is not None:
                check_groups(text, where)  # before any work; their count is checked per teacher
        self.ops = parse_ops(opts.ops)

    def run(self, ctx) -> bool:
        opts, out = self.opts, ctx.out
        if opts.space != "mbconv":
            return self.steps().run(self, ctx)
        if self.resuming(ctx):
            ctx.load_checkpoint()  # checks the options, carries the work time on
        source, log, result, seen = opts.teacher, [], None, []  # seen: retrained networks' accuracies
        teacher_acc = None  # the user's (round 0) teacher's held-out accuracy
        for r in range(opts.progressive + 1):
            rdir = out / f"round{r}"
            result = search_round(opts, source, ctx.dataset, rdir, ctx.device, self.ops, self.target, r, log)
            if opts.block is not None:
                return False
            if r == 0:
                teacher_acc = result["teacher_acc"]
            ctx.save_checkpoint({"round": r}, log=log)
            if r < opts.progressive:
                path, acc = retrain(result["arch"], ctx.dataset, rdir / "retrained", opts, ctx.device,
                                    epochs=max(opts.final_epochs, 1))
                source = str(path)
                seen.append(acc)
                log.append({"stage": "retrain", "round": r, "teacher_next": source, "val_acc": acc})
        val_acc = None
        if opts.final_epochs:
            _, val_acc = retrain(result["arch"], ctx.dataset, out / "final", opts, ctx.device,
                                 epochs=opts.final_epochs)
            seen.append(val_acc)
        if seen:  # the user's teacher against the best network retrained in this run
            check_teacher_strength(opts, teacher_acc, max(seen))
        self.log, self.found, self.val_acc = log, result, val_acc
        ctx.save_checkpoint({"round": opts.progressive, "done": True}, log=log)
        return True

    def steps(self):
        """The steps module of a non-MBConv space (nb201/steps.py, nbmacro/steps.py)."""
        if self.opts.space == "nb201":
            from .nb201 import steps
        else:
            from .nbmacro import steps
        return steps

    def resuming(self, ctx) -> bool:
        """A resumed run that had finished a round has a checkpoint; one stopped inside round 0
        has none, and its teacher's and blocks' own checkpoints carry the work."""
        return self.opts.resume and self.opts.block is None and (ctx.out / "checkpoint.pt").is_file()

    def open_run_dir(self, ctx) -> None:
        if self.opts.block is not None:  # a share of another run's work: its directory, its lock
            ctx.out = Path(self.opts.out)
            return
        stopped_in_round0 = (self.opts.out is not None and (Path(self.opts.out) / "round0").is_dir()
                             and not (Path(self.opts.out) / "checkpoint.pt").is_file())
        ctx.open(resume=self.opts.resume and not stopped_in_round0)

    def restore(self, ctx) -> None:
        """Nothing to load up front: `run` reuses each finished step's own cache."""

    def stopped_line(self, ctx) -> str:
        block = self.opts.block
        return f"block {block} trained and rated in {ctx.out / 'round0' / f'block{block}'}"

    def result(self) -> tuple[Arch, dict]:
        if self.opts.space != "mbconv":
            return self.steps().result(self)
        result, (metric, budget) = self.found, self.target
        chosen = result["front"][result["chosen"]]
        write_json(self.ctx.out / "front.json", {
            "metric": metric, "unit": METRICS[metric], "target": budget, "chosen": result["chosen"],
            "points": [{**p, "compact": describe(p["genotype"])} for p in result["front"]]})
        extras = {"target": {metric: budget}, "val_acc": self.val_acc, "cost": chosen["cost"],
                  "score": chosen["score"], "front_size": len(result["front"]),
                  "teacher": result["teacher"], "rounds": self.opts.progressive + 1,
                  "blocks": result["blocks"], "cells": result["cells"],
                  "candidates_per_block": result["candidates"], "final_epochs": self.opts.final_epochs}
        if metric == "latency":
            extras["latency_ms_table"] = chosen["cost"]
        return result["arch"], extras

    def table_rows(self, summary: dict) -> dict:
        if self.opts.space != "mbconv":
            return self.steps().table_rows(self, summary)
        return {"cost (table)": f"{summary['cost']:g}", "score (rel. L1 sum)": f"{summary['score']:.4f}",
                "front points": summary["front_size"], "network": describe(self.found["arch"].genotype)}
