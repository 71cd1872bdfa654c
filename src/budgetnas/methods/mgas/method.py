"""`budgetnas search mgas`: the MGAS method on the run context (one step = one search epoch)."""
from __future__ import annotations

import hashlib
import json

from ... import distributed as dist_utils
from ...arch import Arch, make_provenance
from ...config import TARGET_FIELDS
from ...cost import profile
from ...cost.darts import latency_table
from ...errors import UserError
from ...runs import Method
from .ledger import pruned_by
from .options import MGASOptions
from .search import MGASSearch, make_supernet
from .settings import settings_from
from .sizer import Sizer, minimum_arch
from .width import HEADROOM, width_for_target

# Without a target: 4 % of the supernet's exported size (8,776 params for tiny on digits).
# **Decision:** about the size of a DARTS-like network (8 ops a cell) at the supernet's width, the
# kind of network the search is to find; at half the supernet (as before) the network had to keep
# half of all ops and was several times slower at batch 1 than such a network.
DEFAULT_TARGET_SHARE = 0.04


class MGASMethod(Method):
    title = "MGAS search finished"
    opts: MGASOptions

    def check(self, ctx) -> None:
        """Build the supernet and refuse a target it cannot reach, before any file is written."""
        opts = self.opts
        given = opts.target()
        target = {given[0]: given[1]} if given else {"params": 0}
        table = latency_table(str(ctx.device), threads=opts.latency_threads) if "latency" in target else None
        settings = settings_from(opts)
        if settings.first_stage == "train" and settings.stages == 1:
            raise UserError("--first-stage train applies to a multi-stage search; this one has 1 stage",
                            where="--first-stage", fix="add --stages 3, or leave --first-stage out")
        if opts.stage_plan is not None and settings.stages == 1:
            raise UserError("--stage-plan applies to a multi-stage search; this one has 1 stage",
                            where="--stage-plan", fix="add --stages 3, or leave --stage-plan out")
        if opts.brake is not None and not settings.brake_every:
            raise UserError("--brake sets what the budget controller's in-epoch brake does; this search "
                            "has no brake", where="--brake",
                            fix="leave --lambda-schedule at budget and --brake-every above 0, or leave --brake out")
        preset = settings.channels
        self.channels_from = "--channels" if opts.channels is not None else "preset"
        if widens(opts):
            settings.channels = widened(settings, ctx.dataset, *given)
            if settings.channels != preset:
                self.channels_from = f"target ({HEADROOM:g}x headroom; preset C={preset})"
                if ctx.rank == 0 and not opts.resume:  # a resumed run keeps its own width
                    print(f"supernet widened from C={preset} to C={settings.channels}: at least "
                          f"{HEADROOM:g}x the target leaves the search a choice (--channels N to set it)")
        self.search = MGASSearch(ctx.dataset, settings, target=target, seed=opts.seed,
                                 device=ctx.device, rank=ctx.rank, world=ctx.world, latency_table=table)
        search = self.search
        if given is None:
            search.goal = int(DEFAULT_TARGET_SHARE * search.sizer(search.net))
            search.target = {"params": search.goal}
        if not opts.resume:
            check_target(search)

    def prepare(self, ctx) -> None:
        self.search.where = str(ctx.out)

    @property
    def done(self) -> bool:
        return self.search.state.done

    @property
    def progress(self) -> tuple[int, int | None]:
        """Epochs done, and the most the phases still allow (the search may end earlier)."""
        st = self.search.state
        left = sum(p.warmup + p.max_epochs + 1 for p in self.search.phases[st.phase + 1:])
        phase = self.search.phases[st.phase]
        left += max(0, phase.warmup + phase.max_epochs + 1 - st.epoch_in_phase)
        return st.global_epoch, st.global_epoch + (1 if st.finishing else left)

    def step(self) -> dict:
        return self.search.one_epoch()

    def step_line(self, row: dict) -> str:
        return (f"{row['stage']} {row['kind']}  size {row['size']:,} -> {row['target']:,} "
                f"{row['size_unit']}  val {row['val_acc']:.3f}")

    def state_dict(self) -> dict:
        return self.search.state_dict()

    def load_state_dict(self, state: dict) -> None:
        chosen = self.search.s.channels
        self.search.load_state_dict(state)
        if self.search.s.channels != chosen:
            self.channels_from = "the resumed run's checkpoint"

    def result(self) -> tuple[Arch, dict]:
        search = self.search
        arch = search.sizer.arch(search.net)
        arch.provenance = make_provenance("mgas", self.opts.dataset, search.target, search.seed)
        size = search.sizer.of(arch)
        arch_text = json.dumps(arch.to_json(None)["genotype"], sort_keys=True)
        extras = {"target": search.target, "val_acc": search.evaluate(search.phases[-1]),
                  "epochs": search.state.global_epoch, "stages": search.s.stages,
                  "channels": search.s.channels, "channels_from": self.channels_from,
                  "ops_kept": sum(len(c["edges"]) for c in arch.genotype["cells"]),
                  "cells": len(arch.genotype["cells"]), "world_size": search.world,
                  "options": self.opts.model_dump(mode="json"),
                  "target_error": round(size / search.goal - 1, 4),
                  "lambda_schedule": search.s.lambda_schedule,
                  "pruned_by": pruned_by(search.ledger.totals), "pruned_units": search.ledger.totals,
                  "remaining_ratios": search.remaining_ratios(),
                  "rank_arch_checksums": dist_utils.gather_strings(
                      hashlib.sha256(arch_text.encode()).hexdigest()[:16])}
        if search.unit == "latency":
            search.sizer.table.save()
            extras["latency_ms_table"] = round(size, 4)
            extras["latency_ms_measured"] = profile(arch, latency=True, threads=self.opts.latency_threads,
                                                    runs=30)["latency_ms"]
        return arch, extras

    def table_rows(self, summary: dict) -> dict:
        return {"supernet width": f"C={summary['channels']} ({summary['channels_from']})",
                "ops kept": summary["ops_kept"],
                "pruned by": ", ".join(f"{name} {100 * summary['pruned_by'][key]:.1f} %" for key, name in
                                       (("gates", "gates"), ("land", "landing"), ("force", "fallback")))}


def widens(opts: MGASOptions) -> bool:
    """Whether the supernet's width follows the target (width.py): the CPU preset, a params or
    MACs target, no --channels. The published presets keep their published widths."""
    given = opts.target()
    return (opts.preset == "tiny" and opts.channels is None and given is not None
            and given[0] in ("params", "macs"))


def widened(settings, dataset, unit: str, goal: float) -> int:
    """The supernet's width for this target (width.py: at least HEADROOM x the target)."""
    sizer = Sizer(unit, dataset.input_size)

    return width_for_target(lambda width: sizer(make_supernet(settings, dataset, width)), settings.channels, goal)


def check_target(search: MGASSearch) -> tuple[int, int]:
    """(smallest, largest) size the search can end with; a target outside is refused (exit 2)."""
    largest = search.sizer(search.net)
    smallest = search.sizer.of(minimum_arch(search.net, search.ds.input_size))
    flag, goal, unit = "--" + TARGET_FIELDS[search.unit].replace("_", "-"), search.goal, search.unit
    if goal > largest:
        raise UserError(f"target {goal} is above the whole supernet ({largest} {unit})", where=flag,
                        fix=f"choose a target between {smallest} and {largest}, or a larger preset / a "
                            f"larger --channels")
    if goal < smallest:
        raise UserError(f"target {goal} is below the smallest network this space allows "
                        f"({smallest} {unit})", where=flag,
                        fix=f"choose a target between {smallest} and {largest}, or fewer --layers")
    return smallest, largest
