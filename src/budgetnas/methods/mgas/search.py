"""The MGAS search loop: one-level (or bi-level) training of weights and architecture tensors,
learned discretisation, multi-stage search with re-pruning, regrowth and physical pruning, and a
target size reached within a tolerance (mgas.md §4-§6).

The loop is a small state machine advanced one epoch at a time; the state, model, optimizers and
log are checkpointed atomically after every epoch, and each epoch's randomness comes from
(seed, epoch), so `--resume` continues to the identical result.
"""
from __future__ import annotations

import hashlib
import json
import math
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from ... import __version__
from ... import distributed as dist_utils
from ...arch import Arch, build_model, make_provenance, save_arch
from ...cost import count_macs, count_nonzero, count_params
from ...data import Dataset, batches
from ...errors import UserError
from ...io import fault_point, load_checkpoint, save_checkpoint, write_json, write_jsonl
from .derive import export_arch, plan_network
from .prune import commit, physical_prune, regrow, restore, revive, snapshot
from .supernet import GatedConvOp, MGASSupernet, arch_group, reset_thresholds, stage_bounds

CHECKPOINT = "checkpoint.pt"


@dataclass
class SearchSettings:
    channels: int = 4
    layers: int = 4
    batch_size: int = 128
    stages: int = 3
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
    bounds = stage_bounds(s.layers, s.stages)
    phases = []
    if s.stages > 1:
        for k, (start, end) in enumerate(bounds):
            phases.append(Phase(f"stage{k + 1}", end, k if k < 2 else None, range(0, end),
                                range(start, end), s.warmup_epochs, s.max_stage_epochs, k > 0, False))
    phases.append(Phase("final", s.layers, None, range(s.layers), range(s.layers),
                        s.final_warmup_epochs, s.max_final_epochs, False, True))
    return phases


class Sizer:
    """Size of the network the current state would export: non-zero params or MACs."""

    def __init__(self, unit: str, input_size: int):
        self.unit, self.input_size = unit, input_size

    def arch(self, net: MGASSupernet) -> Arch:
        return export_arch(net, plan_network(net), input_size=self.input_size)

    def __call__(self, net: MGASSupernet) -> int:
        model = build_model(self.arch(net))
        if self.unit == "macs":
            return count_macs(model, (net.in_channels, self.input_size, self.input_size))
        return count_nonzero(model)

    def stage_params(self, net: MGASSupernet, cells: range) -> int:
        model = build_model(self.arch(net))
        return sum(count_nonzero(model.cells[i]) for i in cells)


def minimum_arch(net: MGASSupernet, input_size: int) -> Arch:
    """The smallest network the search can end with: one parameter-free op per node, every
    cell at its floor width."""
    from .derive import floor_width

    cells = []
    for i, cell in enumerate(net.cells):
        width = floor_width(net, i)
        edges = [{"from": 1 if node == 2 else node - 1, "to": node, "op": "max_pool_3x3"}
                 for node in range(2, cell.steps + 2)]
        cells.append({"reduction": cell.reduction, "channels": width, "edges": edges})
    cfg = {"in_channels": net.in_channels, "num_classes": net.num_classes, "input_size": input_size,
           "stem_channels": net.stem[0].out_channels, "steps": net.steps, "pool_bn": True}
    return Arch("darts", cfg, {"cells": cells})


def make_optimizers(net: MGASSupernet, s: SearchSettings) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    lrs = {"alpha": s.lr_alpha, "beta": s.lr_beta, "t_op": s.lr_threshold,
           "t_fil": s.lr_threshold, "t_w": s.lr_weight_threshold}
    groups: dict[str, list] = {k: [] for k in lrs}
    weights = []
    for name, p in net.named_parameters():
        group = arch_group(name)
        (groups[group] if group else weights).append(p)
    # foreach: one multi-tensor update instead of a Python loop over the supernet's thousands of
    # small tensors (the default on CPUs is the loop)
    w_opt = torch.optim.SGD(weights, lr=s.lr_weights, momentum=0.9, weight_decay=s.weight_decay,
                            foreach=True)
    a_opt = torch.optim.SGD([{"params": ps, "lr": lrs[k], "name": k} for k, ps in groups.items()],
                            lr=1.0, momentum=0.9, weight_decay=0.0, foreach=True)
    return w_opt, a_opt


def regularizers(net: MGASSupernet, cells: range, mu: float) -> tuple[torch.Tensor, torch.Tensor]:
    """R_size and R_thr of mgas.md §4, a few tensor ops per cell.

    R_size = sum_nodes sum_{live o} log(1 + n_act * s_o / sum_{o' on node} s_o') * (1 + mu * cost_o),
    with n_act counted per node (**Decision**, the original reused one node's count).
    R_thr  = sum over live ops of exp(-t_op) (+ exp(-t_fil) + exp(-t_w) for conv ops), plus the
    preprocess filter thresholds exp(-t_pre) (**Decision**: they are thresholds of live units too).
    """
    r_size = r_thr = None
    for c in cells:
        cell = net.cells[c]
        alive = cell.alive_op.to(cell.alpha.dtype)
        s = torch.sigmoid(cell.alpha) * alive
        node = cell.edge_node
        denom = s.new_zeros(cell.steps).index_add_(0, node, s.sum(1))
        n_act = s.new_zeros(cell.steps).index_add_(0, node, alive.sum(1))
        share = s / denom[node].clamp_min(1e-12).unsqueeze(1)
        term = torch.log1p(n_act[node].unsqueeze(1) * share) * alive
        if mu:
            term = term * (1.0 + mu * op_costs(cell))
        conv_alive = alive * cell.is_conv.to(alive.dtype)
        thr = ((torch.exp(-cell.t_op) * alive).sum() + (torch.exp(-cell.t_fil) * conv_alive).sum()
               + (torch.exp(-cell.t_w) * conv_alive).sum() + torch.exp(-cell.t_pre).sum())
        r_size = term.sum() if r_size is None else r_size + term.sum()
        r_thr = thr if r_thr is None else r_thr + thr
    return r_size, r_thr


def op_costs(cell) -> torch.Tensor:
    """Soft weight count of each op: share of its weights still committed (0 for parameter-free
    ops). Only used when mu > 0."""
    cost = torch.zeros(cell.alpha.shape, device=cell.alpha.device)
    for e, row in enumerate(cell.ops):
        for o, op in enumerate(row):
            if isinstance(op, GatedConvOp):
                live = sum(int(c.mask.sum()) for c in op.convs())
                cost[e, o] = live / max(1, sum(c.mask.numel() for c in op.convs()))
    return cost


def _peak_rss_reset() -> None:
    try:  # Linux: reset the high-water mark so each epoch reports its own peak
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _peak_rss_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync_gradients(params: list[nn.Parameter]) -> None:
    """All-reduce (average) gradients across ranks; missing gradients count as zero, so every
    rank takes part in the same collective even when pruned ops were skipped."""
    import torch.distributed as dist

    if not dist.is_initialized():
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


class MGASSearch:
    def __init__(self, dataset: Dataset, out: Path, settings: SearchSettings, *, target: dict,
                 seed: int, device: torch.device, progress: bool = True):
        self.ds, self.out, self.s, self.seed = dataset, out, settings, seed
        self.rank, self.world = dist_utils.init(device)
        self.device = dist_utils.device_for_rank(device)
        self.target = target
        self.unit = "macs" if "macs" in target else "params"
        self.progress = progress
        torch.manual_seed(seed)
        self.net = MGASSupernet(channels=settings.channels, layers=settings.layers,
                                in_channels=dataset.channels, num_classes=dataset.num_classes).to(self.device)
        self.sizer = Sizer(self.unit, dataset.input_size)
        self.w_opt, self.a_opt = make_optimizers(self.net, settings)
        self.phases = make_phases(settings)
        self.state = SearchState(delta=settings.lambda_delta)
        self.log: list[dict] = []
        self.goal = target[self.unit]

    # ------------------------------------------------------------ target checks
    def check_target(self) -> tuple[int, int]:
        largest = self.sizer(self.net)
        smallest_model = build_model(minimum_arch(self.net, self.ds.input_size))
        smallest = (count_macs(smallest_model, self.ds.shape) if self.unit == "macs"
                    else count_nonzero(smallest_model))
        flag = f"--target-{self.unit}"
        if self.goal > largest:
            raise UserError(f"target {self.goal} is above the whole supernet ({largest} {self.unit})",
                            where=flag, fix=f"choose a target between {smallest} and {largest}, "
                                            "or a larger preset / --channels")
        if self.goal < smallest:
            raise UserError(f"target {self.goal} is below the smallest network this space allows "
                            f"({smallest} {self.unit})", where=flag,
                            fix=f"choose a target between {smallest} and {largest}, or fewer --layers")
        return smallest, largest

    # ------------------------------------------------------------ checkpoint
    def save(self) -> None:
        if self.rank != 0:
            return
        save_checkpoint(self.out / CHECKPOINT, {
            "model": self.net.state_dict(), "w_opt": self.w_opt.state_dict(),
            "a_opt": self.a_opt.state_dict(), "state": asdict(self.state), "log": self.log,
            "settings": asdict(self.s), "target": self.target, "seed": self.seed})
        write_jsonl(self.out / "log.jsonl", self.log)

    def load(self) -> None:
        ckpt = load_checkpoint(self.out / CHECKPOINT)
        if ckpt.get("settings") != asdict(self.s) or ckpt.get("target") != self.target \
                or ckpt.get("seed") != self.seed:
            raise UserError("the options differ from those of the run being resumed", where=str(self.out),
                            fix="resume with the same options (or start a new --out)")
        self._resize_to(ckpt["model"])
        self.net.load_state_dict(ckpt["model"])
        self.w_opt, self.a_opt = make_optimizers(self.net, self.s)
        self.w_opt.load_state_dict(ckpt["w_opt"])
        self.a_opt.load_state_dict(ckpt["a_opt"])
        self.state = SearchState(**ckpt["state"])
        self.log = ckpt["log"]

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
        return "warmup" if self.state.epoch_in_phase < phase.warmup else "search"

    def train_epoch(self, phase: Phase, kind: str) -> dict:
        s, st = self.s, self.state
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + st.global_epoch)
        torch.manual_seed(self.seed * 1_000_003 + st.global_epoch + 1)
        self.net.train()
        params = [p for p in self.net.parameters()]
        weight_params = [p for g in self.w_opt.param_groups for p in g["params"]]
        val_iter = None
        if s.bilevel and kind == "search":
            val_iter = iter(self._cycle_val(gen))
        totals = {"ce": 0.0, "r_size": 0.0, "r_thr": 0.0, "correct": 0.0, "n": 0.0}
        for step, (x, y) in enumerate(batches(self.ds.train, self.ds, s.batch_size, gen=gen,
                                              shuffle=True, rank=self.rank, world_size=self.world,
                                              device=self.device)):
            search = kind == "search"
            if val_iter is not None:  # bi-level: architecture step on held-out batches
                vx, vy = next(val_iter)
                loss, *_ = self._loss(phase, vx, vy, st.lam, search)
                self._stop_if_not_finite(loss, step)
                self._step(loss, params, arch=True, weights=False)
            loss, ce, r_size, r_thr, logits = self._loss(phase, x, y, st.lam if search else 0.0,
                                                         search)
            self._stop_if_not_finite(loss, step)
            self._step(loss, params, arch=kind == "search" and val_iter is None, weights=True,
                       weight_params=weight_params)
            totals["ce"] += ce.item() * len(y)
            totals["r_size"] += r_size.item() * len(y)
            totals["r_thr"] += r_thr.item() * len(y)
            totals["correct"] += float((logits.argmax(1) == y).sum())
            totals["n"] += len(y)
            fault_point("search-step")
        keys = list(totals)
        summed = dict(zip(keys, dist_utils.all_reduce_sum([totals[k] for k in keys], self.device)))
        n = max(summed["n"], 1)
        return {"ce": summed["ce"] / n, "r_size": summed["r_size"] / n, "r_thr": summed["r_thr"] / n,
                "train_acc": summed["correct"] / n}

    def _stop_if_not_finite(self, loss: torch.Tensor, step: int) -> None:
        """A NaN or infinite loss stops the search (exit code 2) before it reaches the weights;
        the checkpoint of the last finished epoch stays as it was."""
        value = float(loss.detach())
        if math.isfinite(value):
            return
        epoch = self.state.global_epoch
        kept = (f"the checkpoint of epoch {epoch} is kept" if epoch else
                "no epoch had finished, so no checkpoint was written")
        raise UserError(f"loss became {value} at epoch {epoch + 1}, step {step + 1}; the search stopped "
                        f"and {kept}", where=str(self.out),
                        fix="check the data, or lower --lr-weights")

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

    @torch.no_grad()
    def evaluate(self, phase: Phase) -> float:
        """Held-out accuracy of the committed network (gates open, committed masks)."""
        self.net.eval()
        correct = 0
        for x, y in batches(self.ds.val, self.ds, 256, device=self.device):
            correct += int((self.net(x, upto=phase.upto, head=phase.head).argmax(1) == y).sum())
        return correct / max(1, len(self.ds.val))

    # ------------------------------------------------------------ pruning decisions
    def band(self) -> tuple[float, float]:
        return self.goal * (1 - self.s.tolerance), self.goal * (1 + self.s.tolerance)

    def commit_step(self, phase: Phase) -> int:
        """Commit closed gates; if that would undershoot the target band, commit only the
        largest share of them (nearest to pruning first) that stays at or above it: the pruning
        steps get smaller as the size nears the target, and an overshooting commit is undone
        (its units regrown) before the smaller step is taken."""
        low, high = self.band()
        before = snapshot(self.net)
        died = commit(self.net, cells=phase.commit_cells)
        size = self.sizer(self.net)
        if size < low:
            restore(self.net, before)
            died = self._land(phase.commit_cells, force=None)
            size = self.sizer(self.net)
        if size < low:  # below the band already (e.g. after a stage change): regrow into it
            size = self.regrow_to_band()
        if low <= size <= high:
            self.state.reached = True
        return died

    def _land(self, cells: range, *, force: str | None) -> int:
        """Commit the largest fraction (bisection) whose size stays >= the band's lower edge."""
        low, _ = self.band()
        before = snapshot(self.net)
        lo, hi = 0.0, 1.0
        for _ in range(20):
            mid = (lo + hi) / 2
            restore(self.net, before)
            commit(self.net, cells=cells, fraction=mid, force=force)
            lo, hi = (mid, hi) if self.sizer(self.net) >= low else (lo, mid)
            if hi - lo < 1e-4:
                break
        restore(self.net, before)
        return commit(self.net, cells=cells, fraction=lo, force=force)

    def force_land(self) -> None:
        """Out of epochs above the target: prune whole ops by margin, then weights by magnitude
        (fine steps) until the size is inside the band."""
        cells = range(self.s.layers)
        for level in ("ops", "weights"):
            if self.sizer(self.net) <= self.band()[1]:
                break
            self._land(cells, force=level)
        if self.sizer(self.net) < self.band()[0]:
            self.regrow_to_band()

    def regrow_to_band(self) -> int:
        """Below the band: bring pruned ops back, highest sigmoid(alpha) first (fresh weights,
        beta 0, full masks, old alpha), skipping any that would jump over the band."""
        low, high = self.band()
        size = self.sizer(self.net)
        candidates = []
        for c, cell in enumerate(self.net.cells):
            score = torch.sigmoid(cell.alpha.detach())
            for e, o in (~cell.alive_op).nonzero().tolist():
                candidates.append((-float(score[e, o]), c, e, o))
        for _, c, e, o in sorted(candidates):
            if size >= low:
                break
            saved = snapshot(self.net)
            revive(self.net, c, e, o, [self.w_opt, self.a_opt])
            new = self.sizer(self.net)
            if new > high:
                restore(self.net, saved)
            else:
                size = new
        return size

    def update_lambda(self, died: int) -> None:
        st, n_thr = self.state, self.s.n_thr
        if died >= 4 * n_thr:
            st.delta, st.lam = self.s.lambda_delta, st.lam / 2
        elif died < 2 * n_thr and not (self.s.lambda_cap and st.lam > 0
                                       and st.last_ce < st.lam * st.last_rsize):
            st.delta *= 4
            st.lam += st.delta

    def pruned_ops(self, cells: range) -> set[tuple[int, int, int]]:
        return {(c, e, o) for c in cells for e, o in
                (self.net.cells[c].alive_op == 0).nonzero().tolist()}

    def end_phase(self, phase: Phase) -> None:
        physical_prune(self.net, plan_network(self.net), [self.w_opt, self.a_opt])
        st = self.state
        st.epoch_in_phase, st.start_size, st.frozen_pending, st.stage_pruned = 0, None, False, []
        if st.reached:
            low, high = self.band()
            size = self.sizer(self.net)
            if size < low:  # the rebuilt network must still be inside the band
                self.regrow_to_band()
            elif size > high:
                self.force_land()
            # **Decision:** once the target is reached (in any stage), train the whole committed
            # network's weights for one epoch with masks frozen, so the classifier is trained and
            # the reported held-out accuracy is the exported network's.
            st.phase, st.finishing, st.frozen_pending = len(self.phases) - 1, True, True
        else:
            st.phase += 1
            reset_thresholds(self.net)

    # ------------------------------------------------------------ the loop
    def run(self, *, stop_after: int | None = None) -> bool:
        """Advance until done (True) or until `stop_after` epochs ran in this call (False)."""
        ran = 0
        bar = tqdm(desc="mgas", unit="epoch", initial=self.state.global_epoch,
                   disable=not self.progress or self.rank != 0 or not sys.stderr.isatty())
        while not self.state.done:
            if stop_after is not None and ran >= stop_after:
                return False
            self.one_epoch()
            ran += 1
            bar.update(1)
        bar.close()
        return True

    def one_epoch(self) -> None:
        st = self.state
        phase = self.phases[st.phase]
        kind = self.epoch_kind(phase)
        if st.epoch_in_phase == 0:
            st.stage_pruned = sorted(self.pruned_ops(phase.commit_cells))  # pruned before this stage
        started = time.perf_counter()
        _peak_rss_reset()
        stats = self.train_epoch(phase, kind)
        st.last_ce, st.last_rsize = stats["ce"], stats["r_size"]
        st.epoch_in_phase += 1
        st.global_epoch += 1
        event = self.after_epoch(phase, kind)
        dist_utils.broadcast_state(self.net)
        st.seconds += time.perf_counter() - started
        self.log.append(self.log_row(phase, kind, stats, event, started))
        self.save()

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
            grown = regrow(self.net, pruned_here, ratio=s.regrow_ratio, alpha_momentum=momentum,
                           generator=gen, optimizers=[self.w_opt, self.a_opt])
            if grown and self.sizer(self.net) > self.band()[1] and st.reached:
                st.reached = False  # regrowth took us back above the target
            self.end_phase(phase)
            return f"regrew {len(grown)} ops"
        if kind == "warmup":
            return "warm-up"
        searched = st.epoch_in_phase - phase.warmup
        if searched % s.commit_every:
            return "search"
        if st.start_size is None:
            st.start_size = self.sizer.stage_params(self.net, phase.stage_cells)
        died = commit_died = self.commit_step(phase)
        self.update_lambda(commit_died)
        capped = searched >= phase.max_epochs
        shrunk = (not phase.final and st.start_size and
                  self.sizer.stage_params(self.net, phase.stage_cells) <= s.stage_ratio * st.start_size)
        if st.reached or capped or shrunk:
            if phase.final and not st.reached:
                self.force_land()
                st.reached = True
            if phase.regrow and not st.reached:
                st.frozen_pending = True
            else:
                self.end_phase(phase)
            return f"commit: {died} ops pruned; phase ends"
        return f"commit: {died} ops pruned"

    def log_row(self, phase: Phase, kind: str, stats: dict, event: str, started: float) -> dict:
        ratios = self.remaining_ratios()
        return {"epoch": self.state.global_epoch, "stage": phase.name, "kind": kind, "event": event,
                "lambda": self.state.lam, **{k: round(v, 6) for k, v in stats.items()},
                "size": self.sizer(self.net), "size_unit": self.unit, "target": self.goal,
                **ratios, "val_acc": self.evaluate(phase),
                "seconds": round(time.perf_counter() - started, 3),
                "peak_memory_mb": round(_peak_rss_mb(self.device), 1)}

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

    # ------------------------------------------------------------ results
    def finish(self, dataset_name: str, options: dict) -> dict:
        arch = self.sizer.arch(self.net)
        arch.provenance = make_provenance("mgas", dataset_name, self.target, self.seed)
        model = build_model(arch)
        summary = {
            "method": "mgas", "dataset": dataset_name, "target": self.target,
            "params_dense": count_params(model), "params_nonzero": count_nonzero(model),
            "macs": count_macs(model, self.ds.shape), "val_acc": self.evaluate(self.phases[-1]),
            "search_seconds": round(self.state.seconds, 2),
            "peak_memory_mb": max((r["peak_memory_mb"] for r in self.log), default=0.0),
            "seed": self.seed, "version": __version__, "epochs": self.state.global_epoch,
            "stages": self.s.stages, "ops_kept": sum(len(c["edges"]) for c in arch.genotype["cells"]),
            "cells": len(arch.genotype["cells"]), "world_size": self.world, "options": options}
        size = summary["macs"] if self.unit == "macs" else summary["params_nonzero"]
        summary["target_error"] = round(size / self.goal - 1, 4)
        arch_text = json.dumps(arch.to_json(None)["genotype"], sort_keys=True)
        summary["rank_arch_checksums"] = dist_utils.gather_strings(
            hashlib.sha256(arch_text.encode()).hexdigest()[:16])
        if self.rank == 0:
            save_arch(arch, self.out)
            write_json(self.out / "summary.json", summary)
        return summary


