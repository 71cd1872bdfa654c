"""Options of `budgetnas generate` (NAG)."""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from ...config import SearchOptions
from ...runs.registry import PlotSpec, ReportSpec, register_method

REPORT = ReportSpec(kind="generate", plots=(
    PlotSpec("picks", "NAG: each budget against the cost and accuracy of its pick",
             "picks against budgets omitted: no picks (picks.json or summary.json 'picks')"),
    PlotSpec("over_time", "generator training over time",
             "generator training omitted: no log.jsonl (or no numeric rows in it)",
             {"title": "Generator training"})))


def budget_text(value) -> str:
    """A budget as given: a positive number, or `qNN` (the NN-th percentile of the space's costs)."""
    if isinstance(value, bool):
        raise ValueError("a budget is a number or a quantile such as q50")
    text = str(value).strip().lower()
    if re.fullmatch(r"q(\d{1,2}(\.\d+)?|100)", text):
        return text
    try:
        number = float(text)
    except ValueError:
        raise ValueError("a budget is a positive number or a quantile qNN of the space's costs (q10, q50, "
                         "q90)") from None
    if not (math.isfinite(number) and number > 0):
        raise ValueError("budgets must be positive numbers")
    return repr(number)


Budget = Annotated[str, BeforeValidator(budget_text)]


@register_method("nag", method="budgetnas.methods.nag.method:NAGMethod", command=("generate",), report=REPORT,
                 help="NAG: train a budget-conditioned generator on a table of measured "
                      "architectures or on a trained supernet, answer budgets")
class NAGOptions(SearchOptions):
    """Options of `budgetnas generate`."""

    table: Path | None = Field(None, description="CSV table: an arch column plus numeric metric columns")
    supernet: Path | None = Field(None, description="run directory of budgetnas search supernet: accuracy = "
                                  "held-out accuracy of a subnet with inherited weights, each pick written "
                                  "with its weights (instead of --table)")
    accuracy: str | None = Field(None, description="accuracy column of the table")
    cost: str | None = Field(None, description="cost column (latency_ms_*, macs, params, ...); with "
                             "--supernet: params, macs or latency (a per-layer table measured on this device)")
    space: str | None = Field(None, description="read the arch column as choices of this space (mbconv)")
    choices: list[int] | None = Field(None, description="choices per position (default: inferred)")
    reveal: int | None = Field(None, ge=10, description="learn from this many random rows (no adaptive queries)")
    query_budget: int | None = Field(None, ge=10, description="reveal at most this many rows in total: "
                                     "random ones first, then the generator's best candidates (adaptive). "
                                     "Default: none, every row is revealed, and a table covering the whole "
                                     "space is answered by lookup. With --supernet: subnet evaluations in total "
                                     "(default 400)")
    initial_rows: int | None = Field(None, ge=10, description="with --query-budget: rows revealed at random "
                                     "first; none = 0.4 x the query budget")
    query_rounds: int = Field(3, ge=1, description="with --query-budget: query rounds after the initial rows")
    query_grid: int = Field(20, ge=1, description="with --query-budget: budgets per query round")
    query_samples: int = Field(300, ge=1, description="with --query-budget: architectures sampled per budget "
                               "when choosing queries")
    budget: float | None = Field(None, gt=0, description="answer one budget (cost units)")
    budgets: list[Budget] | None = Field(None, description="answer these budgets: numbers, or quantiles "
                                         "of the space's costs (q10,q50,q90)")
    train_budgets: list[float] | None = Field(None, description="train on these budgets (default: uniform in range)")
    generator: Path | None = Field(None, description="use this trained generator.json instead of training")
    iterations: int = Field(3000, ge=0, description="REINFORCE iterations")
    samples_per_step: int = Field(32, ge=2, description="architectures per iteration")
    entropy_coef: float = Field(0.05, ge=0, description="entropy bonus")
    baseline: Literal["moving", "batch", "none"] = Field(
        "moving", description="reward baseline: per-budget moving average, batch-standardized, or none")
    mask_inactive: bool = Field(True, description="no log-prob for slots beyond the chosen depth")
    select_samples: int | None = Field(None, ge=1, description="architectures sampled per budget at selection "
                                       "(default 200; 1000 when verifying)")
    select_temperature: float | None = Field(None, gt=0, le=10, description="sampling temperature at selection "
                                             "(default 1; 2 when verifying: more diverse candidates)")
    verify: int | None = Field(None, ge=0, le=1000, description="at selection, measure this many of the "
                               "best generated candidates per budget and keep the best measured one "
                               "(counted in --query-budget; default 0 with --table, 10 with --supernet)")
    include_table: bool = Field(True, description="also consider the revealed rows (measured) at selection")
    cost_margin: float | None = Field(None, ge=0, description="log-cost safety margin (default: from held-out error)")
    acc_discount: float | None = Field(None, ge=0, description="subtracted from predicted (unmeasured) accuracy "
                                       "at selection (default: from held-out error)")
    predictor_epochs: int = Field(200, ge=1, description="epochs of the accuracy and cost predictors")
    evaluator_steps: int = Field(1500, ge=1, description="steps of the Pareto-aware evaluator")
    checkpoint_every: int = Field(500, ge=1, description="iterations between checkpoints")
