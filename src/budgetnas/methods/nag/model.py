"""The NAG model: predictors and the Pareto-aware evaluator fitted on revealed rows, the generator
trained with REINFORCE, adaptive queries, and the pick for any budget (docs/nag.md).

    model = NAGModel.fit(space, rows, acc, cost, settings)     # predictors + evaluator
    for it in range(settings.iterations): model.train_step(it) # generator (resumable per step)
    model.select(budget)                                       # -> dict with the pick

With a query budget (`Settings.query_budget`) the rows are revealed adaptively instead of all at
random: `fit` sees the first `initial_rows` (random), then `train` alternates generator training
with query rounds. Each round asks the generator for architectures across the budget range, sends
the best predicted ones not yet revealed to the oracle (a table lookup: one query = one revealed
row) and refits predictors and evaluator on everything revealed so far; the generator keeps
training from where it was. The number of revealed rows never exceeds the query budget.

Selection ranks a revealed architecture by its measured accuracy and an unrevealed one by the
predicted accuracy minus the predictor's held-out error (`acc_discount`), and requires its
predicted cost to be within the budget by the held-out cost margin, so an architecture whose
accuracy is merely over-predicted rarely beats a measured one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ...errors import UserError
from ...spaces.decisions import DecisionSpace
from .networks import MLP, Evaluator, Generator, encode, fit_evaluator, fit_regressor
from .settings import Normalizer, Settings


@dataclass
class NAGModel:
    space: DecisionSpace
    settings: Settings
    norm: Normalizer
    acc_model: MLP
    acc_stats: tuple[float, float]
    cost_model: MLP
    cost_stats: tuple[float, float]
    margin: float
    evaluator: Evaluator
    generator: Generator
    optimizer: torch.optim.Optimizer
    reward_std: float = 1.0                          # evaluator score spread, sets the reward scale
    baseline: list[float] = field(default_factory=list)  # per budget bin: 10 means, then 10 seen-flags
    known: dict = field(default_factory=dict)        # canonical row -> (acc, cost) measured
    exact_cost: Callable[[np.ndarray], np.ndarray] | None = None
    meta: dict = field(default_factory=dict)
    log: list[dict] = field(default_factory=list)
    acc_discount: float = 0.0                        # accuracy units, for unmeasured architectures
    device: str = "cpu"

    # --- construction ------------------------------------------------------------------------

    @staticmethod
    def fit(space: DecisionSpace, rows: np.ndarray, acc: np.ndarray, cost: np.ndarray,
            settings: Settings, *, exact_cost=None, meta: dict | None = None,
            device: str | torch.device = "cpu") -> "NAGModel":
        rows = np.asarray(rows)
        if len(rows) < 10:
            raise UserError(f"only {len(rows)} table rows to learn from", where="table",
                            fix="give at least 10 rows (hundreds for useful predictors)")
        if (np.asarray(cost) <= 0).any():
            raise UserError("cost values must be positive", where="--cost")
        s = settings
        lo, hi = s.budget_range or (float(np.quantile(cost, 0.05)), float(np.quantile(cost, 0.95)))
        if s.train_budgets:
            lo, hi = min(lo, min(s.train_budgets)), max(hi, max(s.train_budgets))
        if not 0 < lo < hi:
            raise UserError(f"budget range {lo}..{hi} is empty", where="budgets",
                            fix="give a wider budget range or a table with varied costs")
        device = str(device)
        dummy = MLP(space.encoding_size, 1)
        model = NAGModel._with_generator(space, s, Normalizer(lo, hi), dummy, (0.0, 1.0), dummy, (0.0, 1.0),
                                         0.0, Evaluator(space.encoding_size, 1), meta or {}, device=device)
        model.exact_cost = exact_cost
        model.known = {tuple(int(v) for v in r): (float(a), float(c)) for r, a, c in zip(rows, acc, cost)}
        model.refit()
        return model

    def refit(self) -> None:
        """(Re)fit predictors, held-out margins and the evaluator on every revealed row; the
        generator and its optimizer are kept."""
        s, dev = self.settings, self.device
        rows = np.array(list(self.known), dtype=np.int64)
        acc = np.array([v[0] for v in self.known.values()])
        cost = np.array([v[1] for v in self.known.values()])
        enc = self.space.encode_batch(rows)
        log_cost = np.log(cost)
        margin, discount = _held_out_errors(enc, acc, log_cost, s, dev)
        if self.exact_cost is not None:
            margin = 0.0
        elif s.cost_margin is not None:
            margin = s.cost_margin
        self.margin = float(margin)
        self.acc_discount = float(discount if s.acc_discount is None else s.acc_discount)
        self.acc_model, am, asd = fit_regressor(enc, acc, seed=s.seed, epochs=s.predictor_epochs,
                                                hidden=s.predictor_hidden, device=dev)
        self.acc_stats = (am, asd)
        self.cost_model, cm, csd = fit_regressor(enc, log_cost, seed=s.seed + 1, epochs=s.predictor_epochs,
                                                 hidden=s.predictor_hidden, device=dev)
        self.cost_stats = (cm, csd)
        self.evaluator = fit_evaluator(enc, acc, cost, normalize=self.norm, seed=s.seed + 2,
                                       steps=s.evaluator_steps, hidden=s.evaluator_hidden,
                                       budget_sampler=_budget_sampler(s, self.norm), device=dev)
        self.reward_std = _score_spread(self.evaluator, enc, self.norm, s, dev)
        self.baseline = [0.0] * 20  # the reward scale changed: start the moving averages afresh

    @staticmethod
    def _with_generator(space, s, norm, acc_model, acc_stats, cost_model, cost_stats, margin, evaluator,
                        meta, *, device: str = "cpu") -> "NAGModel":
        torch.manual_seed(s.seed + 3)
        gen = Generator(space.sizes, s.hidden).to(device)
        opt = torch.optim.Adam(gen.parameters(), lr=s.lr)
        return NAGModel(space, s, norm, acc_model, acc_stats, cost_model, cost_stats, margin, evaluator,
                        gen, opt, baseline=[0.0] * 20, meta=meta, device=str(device))

    # --- generator training -----------------------------------------------------------------

    def sample_budget(self, rng: np.random.Generator) -> float:
        return _budget_sampler(self.settings, self.norm)(rng)

    def _torch_generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(int(seed))

    def train_step(self, iteration: int) -> dict:
        """One REINFORCE step; randomness derived from (seed, iteration) so resume is exact."""
        s, dev = self.settings, self.device
        rng = np.random.default_rng([s.seed, iteration])
        tgen = self._torch_generator(int(rng.integers(2**62)))
        budget = self.sample_budget(rng)
        b = self.norm(budget)
        self.generator.train()
        acts, logp, ent = self.generator(torch.full((s.samples_per_step,), b, device=dev), generator=tgen)
        rows = acts.cpu().numpy()
        active = torch.as_tensor(self.space.active_batch(rows), dtype=torch.float32, device=dev)
        if s.mask_inactive:
            logp, ent = logp * active, ent * active
        rows = np.where(active.cpu().numpy() > 0, rows, 0)
        with torch.no_grad():
            reward = self.evaluator(encode(self.space, rows, dev), torch.tensor(b, dtype=torch.float32, device=dev))
        reward = reward / self.reward_std
        advantage = reward
        bin_ = min(9, max(0, int(b * 10)))
        if s.baseline == "batch":
            # Standardized within the batch: the policy keeps a signal as its samples get similar.
            advantage = (reward - reward.mean()) / (reward.std() + 1e-6)
        elif s.baseline == "moving":
            seen = self.baseline[10 + bin_]
            base = self.baseline[bin_] if seen else float(reward.mean())
            advantage = reward - base
            self.baseline[bin_] = 0.9 * base + 0.1 * float(reward.mean())
            self.baseline[10 + bin_] = 1.0
        loss = -(logp.sum(1) * advantage).mean() * s.reward_scale - s.entropy_coef * ent.sum(1).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"iteration": iteration + 1, "budget": budget, "reward": float(reward.mean()),
                "loss": float(loss.detach()), "entropy": float(ent.detach().sum(1).mean())}

    # --- adaptive queries --------------------------------------------------------------------

    def propose(self, n: int, *, seed: int = 0) -> np.ndarray:
        """Up to n architectures, not yet revealed, to query next: for budgets stratified over the
        training range, the generator's samples ranked by predicted accuracy among those predicted
        within the budget (then the cheapest of the rest), taken round-robin over the budgets. When
        the policy is too narrow to fill the quota, it is sampled again at a higher temperature."""
        s = self.settings
        if n <= 0:
            return np.zeros((0, len(self.space)), dtype=np.int64)
        rng = np.random.default_rng([s.seed, 7919, seed])
        lo, hi = math.log(self.norm.lo), math.log(self.norm.hi)
        g = max(1, s.query_grid)
        chosen: dict[tuple[int, ...], None] = {}
        for temperature in (1.0, 1.5, 2.5, 4.0):
            grid = np.exp(lo + (hi - lo) * (np.arange(g) + rng.uniform(size=g)) / g)
            queues = []
            for budget in grid:
                rows = self.sample(float(budget), s.query_samples, seed=int(rng.integers(2**31)),
                                   temperature=temperature)
                acc, cost, known, _ = self.predict(rows)
                fresh = ~known & np.array([tuple(int(v) for v in r) not in chosen for r in rows], dtype=bool)
                fits = cost <= budget
                order = [i for i in np.argsort(-acc, kind="stable") if fresh[i] and fits[i]] + \
                    [i for i in np.argsort(cost, kind="stable") if fresh[i] and not fits[i]]
                queues.append([tuple(int(v) for v in rows[i]) for i in order])
            depth = 0
            while len(chosen) < n and any(depth < len(q) for q in queues):
                for q in queues:
                    if depth < len(q) and len(chosen) < n:
                        chosen.setdefault(q[depth], None)
                depth += 1
            if len(chosen) >= n:
                break
        return np.array(list(chosen), dtype=np.int64).reshape(-1, len(self.space))

    def reveal(self, rows: np.ndarray, acc: np.ndarray, cost: np.ndarray) -> None:
        for r, a, c in zip(rows, acc, cost):
            self.known[tuple(int(v) for v in r)] = (float(a), float(c))

    # --- predictions and selection -----------------------------------------------------------

    def predict(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(accuracy, cost, measured, cost_exact): measured values for revealed rows, else
        predictions; cost_exact where the cost is measured or computed by the cost model."""
        rows = np.asarray(rows)
        with torch.no_grad():
            enc = encode(self.space, rows, self.device)
            acc = self.acc_model(enc).cpu().numpy() * self.acc_stats[1] + self.acc_stats[0]
            cost = np.exp(self.cost_model(enc).cpu().numpy() * self.cost_stats[1] + self.cost_stats[0])
        acc, cost = acc.astype(np.float64), cost.astype(np.float64)
        measured = np.zeros(len(rows), dtype=bool)
        for i, r in enumerate(rows):
            hit = self.known.get(tuple(int(v) for v in r))
            if hit is not None:
                acc[i], cost[i], measured[i] = hit[0], hit[1], True
        cost_exact = measured.copy()
        if self.exact_cost is not None and len(rows):
            cost = np.asarray(self.exact_cost(rows), dtype=np.float64)
            cost_exact[:] = True
        return acc, cost, measured, cost_exact

    def sample(self, budget: float, k: int, *, seed: int = 0, temperature: float = 1.0) -> np.ndarray:
        """k architectures (canonical, distinct) from pi(. | budget) (plus the greedy one)."""
        tgen = self._torch_generator(seed)
        self.generator.eval()
        b = self.norm(budget)
        with torch.no_grad():
            acts, _, _ = self.generator(torch.full((k,), b, device=self.device), generator=tgen,
                                        temperature=temperature)
            greedy, _, _ = self.generator(torch.full((1,), b, device=self.device), greedy=True)
        rows = np.concatenate([greedy.cpu().numpy(), acts.cpu().numpy()])
        rows = np.where(self.space.active_batch(rows), rows, 0)
        return np.unique(rows, axis=0)

    def judge(self, rows: np.ndarray, budget: float):
        """(accuracy, cost, measured, score, feasible): the score is the measured accuracy, or the
        predicted one minus acc_discount; feasible = cost within the budget (measured or exact,
        or predicted with the held-out margin)."""
        acc, cost, measured, cost_exact = self.predict(rows)
        score = np.where(measured, acc, acc - self.acc_discount)
        limit = np.where(cost_exact, budget, budget * math.exp(-self.margin))
        return acc, cost, measured, score, cost <= limit

    def pool(self, budget: float, *, k: int | None = None, seed: int = 0,
             extra: np.ndarray | None = None, include_known: bool = False) -> np.ndarray:
        """The candidates for a budget: k samples at the selection temperature (plus `extra` rows
        and, with include_known, every revealed row); when none fits, samples for ever smaller
        budgets are added."""
        k = k or self.settings.select_samples
        rows = self.sample(budget, k, seed=seed, temperature=self.settings.select_temperature)
        pools = [rows]
        if extra is not None and len(extra):
            pools.append(np.asarray(extra, dtype=np.int64))
        if include_known and self.known:
            pools.append(np.array(list(self.known), dtype=np.int64))
        rows = np.unique(np.concatenate(pools), axis=0) if len(pools) > 1 else rows
        condition = budget
        for attempt in range(6):
            if self.judge(rows, budget)[-1].any():
                break
            # Nothing fits: ask the generator for a smaller budget (a budget below the trained
            # range is extrapolated), keeping what was sampled so far.
            condition *= 0.85
            more = self.sample(condition, k, seed=seed + 1 + attempt, temperature=self.settings.select_temperature)
            rows = np.unique(np.concatenate([rows, more]), axis=0)
        return rows

    def pick(self, rows: np.ndarray, budget: float, *, measured_first: bool = False) -> dict:
        """The best-scored feasible row (with measured_first, the best measured feasible one when
        there is one); the cheapest when none fits."""
        acc, cost, measured, score, feasible = self.judge(rows, budget)
        ok = feasible & measured if measured_first and (feasible & measured).any() else feasible
        i = int(np.argmax(np.where(ok, score, -np.inf))) if ok.any() else int(np.argmin(cost))
        return {"budget": float(budget), "row": [int(v) for v in rows[i]],
                "genotype": self.space.to_genotype(rows[i]), "predicted_acc": float(acc[i]),
                "predicted_cost": float(cost[i]), "predicted_feasible": bool(feasible[i]),
                "measured": bool(measured[i]), "candidates": int(len(rows))}

    def select(self, budget: float, *, k: int | None = None, seed: int = 0,
               extra: np.ndarray | None = None, include_known: bool = False) -> dict:
        """Sample k per budget (plus `extra` rows and, with include_known, every revealed row);
        keep the best accuracy (measured, or predicted minus acc_discount) with cost within the
        budget (measured or exact, or predicted with the held-out margin)."""
        return self.pick(self.pool(budget, k=k, seed=seed, extra=extra, include_known=include_known), budget)


def _budget_sampler(s: Settings, norm: Normalizer):
    if s.train_budgets:
        budgets = list(s.train_budgets)
        return lambda rng: float(budgets[int(rng.integers(len(budgets)))])
    lo, hi = math.log(norm.lo), math.log(norm.hi)
    return lambda rng: float(math.exp(rng.uniform(lo, hi)))


def _score_spread(evaluator: Evaluator, enc: np.ndarray, norm: Normalizer, s: Settings,
                  device: str = "cpu") -> float:
    """Mean over budgets of the evaluator's score std on the rows: rewards are divided by it so
    the policy gradient has the same scale whatever the evaluator's output range."""
    sampler, rng = _budget_sampler(s, norm), np.random.default_rng(s.seed + 5)
    x = torch.as_tensor(enc[:2000], device=device)
    with torch.no_grad():
        stds = [float(evaluator(x, torch.tensor(norm(sampler(rng)), dtype=torch.float32, device=device)).std())
                for _ in range(8)]
    return max(float(np.mean(stds)), 1e-6)


def _held_out_errors(enc: np.ndarray, acc: np.ndarray, log_cost: np.ndarray, s: Settings,
                     device: str = "cpu") -> tuple[float, float]:
    """90% quantiles of the cost predictor's log error and of the accuracy predictor's error (on
    the upper half by predicted accuracy) on a held-out 10% of the rows (0 for few rows)."""
    n = len(enc)
    if n < 50:
        return 0.0, 0.0
    perm = np.random.default_rng(s.seed).permutation(n)
    hold, fit = perm[: n // 10], perm[n // 10:]
    errors = []
    for target, seed in ((log_cost, s.seed + 7), (acc, s.seed + 8)):
        model, m, sd = fit_regressor(enc[fit], target[fit], seed=seed, epochs=s.predictor_epochs,
                                     hidden=s.predictor_hidden, device=device)
        with torch.no_grad():
            pred = model(torch.as_tensor(enc[hold], device=device)).cpu().numpy() * sd + m
        err = np.abs(pred - target[hold])
        if target is acc:  # what matters is the error where an architecture could be picked
            err = err[pred >= np.median(pred)]
        errors.append(float(np.quantile(err, 0.9)))
    return errors[0], errors[1]
