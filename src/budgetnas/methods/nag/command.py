"""`budgetnas generate`: train a budget-conditioned generator on a table, answer budgets.

    budgetnas generate --table nb201_cifar10.csv --accuracy cifar10_test_acc \\
        --cost latency_ms_fpga --reveal 1000 --budgets 3,4,5
    budgetnas generate --table nb201_cifar10.csv --accuracy cifar10_test_acc \\
        --cost latency_ms_fpga --query-budget 1000 --budgets 3,4,5      # adaptive queries
    budgetnas generate --generator runs/generate-X/generator.json --table T.csv ... --budget 4.2

With --query-budget N the table plays the role of an expensive oracle: the run reveals at most N
rows in total, --initial-rows of them at random and the rest in --query-rounds rounds, each time
the generator's best predicted architectures across the budget range that are not yet revealed.

Run directory: generator.safetensors + generator.json (the trained generator; no pickle),
picks.json (one pick per budget with predicted and true metrics), true_front.json (when the table
is complete enough to know it), summary.json, log.jsonl, checkpoint.pt (--resume) and, for
buildable spaces, arch.json (first budget) and arch-<k>.json (every budget).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from ... import __version__
from ...config import SearchOptions, add_model_arguments, resolve_options
from ...errors import UserError
from ...io import fault_point, json_default, load_checkpoint, save_checkpoint, write_json, write_jsonl
from ...report import report_at_end, write_run_info
from ...run import prepare_run_dir, seed_everything, set_threads
from ...run import resolve_device
from .nag import NAGModel, Settings, table_oracle, train
from .table import Table, load_table, nb201_costs

DATASET_SHAPES = {"digits": (1, 8, 10), "synthetic": (3, 8, 4), "cifar10": (3, 32, 10),
                  "cifar100": (3, 32, 100), "imagefolder": (3, 32, 10)}


class Options(SearchOptions):
    """Options of `budgetnas generate`."""

    table: Path | None = Field(None, description="CSV table: an arch column plus numeric metric columns")
    accuracy: str | None = Field(None, description="accuracy column of the table")
    cost: str | None = Field(None, description="cost column (latency_ms_*, macs, params, ...)")
    space: str | None = Field(None, description="read the arch column as choices of this space (mbconv)")
    choices: list[int] | None = Field(None, description="choices per position (default: inferred)")
    reveal: int | None = Field(None, ge=10, description="learn from this many random rows (no adaptive queries)")
    query_budget: int | None = Field(None, ge=10, description="reveal at most this many rows in total: "
                                     "random ones first, then the generator's best candidates (adaptive)")
    initial_rows: int | None = Field(None, ge=10, description="with --query-budget: rows revealed at random "
                                     "first; none = 0.4 x the query budget")
    query_rounds: int = Field(3, ge=1, description="with --query-budget: query rounds after the initial rows")
    query_grid: int = Field(20, ge=1, description="with --query-budget: budgets per query round")
    query_samples: int = Field(300, ge=1, description="with --query-budget: architectures sampled per budget "
                               "when choosing queries")
    budget: float | None = Field(None, gt=0, description="answer one budget (cost units)")
    budgets: list[float] | None = Field(None, description="answer these budgets")
    train_budgets: list[float] | None = Field(None, description="train on these budgets (default: uniform in range)")
    generator: Path | None = Field(None, description="use this trained generator.json instead of training")
    iterations: int = Field(3000, ge=0, description="REINFORCE iterations")
    samples_per_step: int = Field(32, ge=2, description="architectures per iteration")
    entropy_coef: float = Field(0.05, ge=0, description="entropy bonus")
    baseline: Literal["moving", "batch", "none"] = Field(
        "moving", description="reward baseline: per-budget moving average, batch-standardized, or none")
    mask_inactive: bool = Field(True, description="no log-prob for slots beyond the chosen depth")
    select_samples: int = Field(200, ge=1, description="architectures sampled per budget at selection")
    include_table: bool = Field(True, description="also consider the revealed rows (measured) at selection")
    cost_margin: float | None = Field(None, ge=0, description="log-cost safety margin (default: from held-out error)")
    acc_discount: float | None = Field(None, ge=0, description="subtracted from predicted (unmeasured) accuracy "
                                       "at selection (default: from held-out error)")
    predictor_epochs: int = Field(200, ge=1, description="epochs of the accuracy and cost predictors")
    evaluator_steps: int = Field(1500, ge=1, description="steps of the Pareto-aware evaluator")
    checkpoint_every: int = Field(500, ge=1, description="iterations between checkpoints")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, Options)


def run(args: argparse.Namespace) -> int:
    opts: Options = resolve_options(Options, args)
    set_threads(opts.threads)
    seed_everything(opts.seed)
    device = str(resolve_device(opts.device))
    if opts.table is None:
        raise UserError("no table given", where="--table",
                        fix="give --table FILE --accuracy COL --cost COL (make one with budgetnas profile --sample)")
    if not opts.accuracy or not opts.cost:
        raise UserError("--accuracy and --cost name the table's columns to use", where="--table",
                        fix="e.g. --accuracy cifar10_test_acc --cost latency_ms_fpga")
    _check_query_options(opts)
    started = time.time()
    table = load_table(opts.table, space=opts.space, choices=opts.choices,
                       dataset_shape=DATASET_SHAPES[opts.dataset])
    acc, cost = table.column(opts.accuracy, option="--accuracy"), table.column(opts.cost)
    budgets = list(opts.budgets or []) + ([opts.budget] if opts.budget else [])
    if any(b <= 0 for b in budgets):
        raise UserError("budgets must be positive", where="--budgets")
    revealed = _revealed(len(table), opts)
    out = prepare_run_dir(opts.out, "generate", resume=opts.resume)
    write_run_info(out, None, opts, device=device)
    exact = _exact_cost(table, opts.cost)
    if opts.generator:
        model = NAGModel.load(opts.generator, table.space, device=device)
        model.exact_cost = exact
        log: list[dict] = []
    else:
        model, log = _train(table, acc, cost, revealed, exact, opts, out, device)
    if not budgets:
        budgets = list(np.quantile(cost[revealed], [0.1, 0.3, 0.5, 0.7, 0.9]))
    picks = _answer(model, table, acc, cost, budgets, opts)
    _write_results(out, table, acc, cost, picks, model, opts, started, log, device)
    _print(picks, opts)
    print(f"run directory: {out}")
    report_at_end(out, opts.report)
    return 0


def _check_query_options(opts: Options) -> None:
    if opts.query_budget is None:
        if opts.initial_rows is not None:
            raise UserError("--initial-rows needs --query-budget", where="--initial-rows",
                            fix="give --query-budget N (the rows revealed in total)")
        return
    if opts.reveal is not None:
        raise UserError("--reveal and --query-budget exclude each other", where="--query-budget",
                        fix="--reveal N learns from N random rows; --query-budget N reveals N rows adaptively")
    if opts.generator is not None:
        raise UserError("--query-budget trains a generator; --generator uses a trained one", where="--query-budget")
    if opts.initial_rows is not None and opts.initial_rows > opts.query_budget:
        raise UserError(f"{opts.initial_rows} initial rows exceed the query budget of {opts.query_budget}",
                        where="--initial-rows", fix="give at most --query-budget rows")


def _initial_rows(opts: Options) -> int:
    return opts.initial_rows if opts.initial_rows is not None else max(10, round(0.4 * opts.query_budget))


def _revealed(n: int, opts: Options) -> np.ndarray:
    """The rows revealed at random before any adaptive query."""
    count = _initial_rows(opts) if opts.query_budget is not None else opts.reveal
    if count is None or count >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(opts.seed).permutation(n)[:count])


def _exact_cost(table: Table, column: str):
    """A cost the cost model computes for any architecture (NB201 params/MACs)."""
    if table.space_name == "nb201" and column in ("params", "macs"):
        return lambda rows: nb201_costs(rows, table.config)[column]
    return None


def _settings(opts: Options, n_rows: int) -> Settings:
    adaptive = opts.query_budget is not None and opts.query_budget < n_rows
    return Settings(iterations=opts.iterations, samples_per_step=opts.samples_per_step,
                    entropy_coef=opts.entropy_coef, baseline=opts.baseline, mask_inactive=opts.mask_inactive,
                    train_budgets=opts.train_budgets, select_samples=opts.select_samples,
                    cost_margin=opts.cost_margin, acc_discount=opts.acc_discount,
                    predictor_epochs=opts.predictor_epochs, evaluator_steps=opts.evaluator_steps,
                    query_budget=opts.query_budget if adaptive else None, query_rounds=opts.query_rounds,
                    query_grid=opts.query_grid, query_samples=opts.query_samples, seed=opts.seed)


def _train(table, acc, cost, revealed, exact, opts: Options, out: Path,
           device: str) -> tuple[NAGModel, list[dict]]:
    settings = _settings(opts, len(table))
    if opts.resume:
        state = load_checkpoint(out / "checkpoint.pt")
        model = _model_from_checkpoint(state, out / "checkpoint.pt", table.space, device)
        model.exact_cost = exact
        model.optimizer.load_state_dict(state["optimizer"])
        model.baseline = list(state["baseline"])
        start, phase, log = int(state["iteration"]), int(state.get("phase", 0)), list(state["log"])
        if dataclasses.asdict(model.settings) != dataclasses.asdict(settings) | {
                "budget_range": model.settings.budget_range}:
            raise UserError("the options differ from the run being resumed", where="--resume",
                            fix="resume with the same options")
    else:
        meta = {"table": str(opts.table), "accuracy": opts.accuracy, "cost": opts.cost,
                "space": table.space_name, "config": table.config}
        model = NAGModel.fit(table.space, table.rows[revealed], acc[revealed], cost[revealed], settings,
                             exact_cost=exact, meta=meta, device=device)
        start, phase, log = 0, 0, []
    bar = _bar(settings.iterations, start)
    state = {"phase": phase}
    ends = set(settings.phase_ends())  # checkpointed by on_phase_end

    def on_step(iteration: int) -> None:
        bar.update(1)
        fault_point("generator-step")
        if iteration % opts.checkpoint_every == 0 and iteration not in ends:
            _checkpoint(model, out, iteration, state["phase"], log)

    def on_phase_end(iteration: int, phase: int) -> None:
        _checkpoint(model, out, iteration, phase, log)

    def on_query(iteration: int, phase: int) -> None:
        state["phase"] = phase
        _checkpoint(model, out, iteration, phase, log)

    oracle = table_oracle(table, acc, cost) if settings.query_budget else None
    train(model, oracle, iteration=start, phase=phase, log=log, on_step=on_step,
          on_phase_end=on_phase_end, on_query=on_query)
    bar.close()
    if settings.query_budget:
        assert len(model.known) <= settings.query_budget, "query budget exceeded"
    return model, log


def _checkpoint(model: NAGModel, out: Path, iteration: int, phase: int, log: list[dict]) -> None:
    """generator.safetensors/.json are outputs for users; checkpoint.pt alone holds everything
    --resume needs (the generator's weights and metadata included), written in one atomic write,
    so a kill between these writes never pairs new weights with an old iteration."""
    model.save(out / "generator")
    save_checkpoint(out / "checkpoint.pt", {"iteration": iteration, "phase": phase,
                                            "optimizer": model.optimizer.state_dict(),
                                            "baseline": list(model.baseline), "log": log,
                                            "generator_tensors": model.tensors(),
                                            "generator_meta": json.dumps(model.metadata(),
                                                                         default=json_default)})
    write_jsonl(out / "log.jsonl", log)


def _model_from_checkpoint(state: dict, path: Path, space, device: str) -> NAGModel:
    """The generator as checkpointed in `state` (never from generator.safetensors/.json, which may
    be newer than the checkpoint after a kill)."""
    tensors, meta = state.get("generator_tensors"), state.get("generator_meta")
    if not isinstance(tensors, dict) or not isinstance(meta, str):
        raise UserError("the checkpoint lacks the generator (written by an older budgetnas)", where=str(path),
                        fix="start the run again without --resume")
    return NAGModel.from_state(json.loads(meta), tensors, space, device=device, where=str(path))


def _bar(total: int, start: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc="generator", unit="it", disable=not sys.stderr.isatty())


def _answer(model: NAGModel, table: Table, acc, cost, budgets, opts: Options) -> list[dict]:
    picks = []
    for k, budget in enumerate(budgets):
        t0 = time.perf_counter()
        pick = model.select(float(budget), seed=opts.seed + k, include_known=opts.include_table)
        pick["generate_ms"] = (time.perf_counter() - t0) * 1000.0
        i = table.index_of(pick["row"])
        if i is not None:  # the measured ("true") metrics, never the predicted ones
            pick["cost"] = float(cost[i])
            pick["test_acc"] = float(acc[i])
            pick["feasible"] = bool(cost[i] <= budget)
            feasible = cost <= budget
            pick["best_feasible_acc"] = float(acc[feasible].max()) if feasible.any() else None
            if pick["best_feasible_acc"] is not None:
                pick["regret"] = pick["best_feasible_acc"] - pick["test_acc"]
        elif model.exact_cost is not None:
            pick["cost"] = float(model.exact_cost(np.array([pick["row"]]))[0])
            pick["feasible"] = pick["cost"] <= budget
        pick["arch"] = pick["genotype"]
        picks.append(pick)
    return picks


def _write_results(out: Path, table: Table, acc, cost, picks, model: NAGModel, opts: Options,
                   started: float, log: list[dict], device: str) -> None:
    from ...arch import Arch, make_provenance, save_arch

    unit = "ms" if "latency" in opts.cost or opts.cost.endswith("_ms") else opts.cost
    write_json(out / "picks.json", {"metric": opts.cost, "unit": unit, "picks": picks})
    order = np.lexsort((-acc, cost))
    front, best = [], -np.inf
    for i in order:
        if acc[i] > best:
            best = acc[i]
            front.append({"cost": float(cost[i]), "acc": float(acc[i]), "arch": table.space.to_genotype(table.rows[i])})
    write_json(out / "true_front.json", {"metric": opts.cost, "rows": len(table), "points": front})
    first = picks[0]
    summary = {"method": "nag", "dataset": opts.dataset, "target": {opts.cost: first["budget"]},
               "unit": unit, "budgets": [p["budget"] for p in picks], "picks": picks,
               "table": str(opts.table), "rows_used": len(model.known),
               "query_budget": model.settings.query_budget, "device": device,
               "search_seconds": time.time() - started,
               "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
               "seed": opts.seed, "version": __version__, "val_acc": None,
               "params_dense": None, "params_nonzero": None, "macs": None}
    if table.space_name in ("nb201", "mbconv"):
        from ...cost import count_macs, count_params
        from ...spaces import get_space

        for k, pick in enumerate(picks):
            arch = Arch(table.space_name, table.config, pick["genotype"],
                        provenance=make_provenance("nag", opts.dataset, {opts.cost: pick["budget"]}, opts.seed))
            save_arch(arch, out, f"arch-{k}.json")
            if k == 0:
                save_arch(arch, out, "arch.json")
                model_k = get_space(arch.space).build(arch)
                shape = (table.config["in_channels"], table.config["input_size"], table.config["input_size"])
                summary.update(params_dense=count_params(model_k), params_nonzero=count_params(model_k),
                               macs=count_macs(model_k, shape))
    if first.get("test_acc") is not None:
        summary["test_acc"] = first["test_acc"]
    write_json(out / "summary.json", summary)


def _print(picks: list[dict], opts: Options) -> None:
    print(f"{'budget':>12} {'pred cost':>12} {'true cost':>12} {'pred acc':>9} {'true acc':>9} {'ok':>3}  arch")
    for p in picks:
        true_cost = f"{p['cost']:.6g}" if "cost" in p else "-"
        true_acc = f"{p['test_acc']:.2f}" if "test_acc" in p else "-"
        ok = {True: "yes", False: "NO"}.get(p.get("feasible"), "?")
        print(f"{p['budget']:>12.6g} {p['predicted_cost']:>12.6g} {true_cost:>12} {p['predicted_acc']:>9.2f} "
              f"{true_acc:>9} {ok:>3}  {p['genotype'] if isinstance(p['genotype'], str) else '(see arch files)'}")
