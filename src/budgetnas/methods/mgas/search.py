"""The MGAS search loop: one-level (or bi-level) training of weights and architecture tensors,
learned discretisation, multi-stage search with re-pruning, regrowth and physical pruning, and a
target size reached within a tolerance (docs/mgas.md §4-§6).

lambda follows the budget controller (controller.py, steering.py; the default) or the published
schedule (`lambda_schedule="paper"`); ledger.py records which mechanism pruned what.

The loop is a small state machine advanced one epoch at a time (`one_epoch`); the method
(`method.py`) checkpoints its state, model and optimizers after every epoch, and each epoch's
randomness comes from (seed, epoch), so `--resume` continues to the identical result.
"""
from __future__ import annotations

import time
from dataclasses import asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

from ... import distributed as dist_utils
from ...data import Augment, Dataset, Split, batches
from ...io import fault_point
from ...train.bn_stats import recalibrated_bn
from ...train.loop import epoch_seed, peak_memory_mb, reset_peak_memory, stop_if_not_finite, sync_gradients
from .derive import plan_network
from .landing import band, commit_step, force_land, regrow_to_band
from .ledger import Ledger
from .prune import physical_prune, regrow
from .regularizers import make_optimizers, regularizers
from .settings import Phase, SearchSettings, SearchState, make_phases
from .sizer import Sizer
from .steering import REWINDING, Steering
from .supernet import GatedConvOp, MGASSupernet, reset_thresholds

# Training images whose statistics the held-out evaluation uses: a random sample (the split is
# sorted by class for image folders), the same in every epoch and on every rank.
CALIBRATION_IMAGES, CALIBRATION_SEED = 2048, 20240601


def make_supernet(settings: SearchSettings, dataset: Dataset, channels: int | None = None) -> MGASSupernet:
    """The supernet of these settings for this dataset (at `channels` instead of the settings' width)."""
    return MGASSupernet(channels=channels or settings.channels, layers=settings.layers,
                        in_channels=dataset.channels, num_classes=dataset.num_classes)


class MGASSearch:
    """The supernet, its optimizers and the search state, advanced one epoch at a time."""

    def __init__(self, dataset: Dataset, settings: SearchSettings, *, target: dict, seed: int,
                 device: torch.device, rank: int = 0, world: int = 1, latency_table=None):
        self.ds, self.s, self.seed = dataset, settings, seed
        self.rank, self.world, self.device = rank, world, device
        self.target = target
        (self.unit,) = target  # params, macs or latency
        torch.manual_seed(seed)
        self.net = self._supernet()
        self.sizer = Sizer(self.unit, dataset.input_size, latency_table)
        self.w_opt, self.a_opt = make_optimizers(self.net, settings)
        self.phases = make_phases(settings)
        self.state = SearchState(delta=settings.lambda_delta)
        self.goal = target[self.unit]
        self.where = "search"  # the run directory, once there is one (for error messages)
        self.ledger = Ledger(self.state.pruned)  # who pruned (ledger.py)
        self.state.pruned = self.ledger.totals
        self.steering = Steering(self, regularizers)  # budget controller (controller.py)
        self.augment = Augment.standard(dataset, cutout=settings.cutout) if settings.augment else None

    # ------------------------------------------------------------ checkpoint
    def _supernet(self) -> MGASSupernet:
        return make_supernet(self.s, self.ds).to(self.device)

    def state_dict(self) -> dict:
        return {"model": self.net.state_dict(), "w_opt": self.w_opt.state_dict(),
                "a_opt": self.a_opt.state_dict(), "state": asdict(self.state), "channels": self.s.channels}

    def load_state_dict(self, ckpt: dict) -> None:
        # A run keeps the width it started with (one started before the width rule of width.py,
        # or under another rule, has a checkpoint of another width; older checkpoints say it
        # through the stem, 3C wide).
        width = ckpt.get("channels") or ckpt["model"]["stem.0.weight"].shape[0] // 3
        if width != self.s.channels:
            self.s.channels = width
            self.net = self._supernet()
        self._resize_to(ckpt["model"])
        self.net.load_state_dict(ckpt["model"])
        self.w_opt, self.a_opt = make_optimizers(self.net, self.s)
        self.w_opt.load_state_dict(ckpt["w_opt"])
        self.a_opt.load_state_dict(ckpt["a_opt"])
        self.state = SearchState(**ckpt["state"])
        self.ledger = Ledger(self.state.pruned)
        self.state.pruned = self.ledger.totals

    def _resize_to(self, saved: dict) -> None:
        """Physically pruned tensors are smaller than a fresh supernet's: match the saved shapes."""
        for name, tensor in saved.items():
            module_name, leaf = name.rsplit(".", 1)
            module = self.net.get_submodule(module_name)
            current = getattr(module, leaf)
            if isinstance(current, torch.Tensor) and current.shape != tensor.shape:
                if isinstance(current, nn.Parameter):
                    current.data = torch.empty(tensor.shape, dtype=current.dtype, device=current.device)
                else:
                    setattr(module, leaf, torch.empty(tensor.shape, dtype=current.dtype, device=current.device))

    # ------------------------------------------------------------ one epoch
    def epoch_kind(self, phase: Phase) -> str:
        if self.state.frozen_pending:
            return "frozen"
        if not phase.commit_cells:  # a stage that only trains (first_stage="train")
            return "warmup"
        return "warmup" if self.state.epoch_in_phase < phase.warmup else "search"

    def steps_per_epoch(self) -> int:
        """Optimizer steps of one training epoch on this rank."""
        return -(-len(self.ds.train) // (self.s.batch_size * self.world))

    def train_epoch(self, phase: Phase, kind: str) -> dict:
        s, st = self.s, self.state
        gen = torch.Generator().manual_seed(epoch_seed(self.seed, st.global_epoch))
        torch.manual_seed(epoch_seed(self.seed, st.global_epoch) + 1)
        self.net.train()
        params = [p for p in self.net.parameters()]
        weight_params = [p for g in self.w_opt.param_groups for p in g["params"]]
        val_iter = None
        if s.bilevel and kind == "search":
            val_iter = iter(self._cycle_val(gen))
        totals = {"ce": 0.0, "r_size": 0.0, "r_thr": 0.0, "correct": 0.0, "n": 0.0}
        steps = self.steps_per_epoch()
        for step, (x, y) in enumerate(batches(self.ds.train, self.ds, s.batch_size, gen=gen,
                                              shuffle=True, augment=self.augment, rank=self.rank,
                                              world_size=self.world, device=self.device)):
            search = kind == "search"
            lam = st.lam if search and st.braked is None else 0.0
            held = self.holding()
            if val_iter is not None and not held:  # bi-level: architecture step on held-out batches
                vx, vy = next(val_iter)
                loss, *_ = self._loss(phase, vx, vy, lam, search)
                self._stop_if_not_finite(loss, step)
                self._step(loss, params, arch=True, weights=False)
            loss, ce, r_size, r_thr, logits = self._loss(phase, x, y, lam, search)
            self._stop_if_not_finite(loss, step)
            self._step(loss, params, arch=search and val_iter is None and not held, weights=True,
                       weight_params=weight_params)
            totals["ce"] += ce.item() * len(y)
            totals["r_size"] += r_size.item() * len(y)
            totals["r_thr"] += r_thr.item() * len(y)
            totals["correct"] += float((logits.argmax(1) == y).sum())
            totals["n"] += len(y)
            if search and lam > 0 and self.budget() and self.brake_due(step + 1, steps):
                self.steering.brake(phase, step + 1)  # the plan's point reached: stop pushing
            fault_point("search-step")
        keys = list(totals)
        summed = dict(zip(keys, dist_utils.all_reduce_sum([totals[k] for k in keys], self.device)))
        n = max(summed["n"], 1)
        return {"ce": summed["ce"] / n, "r_size": summed["r_size"] / n, "r_thr": summed["r_thr"] / n,
                "train_acc": summed["correct"] / n}

    def brake_due(self, done: int, steps: int) -> bool:
        """Whether the brake checks the gated size after `done` of the epoch's `steps` steps: every
        `brake_every` steps; after the last one only when it rewinds (a stop there changes nothing,
        a rewind still puts the thresholds back on the plan before the commit)."""
        every = self.s.brake_every
        if not every:
            return False
        if done >= steps:
            return self.s.brake in REWINDING
        return done % every == 0

    def holding(self) -> bool:
        """`--brake hold`: once braked, the scores and thresholds stay where the brake put them for
        the rest of the epoch (the weights keep training). After a rewind CE alone still closed
        gates: at stage 3's first search epoch on CIFAR-10 the gated size fell from 877k to 748k
        with lambda 0 (docs/mgas.md 10.18)."""
        return self.s.brake == "hold" and self.state.braked is not None

    def _stop_if_not_finite(self, loss: torch.Tensor, step: int) -> None:
        """A NaN or infinite loss stops the search (exit code 2) before it reaches the weights;
        the checkpoint of the last finished epoch stays as it was."""
        epoch = self.state.global_epoch
        stop_if_not_finite(loss, what="search", epoch=epoch, step=step, where=self.where,
                           kept=epoch > 0, fix="check the data, or lower --lr-weights")

    def _cycle_val(self, gen: torch.Generator):
        while True:
            yield from batches(self.ds.val, self.ds, self.s.batch_size, gen=gen, shuffle=True,
                               rank=self.rank, world_size=self.world, device=self.device)

    def _loss(self, phase: Phase, x, y, lam: float, search: bool):
        logits = self.net(x, upto=phase.upto, head=phase.head, search=search)
        ce = F.cross_entropy(logits, y)
        if not search:  # warm-up / frozen masks: weights only, no regularizer
            zero = ce.new_zeros(())
            return ce, ce, zero, zero, logits
        r_size, r_thr = regularizers(self.net, phase.commit_cells, self.s.mu)
        loss = ce + lam * (r_size + r_thr) if lam > 0 else ce
        return loss, ce, r_size.detach(), r_thr.detach(), logits

    def _step(self, loss, params, *, arch: bool, weights: bool, weight_params=None) -> None:
        self.w_opt.zero_grad(set_to_none=True)
        self.a_opt.zero_grad(set_to_none=True)
        loss.backward()
        sync_gradients(params)
        if weights:
            if self.s.grad_clip > 0:
                nn.utils.clip_grad_norm_(weight_params, self.s.grad_clip)
            self.w_opt.step()
        if arch:
            self.a_opt.step()

    def evaluate(self, phase: Phase) -> float:
        """Held-out accuracy of the committed network (gates open, committed masks)."""
        logits = self.held_out_logits(phase)
        return int((logits.argmax(1) == self.ds.val.y.to(logits.device)).sum()) / max(1, len(self.ds.val))

    @torch.no_grad()
    def held_out_logits(self, phase: Phase) -> torch.Tensor:
        """The committed network's logits on the held-out split, with BatchNorm statistics
        recalibrated for it on a fixed sample of training images.

        The running statistics are gathered by the search-mode forward (soft gates, ops not yet
        committed) and no longer fit the network right after a commit: finished digits searches
        logged 0.10-0.44 held-out accuracy that were 0.80-0.88 with recalibrated statistics
        (docs/mgas.md 10.10). The search's own statistics are put back afterwards, so training,
        checkpoints and resume are unchanged."""
        def forward(x: torch.Tensor) -> torch.Tensor:
            return self.net(x, upto=phase.upto, head=phase.head)

        train = self.ds.train
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(CALIBRATION_SEED))
        idx = order[:CALIBRATION_IMAGES].sort().values
        sample = Split(train.x[idx], train.y[idx])
        calibration = (x for x, _ in batches(sample, self.ds, 256, device=self.device))
        with recalibrated_bn(self.net, forward, calibration):
            return torch.cat([forward(x) for x, _ in batches(self.ds.val, self.ds, 256, device=self.device)])

    # ------------------------------------------------------------ pruning decisions
    def update_lambda(self, died: int) -> None:
        st, n_thr = self.state, self.s.n_thr
        if died >= 4 * n_thr:
            st.delta, st.lam = self.s.lambda_delta, st.lam / 2
        elif died < 2 * n_thr and not (self.s.lambda_cap and st.lam > 0
                                       and st.last_ce < st.lam * st.last_rsize):
            st.delta *= 4
            st.lam += st.delta

    def budget(self) -> bool:
        """lambda from the budget controller (controller.py), not the published schedule."""
        return self.s.lambda_schedule == "budget"

    def pruned_ops(self, cells: range) -> set[tuple[int, int, int]]:
        return {(c, e, o) for c in cells for e, o in
                (self.net.cells[c].alive_op == 0).nonzero().tolist()}

    def end_phase(self, phase: Phase) -> None:
        physical_prune(self.net, plan_network(self.net), [self.w_opt, self.a_opt])
        st = self.state
        st.epoch_in_phase, st.start_size, st.frozen_pending, st.stage_pruned = 0, None, False, []
        st.plan_start = None  # budget controller: the next phase plans anew
        if st.reached:
            low, high = band(self)
            size = self.sizer(self.net)
            if size < low:  # the rebuilt network must still be inside the band
                regrow_to_band(self)
            elif size > high:
                force_land(self)
            # **Decision:** once the target is reached (in any stage), train the whole committed
            # network's weights for one epoch with masks frozen, so the classifier is trained and
            # the reported held-out accuracy is the exported network's.
            st.phase, st.finishing, st.frozen_pending = len(self.phases) - 1, True, True
        else:
            st.phase += 1
            reset_thresholds(self.net)

    # ------------------------------------------------------------ the loop
    def one_epoch(self) -> dict:
        """Train one epoch, take the pruning decisions due after it; returns its log row."""
        st = self.state
        phase = self.phases[st.phase]
        kind = self.epoch_kind(phase)
        if st.epoch_in_phase == 0:
            st.stage_pruned = sorted(self.pruned_ops(phase.commit_cells))  # pruned before this stage
        started = time.perf_counter()
        reset_peak_memory(self.device)
        self.ledger.new_epoch()
        st.braked = st.braked_gated = None  # set again only by a braked search epoch
        if self.budget() and kind == "search":
            self.steering.before_epoch(phase)  # budget controller: this epoch's lambda
        stats = self.train_epoch(phase, kind)
        st.last_ce, st.last_rsize = stats["ce"], stats["r_size"]
        st.epoch_in_phase += 1
        st.global_epoch += 1
        event = self.after_epoch(phase, kind)
        dist_utils.broadcast_state(self.net)
        st.seconds += time.perf_counter() - started
        return self.log_row(phase, kind, stats, event, started)

    def after_epoch(self, phase: Phase, kind: str) -> str:
        st, s = self.state, self.s
        if kind == "frozen" and st.finishing:
            st.done = True
            return "weights trained with masks frozen; done"
        if kind == "frozen":
            before = set(map(tuple, st.stage_pruned))
            pruned_here = sorted(self.pruned_ops(phase.commit_cells) - before)
            momentum = {c: self.a_opt.state.get(self.net.cells[c].alpha, {}).get(
                "momentum_buffer", torch.zeros_like(self.net.cells[c].alpha)) for c in phase.commit_cells}
            gen = torch.Generator().manual_seed(self.seed * 7919 + st.phase)
            with self.ledger.track("regrow", self.net, lambda: self.sizer(self.net)):
                grown = regrow(self.net, pruned_here, ratio=s.regrow_ratio, alpha_momentum=momentum,
                               generator=gen, optimizers=[self.w_opt, self.a_opt])
            if grown and self.sizer(self.net) > band(self)[1] and st.reached:
                st.reached = False  # regrowth took us back above the target
            self.end_phase(phase)
            return f"regrew {len(grown)} ops"
        if kind == "warmup":
            if not phase.commit_cells and st.epoch_in_phase >= max(1, phase.warmup):
                self.end_phase(phase)  # a stage that only trains: nothing to commit or regrow
                return "warm-up; phase ends (trains only)"
            return "warm-up"
        searched = st.epoch_in_phase - phase.warmup
        if self.budget():
            self.steering.after_epoch(phase)  # budget controller: learn from the realised motion
        if searched % s.commit_every:
            if self.budget():
                self.steering.after_commit(phase, searched)
            return "search"
        if st.start_size is None:
            st.start_size = self.sizer.stage_params(self.net, phase.stage_cells)
        died = commit_step(self, phase)
        if self.budget():
            self.steering.after_commit(phase, searched)
        else:
            self.update_lambda(died)
        capped = searched >= phase.max_epochs
        shrunk = (not phase.final and st.start_size and
                  self.sizer.stage_params(self.net, phase.stage_cells) <= s.stage_ratio * st.start_size)
        if st.reached or capped or shrunk:
            if phase.final and not st.reached:
                force_land(self)
                st.reached = True
            if phase.regrow and not st.reached:
                st.frozen_pending = True
            else:
                self.end_phase(phase)
            return f"commit: {self.pruned_text()}; phase ends"
        return f"commit: {self.pruned_text()}"

    def pruned_text(self) -> str:
        """What this epoch's commits removed, all mechanisms and levels (ledger.py)."""
        book = self.ledger.epoch
        units = {level: sum(book[m][level] for m in ("gates", "land", "force"))
                 for level in ("ops", "filters", "weights")}
        return ", ".join(f"{n} {level}" for level, n in units.items()) + " pruned"

    def log_row(self, phase: Phase, kind: str, stats: dict, event: str, started: float) -> dict:
        ratios = self.remaining_ratios()
        arch = self.sizer.arch(self.net)  # exported once for the size and the cells' sizes
        cells = self.sizer.sizes_of(arch)[1]
        return {"epoch": self.state.global_epoch, "stage": phase.name, "kind": kind, "event": event,
                "lambda": self.state.lam, **{k: round(v, 6) for k, v in stats.items()},
                "size": self.sizer.of(arch), "size_unit": self.unit, "target": self.goal,
                "cell_sizes": [round(v, 4) for v in cells],
                "planned": self.state.planned, "gated": self.state.gated, "shift": self.state.shift,
                "correction": self.state.correction, "braked_at_step": self.state.braked,
                "braked_gated": self.state.braked_gated,
                **ratios, "pruned": self.ledger.epoch, "val_acc": self.evaluate(phase),
                "seconds": round(time.perf_counter() - started, 3),
                "peak_memory_mb": round(peak_memory_mb(self.device), 1)}

    def remaining_ratios(self) -> dict:
        ops = [c.alive_op for c in self.net.cells]
        filters, weights = [], []
        for cell in self.net.cells:
            for e, row in enumerate(cell.ops):
                for o, op in enumerate(row):
                    if isinstance(op, GatedConvOp) and bool(cell.alive_op[e, o]):
                        filters.append(op.alive_out)
                        weights.extend(c.mask for c in op.convs())
        ratio = lambda ts: float(sum(int(t.sum()) for t in ts) / max(1, sum(t.numel() for t in ts)))  # noqa: E731
        return {"op_ratio": round(ratio(ops), 4), "filter_ratio": round(ratio(filters), 4),
                "weight_ratio": round(ratio(weights), 4)}
