"""`budgetnas generate --supernet RUN_DIR`: NAG on the user's own data and device.

    budgetnas generate --supernet runs/supernet --cost latency --budgets q10,q50,q90

The supernet (`search supernet`) answers accuracy queries: one query = one subnet evaluated on
the held-out split with inherited weights (`supernet_source.py`). The query budget
(`--query-budget`, default 400) covers every evaluation: random subnets first, then the adaptive
rounds proposed by the generator, then `--verify` evaluations per budget at selection (reserved
before training), so the count never exceeds it. Costs are exact (params, MACs) or from a
latency table measured on this device, so every candidate's cost is known without a query.

Each pick is written with its weights, `picks/<k>/arch.json` + `model.safetensors` (BatchNorm
recalibrated), and listed in picks.json with its budget, cost, held-out and test accuracy;
`budgetnas train picks/<k>/arch.json --init-from picks/<k> --epochs 0` evaluates it again,
more epochs fine-tune it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...arch import Arch, make_provenance, save_arch
from ...data import load_dataset_for
from ...errors import UserError
from ...io import save_safetensors, write_json
from ...spaces.decisions import DecisionSpace
from ...train.loop import evaluate
from .model import NAGModel
from .settings import Settings, resolve_budgets
from .supernet_source import COSTS, SupernetSource
from .verify import verified_select

DEFAULT_QUERY_BUDGET = 400
DEFAULT_VERIFY = 10
DEFAULT_BUDGETS = ["q10", "q30", "q50", "q70", "q90"]


@dataclass
class SupernetPlan:
    source: SupernetSource
    budgets: list[float]
    total: int | None      # evaluations allowed in all (None with --reveal: initial + verification)
    initial: int           # random subnets evaluated before the generator is trained
    verify: int            # evaluations per budget at selection
    budget_range: tuple[float, float]


def plan(opts, ctx) -> SupernetPlan:
    """Check the options against the supernet and the data; refuse what cannot be answered."""
    if opts.table is not None:
        raise UserError("--table and --supernet exclude each other", where="--supernet",
                        fix="give one source of accuracies")
    for name in ("accuracy", "space", "choices"):
        if getattr(opts, name) is not None:
            raise UserError(f"--{name} reads a table; a supernet has its own space and accuracy",
                            where=f"--{name}", fix=f"leave --{name} out with --supernet")
    if not opts.cost:
        raise UserError("no cost given", where="--cost", fix="give --cost params, macs or latency")
    source = SupernetSource(opts.supernet, load_dataset_for(opts), opts.cost, device=ctx.device,
                            threads=opts.threads or 1)
    costs = source.space_costs()
    specs = list(opts.budgets or []) + ([opts.budget] if opts.budget else [])
    budgets = resolve_budgets(specs or DEFAULT_BUDGETS, costs)
    _, smallest = source.smallest()
    unit = COSTS[opts.cost]
    for b in budgets:
        if b < smallest:
            raise UserError(f"budget {b:.6g} is below the smallest network of the space ({smallest:.6g} {unit})",
                            where="--budgets", fix=f"give budgets of at least {smallest:.6g} {unit} "
                            "(or quantiles such as q10)")
    verify = DEFAULT_VERIFY if opts.verify is None else opts.verify
    total, initial = _counts(opts, len(budgets), verify)
    lo, hi = np.percentile(costs, [5, 95])
    return SupernetPlan(source, budgets, total, initial, verify,
                        (float(min(lo, min(budgets))), float(max(hi, max(budgets)))))


def _counts(opts, n_budgets: int, verify: int) -> tuple[int | None, int]:
    """(evaluations in all, random ones first); the verification share is reserved."""
    if opts.reveal is not None:
        return None, opts.reveal
    total = opts.query_budget or DEFAULT_QUERY_BUDGET
    training = total - max(1, verify) * n_budgets
    initial = opts.initial_rows if opts.initial_rows is not None else max(10, round(0.4 * training))
    if training < 10 or initial > training:
        raise UserError(f"a query budget of {total} leaves {training} evaluations for training after "
                        f"{max(1, verify)} per budget for {n_budgets} budgets", where="--query-budget",
                        fix=f"give --query-budget {max(1, verify) * n_budgets + max(10, initial)} or more, "
                        "or a smaller --verify / --initial-rows")
    return total, initial


def settings_for(p: SupernetPlan, base: Settings) -> Settings:
    """The table settings with the query budget left for training and the budget range of the
    space (so budgets near its ends are trained on)."""
    training = None if p.total is None else p.total - max(1, p.verify) * len(p.budgets)
    base.query_budget = training if training and training > p.initial else None
    base.budget_range = p.budget_range
    return base


def distinct_rows(space: DecisionSpace, n: int, seed: int) -> np.ndarray:
    rng, seen = np.random.default_rng([seed, 4099]), {}
    for _ in range(100):
        for row in space.sample_batch(rng, n):
            seen.setdefault(tuple(int(v) for v in row), None)
            if len(seen) == n:
                return np.array(list(seen), dtype=np.int64)
    raise UserError(f"the space has fewer than {n} distinct architectures", where="--initial-rows")


def fit(p: SupernetPlan, settings: Settings, opts, device: str) -> NAGModel:
    """Evaluate the random subnets and fit predictors and evaluator on them."""
    rows = distinct_rows(p.source.space, p.initial, opts.seed)
    _, acc, cost = p.source.oracle(rows)
    meta = {"supernet": str(opts.supernet), "cost": opts.cost, "space": "mbconv", "config": p.source.config}
    return NAGModel.fit(p.source.space, rows, acc, cost, settings, exact_cost=p.source.cost, meta=meta,
                        device=device)


def answer(p: SupernetPlan, model: NAGModel, opts) -> list[dict]:
    """One measured pick per budget (verified among the generator's candidates), in the order of
    the budgets given.

    **Decision:** budgets are answered from the smallest up, so with revealed rows competing
    (`--include-table`, the default) a larger budget sees every subnet measured for a smaller one
    and its pick's held-out accuracy is never lower."""
    picks: list[dict] = [{}] * len(p.budgets)
    for k in sorted(range(len(p.budgets)), key=lambda i: p.budgets[i]):
        budget = p.budgets[k]
        pick = verified_select(model, budget, p.source.oracle, count=p.verify, seed=opts.seed + k,
                               include_known=opts.include_table, require_measured=True)
        row = tuple(pick["row"])
        pick["cost"] = float(p.source.cost(np.array([row]))[0])
        pick["val_acc"] = float(model.known[row][0])
        pick["feasible"] = pick["cost"] <= budget
        pick["answered_by"] = "generator"
        picks[k] = pick
    if p.total is not None and not opts.generator and len(model.known) > p.total:  # pragma: no cover
        raise AssertionError("query budget exceeded")
    return picks


def write_picks(out, p: SupernetPlan, picks: list[dict], model: NAGModel, opts, device: str) -> dict:
    """picks/<k>/ (arch.json + model.safetensors) and picks.json; returns the summary's fields."""
    ds, unit = p.source.dataset, COSTS[opts.cost]
    n_val = len(ds.val)
    for k, pick in enumerate(picks):
        directory = out / "picks" / str(k)
        net = p.source.subnet(pick["row"])
        arch = Arch("mbconv", p.source.config, pick["genotype"],
                    provenance=make_provenance("nag", opts.dataset, {opts.cost: pick["budget"]}, opts.seed))
        save_safetensors(directory / "model.safetensors", net.state_dict())
        save_arch(arch, directory)
        pick["test_acc"] = evaluate(net, ds, ds.test, p.source.device)  # reporting only, never selection
        # binomial standard error of val_acc: differences between picks smaller than about twice
        # this are within the noise of the held-out split
        pick["val_acc_se"] = math.sqrt(pick["val_acc"] * (1 - pick["val_acc"]) / n_val)
        pick["arch"] = f"picks/{k}/arch.json"
        pick["weights"] = f"picks/{k}/model.safetensors"
    write_json(out / "picks.json", {"metric": opts.cost, "unit": unit, "answered_by": "generator",
                                    "source": str(opts.supernet), "accuracy": "held-out accuracy of the subnet "
                                    "with inherited weights (val_acc, its binomial standard error "
                                    "val_acc_se); test_acc for reporting", "val_images": n_val,
                                    "evaluations": len(model.known), "picks": picks})
    print(f"{'budget':>12} {'cost':>12} {'ok':>3} {'held-out':>16} {'test':>7}  weights  "
          f"(held-out: {n_val} images, +- one standard error)")
    for pick in picks:
        print(f"{pick['budget']:>12.6g} {pick['cost']:>12.6g} {'yes' if pick['feasible'] else 'NO':>3} "
              f"{pick['val_acc']:>7.4f} +- {pick['val_acc_se']:.4f} {pick['test_acc']:>7.4f}  {out / pick['weights']}")
    last = max(picks, key=lambda x: x["budget"])
    return {"target": {opts.cost: picks[0]["budget"]}, "unit": unit, "budgets": [x["budget"] for x in picks],
            "picks": picks, "supernet": str(opts.supernet), "answered_by": "generator",
            "evaluations": len(model.known), "query_budget": p.total, "device": device,
            "val_acc": last["val_acc"], "test_acc": last["test_acc"]}
