"""NAG end to end: fit predictors and the evaluator on table rows, train the generator with
REINFORCE, and pick an architecture for any budget.

    model = NAGModel.fit(space, rows, acc, cost, settings)     # predictors + evaluator
    for it in range(settings.iterations): model.train_step(it) # generator (resumable per step)
    model.select(budget)                                       # -> dict with the pick
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ...errors import UserError
from ...io import load_safetensors, read_json, save_safetensors, write_json
from ...spaces.decisions import DecisionSpace
from .models import Evaluator, Generator, MLP, encode, fit_evaluator, fit_regressor

FORMAT = "budgetnas.nag-generator"


@dataclass
class Settings:
    """Everything that shapes a trained generator (stored with it)."""

    iterations: int = 3000          # REINFORCE steps
    samples_per_step: int = 32      # architectures per step (one budget per step)
    lr: float = 3e-4                # Adam
    entropy_coef: float = 0.02
    reward_scale: float = 1.0
    baseline: str = "batch"         # "batch": standardize rewards within the step's batch;
                                    # "moving": per-budget moving average; "none": the original
    mask_inactive: bool = True      # no log-prob / entropy for slots beyond the chosen depth
    hidden: int = 64                # LSTM width
    train_budgets: list[float] | None = None  # discrete training budgets; None = uniform in range
    budget_range: tuple[float, float] | None = None  # None = 5% .. 95% cost quantiles of the rows
    predictor_epochs: int = 200
    predictor_hidden: int = 512
    evaluator_steps: int = 1500
    evaluator_hidden: int = 256
    select_samples: int = 200       # k architectures sampled per budget at selection
    cost_margin: float | None = None  # log-cost safety margin; None = 90% quantile of held-out error
    seed: int = 0


@dataclass
class Normalizer:
    lo: float
    hi: float

    def __call__(self, budget: float) -> float:
        return (math.log(budget) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))


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

    # --- construction ------------------------------------------------------------------------

    @staticmethod
    def fit(space: DecisionSpace, rows: np.ndarray, acc: np.ndarray, cost: np.ndarray,
            settings: Settings, *, exact_cost=None, meta: dict | None = None) -> "NAGModel":
        rows = np.asarray(rows)
        if len(rows) < 10:
            raise UserError(f"only {len(rows)} table rows to learn from", where="table",
                            fix="give at least 10 rows (hundreds for useful predictors)")
        if (cost <= 0).any():
            raise UserError("cost values must be positive", where="--cost")
        s = settings
        lo, hi = s.budget_range or (float(np.quantile(cost, 0.05)), float(np.quantile(cost, 0.95)))
        if s.train_budgets:
            lo, hi = min(lo, min(s.train_budgets)), max(hi, max(s.train_budgets))
        if not 0 < lo < hi:
            raise UserError(f"budget range {lo}..{hi} is empty", where="budgets",
                            fix="give a wider budget range or a table with varied costs")
        norm = Normalizer(lo, hi)
        enc = space.encode_batch(rows)
        acc_model, am, asd = fit_regressor(enc, acc, seed=s.seed, epochs=s.predictor_epochs,
                                           hidden=s.predictor_hidden)
        margin = 0.0 if exact_cost is not None else s.cost_margin
        log_cost = np.log(cost)
        if margin is None:
            margin = _held_out_margin(enc, log_cost, s)
        cost_model, cm, csd = fit_regressor(enc, log_cost, seed=s.seed + 1, epochs=s.predictor_epochs,
                                            hidden=s.predictor_hidden)
        evaluator = fit_evaluator(enc, acc, cost, normalize=norm, seed=s.seed + 2, steps=s.evaluator_steps,
                                  hidden=s.evaluator_hidden, budget_sampler=_budget_sampler(s, norm))
        model = NAGModel._with_generator(space, s, norm, acc_model, (am, asd), cost_model, (cm, csd),
                                         float(margin), evaluator, meta or {})
        model.known = {tuple(int(v) for v in r): (float(a), float(c)) for r, a, c in zip(rows, acc, cost)}
        model.exact_cost = exact_cost
        model.reward_std = _score_spread(evaluator, enc, norm, s)
        return model

    @staticmethod
    def _with_generator(space, s, norm, acc_model, acc_stats, cost_model, cost_stats, margin, evaluator,
                        meta) -> "NAGModel":
        torch.manual_seed(s.seed + 3)
        gen = Generator(space.sizes, s.hidden)
        opt = torch.optim.Adam(gen.parameters(), lr=s.lr)
        return NAGModel(space, s, norm, acc_model, acc_stats, cost_model, cost_stats, margin, evaluator,
                        gen, opt, baseline=[0.0] * 20, meta=meta)

    # --- generator training -----------------------------------------------------------------

    def sample_budget(self, rng: np.random.Generator) -> float:
        return _budget_sampler(self.settings, self.norm)(rng)

    def train_step(self, iteration: int) -> dict:
        """One REINFORCE step; randomness derived from (seed, iteration) so resume is exact."""
        s = self.settings
        rng = np.random.default_rng([s.seed, iteration])
        tgen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        budget = self.sample_budget(rng)
        b = self.norm(budget)
        self.generator.train()
        acts, logp, ent = self.generator(torch.full((s.samples_per_step,), b), generator=tgen)
        rows = acts.numpy()
        active = torch.as_tensor(self.space.active_batch(rows), dtype=torch.float32)
        if s.mask_inactive:
            logp, ent = logp * active, ent * active
        rows = np.where(active.numpy() > 0, rows, 0)
        with torch.no_grad():
            reward = self.evaluator(encode(self.space, rows), torch.tensor(b, dtype=torch.float32))
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

    # --- predictions and selection -----------------------------------------------------------

    def predict(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(accuracy, cost, is_exact_cost): measured values for rows of the table, else predictions;
        the cost is exact where the cost model computes it."""
        rows = np.asarray(rows)
        with torch.no_grad():
            enc = encode(self.space, rows)
            acc = self.acc_model(enc).numpy() * self.acc_stats[1] + self.acc_stats[0]
            cost = np.exp(self.cost_model(enc).numpy() * self.cost_stats[1] + self.cost_stats[0])
        exact = np.zeros(len(rows), dtype=bool)
        for i, r in enumerate(rows):
            hit = self.known.get(tuple(int(v) for v in r))
            if hit is not None:
                acc[i], cost[i], exact[i] = hit[0], hit[1], True
        if self.exact_cost is not None:
            cost = self.exact_cost(rows)
            exact[:] = True
        return acc.astype(np.float64), cost.astype(np.float64), exact

    def sample(self, budget: float, k: int, *, seed: int = 0) -> np.ndarray:
        """k architectures (canonical, distinct) from pi(. | budget)."""
        tgen = torch.Generator().manual_seed(seed)
        self.generator.eval()
        with torch.no_grad():
            acts, _, _ = self.generator(torch.full((k,), self.norm(budget)), generator=tgen)
            greedy, _, _ = self.generator(torch.full((1,), self.norm(budget)), greedy=True)
        rows = np.concatenate([greedy.numpy(), acts.numpy()])
        rows = np.where(self.space.active_batch(rows), rows, 0)
        return np.unique(rows, axis=0)

    def select(self, budget: float, *, k: int | None = None, seed: int = 0,
               extra: np.ndarray | None = None) -> dict:
        """Sample k per budget, keep the best predicted accuracy with predicted cost < budget."""
        k = k or self.settings.select_samples
        rows = self.sample(budget, k, seed=seed)
        if extra is not None and len(extra):
            rows = np.unique(np.concatenate([rows, np.asarray(extra)]), axis=0)
        acc, cost, exact = self.predict(rows)
        limit = np.where(exact, budget, budget * math.exp(-self.margin))
        feasible = cost <= limit
        condition = budget
        for attempt in range(6):
            if feasible.any():
                break
            # Nothing generated fits: ask the generator for a smaller budget (a budget below the
            # trained range is extrapolated), keeping what was sampled so far.
            condition *= 0.85
            more = self.sample(condition, k, seed=seed + 1 + attempt)
            rows = np.unique(np.concatenate([rows, more]), axis=0)
            acc, cost, exact = self.predict(rows)
            limit = np.where(exact, budget, budget * math.exp(-self.margin))
            feasible = cost <= limit
        i = int(np.argmax(np.where(feasible, acc, -np.inf))) if feasible.any() else int(np.argmin(cost))
        return {"budget": float(budget), "row": [int(v) for v in rows[i]],
                "genotype": self.space.to_genotype(rows[i]), "predicted_acc": float(acc[i]),
                "predicted_cost": float(cost[i]), "predicted_feasible": bool(feasible[i]),
                "candidates": int(len(rows))}

    # --- files -----------------------------------------------------------------------------------

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for prefix, module in (("generator", self.generator), ("evaluator", self.evaluator),
                               ("acc_model", self.acc_model), ("cost_model", self.cost_model)):
            out.update({f"{prefix}.{k}": v for k, v in module.state_dict().items()})
        return out

    def metadata(self) -> dict:
        return {"format": FORMAT, "version": 1, "decisions": self.space.describe(),
                "space_name": self.space.name, "settings": asdict(self.settings),
                "budget_range": [self.norm.lo, self.norm.hi], "acc_stats": list(self.acc_stats),
                "cost_stats": list(self.cost_stats), "margin": self.margin, "reward_std": self.reward_std,
                "known": [[list(k), v[0], v[1]] for k, v in self.known.items()], **self.meta}

    def save(self, path: str | Path) -> Path:
        """`<path>.safetensors` (weights) + `<path>.json` (everything else). No pickle."""
        path = Path(path)
        save_safetensors(path.with_suffix(".safetensors"), self.tensors())
        write_json(path.with_suffix(".json"), self.metadata())
        return path.with_suffix(".json")

    @staticmethod
    def load(path: str | Path, space: DecisionSpace | None = None) -> "NAGModel":
        path = Path(path)
        meta = read_json(path.with_suffix(".json"), what="generator file")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise UserError("not a generator written by budgetnas generate", where=str(path),
                            fix="give the generator.json of a generate run")
        tensors = load_safetensors(path.with_suffix(".safetensors"))
        settings = Settings(**{k: (tuple(v) if k == "budget_range" and v else v)
                               for k, v in meta["settings"].items()})
        space = space or DecisionSpace.from_description(meta["decisions"], name=meta.get("space_name", "table"))
        n_in = space.encoding_size
        acc_model, cost_model = MLP(n_in, settings.predictor_hidden), MLP(n_in, settings.predictor_hidden)
        evaluator = Evaluator(n_in, settings.evaluator_hidden)
        model = NAGModel._with_generator(space, settings, Normalizer(*meta["budget_range"]), acc_model,
                                         tuple(meta["acc_stats"]), cost_model, tuple(meta["cost_stats"]),
                                         meta["margin"], evaluator, {})
        try:
            for prefix, module in (("generator", model.generator), ("evaluator", evaluator),
                                   ("acc_model", acc_model), ("cost_model", cost_model)):
                module.load_state_dict({k[len(prefix) + 1:]: v for k, v in tensors.items()
                                        if k.startswith(prefix + ".")})
        except RuntimeError as exc:
            raise UserError(f"weights do not fit the stored settings ({str(exc).splitlines()[0]})",
                            where=str(path.with_suffix(".safetensors"))) from None
        model.known = {tuple(k): (a, c) for k, a, c in meta.get("known", [])}
        model.reward_std = float(meta.get("reward_std", 1.0))
        model.meta = {k: v for k, v in meta.items() if k not in (
            "format", "version", "decisions", "settings", "budget_range", "acc_stats", "cost_stats",
            "margin", "known", "space_name", "reward_std")}
        for m in (acc_model, cost_model, evaluator):
            m.eval()
        return model


def _budget_sampler(s: Settings, norm: Normalizer):
    if s.train_budgets:
        budgets = list(s.train_budgets)
        return lambda rng: float(budgets[int(rng.integers(len(budgets)))])
    lo, hi = math.log(norm.lo), math.log(norm.hi)
    return lambda rng: float(math.exp(rng.uniform(lo, hi)))


def _score_spread(evaluator: Evaluator, enc: np.ndarray, norm: Normalizer, s: Settings) -> float:
    """Mean over budgets of the evaluator's score std on the rows: rewards are divided by it so
    the policy gradient has the same scale whatever the evaluator's output range."""
    sampler, rng = _budget_sampler(s, norm), np.random.default_rng(s.seed + 5)
    x = torch.as_tensor(enc[:2000])
    with torch.no_grad():
        stds = [float(evaluator(x, torch.tensor(norm(sampler(rng)), dtype=torch.float32)).std())
                for _ in range(8)]
    return max(float(np.mean(stds)), 1e-6)


def _held_out_margin(enc: np.ndarray, log_cost: np.ndarray, s: Settings) -> float:
    """90% quantile of the cost predictor's log error on a held-out 10% (0 for few rows)."""
    n = len(enc)
    if n < 50:
        return 0.0
    perm = np.random.default_rng(s.seed).permutation(n)
    hold, fit = perm[: n // 10], perm[n // 10:]
    model, m, sd = fit_regressor(enc[fit], log_cost[fit], seed=s.seed + 7, epochs=s.predictor_epochs,
                                 hidden=s.predictor_hidden)
    with torch.no_grad():
        pred = model(torch.as_tensor(enc[hold])).numpy() * sd + m
    return float(np.quantile(np.abs(pred - log_cost[hold]), 0.9))


def dump_settings(s: Settings) -> str:
    return json.dumps(asdict(s))
