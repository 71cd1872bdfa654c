"""Settings of a NAG generator (stored with it) and the budget normalisation it sees."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass


@dataclass
class Settings:
    """Everything that shapes a trained generator (stored with it)."""

    iterations: int = 3000          # REINFORCE steps
    samples_per_step: int = 32      # architectures per step (one budget per step)
    lr: float = 3e-4                # Adam
    entropy_coef: float = 0.05
    reward_scale: float = 1.0
    baseline: str = "moving"        # "moving": per-budget moving average (keeps the policy diverse);
                                    # "batch": standardize rewards within the step's batch;
                                    # "none": the original
    mask_inactive: bool = True      # no log-prob / entropy for slots beyond the chosen depth
    hidden: int = 64                # LSTM width
    train_budgets: list[float] | None = None  # discrete training budgets; None = uniform in range
    budget_range: tuple[float, float] | None = None  # None = 5% .. 95% cost quantiles of the rows
    predictor_epochs: int = 200
    predictor_hidden: int = 512
    evaluator_steps: int = 1500
    evaluator_hidden: int = 256
    select_samples: int = 200       # k architectures sampled per budget at selection
    select_temperature: float = 1.0  # softmax temperature of those samples (> 1: more diverse)
    cost_margin: float | None = None  # log-cost safety margin; None = 90% quantile of held-out error
    acc_discount: float | None = None  # subtracted from predicted (unmeasured) accuracy at selection;
                                       # None = 90% quantile of the predictor's held-out error
    query_budget: int | None = None  # rows revealed in total (adaptive); None = learn from the given rows
    query_rounds: int = 3           # query rounds after the initial rows
    query_grid: int = 20            # budgets per round (stratified over the range)
    query_samples: int = 300        # architectures sampled per budget when proposing queries
    seed: int = 0

    def phase_ends(self) -> list[int]:
        """Iteration at which each training phase ends (a query round follows every one but the last)."""
        phases = 1 + (self.query_rounds if self.query_budget else 0)
        return [round(self.iterations * (p + 1) / phases) for p in range(phases)]


@dataclass
class Normalizer:
    lo: float
    hi: float

    def __call__(self, budget: float) -> float:
        return (math.log(budget) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))




QUANTILE = re.compile(r"q(\d+(?:\.\d+)?)")


def resolve_budgets(specs: list, costs) -> list[float]:
    """Budgets from numbers and quantiles (`q10` = 10th percentile of `costs`, the costs of a
    sample of the space or of a table's rows)."""
    import numpy as np

    out = []
    for spec in specs:
        match = QUANTILE.fullmatch(str(spec).strip().lower())
        out.append(float(np.percentile(costs, float(match.group(1)))) if match else float(spec))
    return out
