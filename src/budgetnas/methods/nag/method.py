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

import json
import time

import numpy as np

from ...arch import Arch, make_provenance, save_arch
from ...config import DATASET_SHAPES
from ...errors import UserError
from ...io import fault_point, json_default, write_json
from ...runs import Method
from .files import load_model, model_from_state, model_metadata, model_tensors, save_model
from .model import NAGModel
from .options import NAGOptions
from . import supernet_mode
from .settings import Settings, resolve_budgets
from .table import Table, load_table, nb201_costs
from .training import table_oracle, train
from .verify import verified_select

BUILDABLE = ("nb201", "mbconv")


class NAGMethod(Method):
    title = "generator trained; picks answered"
    unit = "iteration"
    needs_data = False  # the table is the data; --dataset only fixes the input shape
    opts: NAGOptions

    def check(self, ctx) -> None:
        opts = self.opts
        self.sn, self.table, self.iteration, self.phase, self.lookup = None, None, 0, 0, False
        if opts.supernet is not None:
            _check_query_options(opts)
            self.sn = supernet_mode.plan(opts, ctx)
            self.budgets = self.sn.budgets
            self.settings = supernet_mode.settings_for(self.sn, _settings(opts, 2**62, verifying=self.sn.verify > 0))
        else:
            self._check_table()

    def _check_table(self) -> None:
        opts = self.opts
        if opts.table is None:
            raise UserError("no table or supernet given", where="--table",
                            fix="give --table FILE --accuracy COL --cost COL (make one with budgetnas profile "
                                "--sample), or --supernet RUN_DIR --cost macs (train one with budgetnas search supernet)")
        if not opts.accuracy or not opts.cost:
            raise UserError("--accuracy and --cost name the table's columns to use", where="--table",
                            fix="e.g. --accuracy cifar10_test_acc --cost latency_ms_fpga")
        _check_query_options(opts)
        channels, size, classes = DATASET_SHAPES[opts.dataset]
        self.table = load_table(opts.table, space=opts.space, choices=opts.choices,
                                dataset_shape=(channels, size, classes or 10))
        self.acc = self.table.column(opts.accuracy, option="--accuracy")
        self.cost = self.table.column(opts.cost)
        self.budgets = resolve_budgets(list(opts.budgets or []), self.cost) + ([opts.budget] if opts.budget else [])
        self.revealed = _revealed(len(self.table), opts)
        self.exact = _exact_cost(self.table, opts.cost)
        reserve = (opts.verify or 0) * (len(self.budgets) or 5)
        if opts.query_budget is not None and reserve and opts.query_budget - reserve < _initial_rows(opts):
            raise UserError(f"--verify {opts.verify} for {len(self.budgets) or 5} budgets needs {reserve} of the "
                            f"{opts.query_budget} queries, leaving fewer than the {_initial_rows(opts)} initial rows",
                            where="--verify", fix="give a larger --query-budget or a smaller --verify")
        self.settings = _settings(opts, len(self.table), reserve=reserve, verifying=bool(opts.verify))
        # Every architecture of the space measured and revealed: the answer is a lookup, and
        # a generator would only learn to repeat it.
        self.lookup = (not opts.generator and len(self.revealed) == len(self.table)
                       and len(self.table) >= space_size(self.table.space))

    @property
    def progress(self) -> tuple[int, int | None]:
        return self.iteration, self.settings.iterations

    def restore(self, ctx) -> None:
        """Fit a fresh model, or rebuild the checkpointed one (never from generator.safetensors
        or .json, which may be newer than the checkpoint after a kill)."""
        opts, device = self.opts, str(ctx.device)
        if self.lookup:
            self.model = None
            return
        space = self.sn.source.space if self.sn else self.table.space
        if opts.generator:
            self.model = load_model(opts.generator, space, device=device)
        elif opts.resume and (not self.sn or (ctx.out / "checkpoint.pt").is_file()):
            state = ctx.load_checkpoint()
            self.log = list(state.get("log", []))
            self.model = _model_from_checkpoint(state["method"], str(ctx.out / "checkpoint.pt"), space, device)
            self.model.optimizer.load_state_dict(state["method"]["optimizer"])
            self.model.baseline = list(state["method"]["baseline"])
            self.iteration, self.phase = int(state["method"]["iteration"]), int(state["method"]["phase"])
        elif self.sn:
            self.model = supernet_mode.fit(self.sn, self.settings, opts, device)
        else:
            table, rows = self.table, self.revealed
            meta = {"table": str(opts.table), "accuracy": opts.accuracy, "cost": opts.cost,
                    "space": table.space_name, "config": table.config}
            self.model = NAGModel.fit(table.space, table.rows[rows], self.acc[rows], self.cost[rows],
                                      self.settings, exact_cost=self.exact, meta=meta, device=device)
        self.model.exact_cost = self.sn.source.cost if self.sn else self.exact

    def oracle(self):
        if self.sn:
            return self.sn.source.oracle
        return table_oracle(self.table, self.acc, self.cost)

    def run(self, ctx) -> bool:
        if self.opts.generator or self.lookup:
            return True
        s = self.settings
        ends = set(s.phase_ends())  # checkpointed by on_phase_end

        with ctx.progress(self) as bar:
            def on_step(iteration: int) -> None:
                self.iteration = iteration
                bar.update({})
                fault_point("generator-step")
                if iteration % self.opts.checkpoint_every == 0 and iteration not in ends:
                    self.checkpoint(ctx)

            def on_phase_end(iteration: int, phase: int) -> None:
                self.iteration, self.phase = iteration, phase
                self.checkpoint(ctx)

            def on_query(iteration: int, phase: int) -> None:
                self.iteration, self.phase = iteration, phase
                self.checkpoint(ctx)

            oracle = self.oracle() if s.query_budget else None
            train(self.model, oracle, iteration=self.iteration, phase=self.phase, log=self.log,
                  on_step=on_step, on_phase_end=on_phase_end, on_query=on_query)
        if s.query_budget:
            assert len(self.model.known) <= s.query_budget, "query budget exceeded"
        return True

    def checkpoint(self, ctx) -> None:
        """generator.safetensors/.json are outputs for users; checkpoint.pt alone holds everything
        --resume needs (the generator's weights and metadata included), written in one atomic
        write, so a kill between these writes never pairs new weights with an old iteration."""
        model = self.model
        save_model(model, ctx.out / "generator")
        ctx.save_checkpoint({"iteration": self.iteration, "phase": self.phase,
                             "optimizer": model.optimizer.state_dict(), "baseline": list(model.baseline),
                             "generator_tensors": model_tensors(model),
                             "generator_meta": json.dumps(model_metadata(model), default=json_default)},
                            log=self.log)

    def result(self) -> tuple[Arch | None, dict]:
        opts, table = self.opts, self.table
        if self.sn:
            picks = supernet_mode.answer(self.sn, self.model, opts)
            return None, supernet_mode.write_picks(self.ctx.out, self.sn, picks, self.model, opts, str(self.ctx.device))
        if not self.budgets:
            self.budgets = list(np.quantile(self.cost[self.revealed], [0.1, 0.3, 0.5, 0.7, 0.9]))
        if self.lookup:
            print(f"every architecture of the space is measured in the table ({len(table)} rows): budgets "
                  "are answered by lookup, no generator trained (--query-budget N learns from N rows)")
            picks = [lookup_pick(table, self.acc, self.cost, float(b)) for b in self.budgets]
        else:
            picks = _answer(self.model, table, self.acc, self.cost, self.budgets, opts, self.oracle())
        _print(picks, opts)
        return _write_picks(self.ctx.out, table, self.acc, self.cost, picks, self.model, opts,
                            str(self.ctx.device))



def _check_query_options(opts: NAGOptions) -> None:
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


def _initial_rows(opts: NAGOptions) -> int:
    return opts.initial_rows if opts.initial_rows is not None else max(10, round(0.4 * opts.query_budget))


def _revealed(n: int, opts: NAGOptions) -> np.ndarray:
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


def _settings(opts: NAGOptions, n_rows: int, *, reserve: int = 0, verifying: bool = False) -> Settings:
    """The generator's settings; `reserve` queries (verification) are kept out of the query budget.

    **Decision:** when picks are verified, selection samples more (1,000) at a higher temperature
    (2): the measurements, not the predictor, decide among the candidates, so a wider spread pays;
    without verification the predictor alone judges them and the published 200 at temperature 1
    stay (docs/bench_nag.md)."""
    adaptive = opts.query_budget is not None and opts.query_budget < n_rows
    return Settings(iterations=opts.iterations, samples_per_step=opts.samples_per_step,
                    entropy_coef=opts.entropy_coef, baseline=opts.baseline, mask_inactive=opts.mask_inactive,
                    train_budgets=opts.train_budgets,
                    select_samples=opts.select_samples or (1000 if verifying else 200),
                    select_temperature=opts.select_temperature or (2.0 if verifying else 1.0),
                    cost_margin=opts.cost_margin, acc_discount=opts.acc_discount,
                    predictor_epochs=opts.predictor_epochs, evaluator_steps=opts.evaluator_steps,
                    query_budget=opts.query_budget - reserve if adaptive else None, query_rounds=opts.query_rounds,
                    query_grid=opts.query_grid, query_samples=opts.query_samples, seed=opts.seed)


def _model_from_checkpoint(state: dict, path: str, space, device: str) -> NAGModel:
    """The generator as checkpointed in `state` (never from generator.safetensors/.json, which may
    be newer than the checkpoint after a kill)."""
    tensors, meta = state.get("generator_tensors"), state.get("generator_meta")
    if not isinstance(tensors, dict) or not isinstance(meta, str):
        raise UserError("the checkpoint lacks the generator (written by an older budgetnas)", where=str(path),
                        fix="start the run again without --resume")
    return model_from_state(json.loads(meta), tensors, space, device=device, where=path)


def _answer(model: NAGModel, table: Table, acc, cost, budgets, opts: NAGOptions, oracle) -> list[dict]:
    picks = []
    for k, budget in enumerate(budgets):
        t0 = time.perf_counter()
        if opts.verify:
            pick = verified_select(model, float(budget), oracle, count=opts.verify, seed=opts.seed + k,
                                   include_known=opts.include_table)
        else:
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
        pick["answered_by"] = "generator"
        picks.append(pick)
    return picks


def lookup_pick(table: Table, acc, cost, budget: float) -> dict:
    """The most accurate measured row within the budget (the cheapest row when none fits)."""
    feasible = cost <= budget
    i = int(np.argmax(np.where(feasible, acc, -np.inf))) if feasible.any() else int(np.argmin(cost))
    row = [int(v) for v in table.rows[i]]
    genotype = table.space.to_genotype(table.rows[i])
    return {"budget": budget, "row": row, "genotype": genotype, "arch": genotype, "cost": float(cost[i]),
            "test_acc": float(acc[i]), "feasible": bool(feasible[i]),
            "best_feasible_acc": float(acc[i]) if feasible.any() else None,
            "regret": 0.0 if feasible.any() else None, "measured": True, "answered_by": "table"}


def space_size(space) -> float:
    """Distinct architectures of a decision space (infinite when too many to count)."""
    total = float(np.prod([float(n) for n in space.sizes]))
    if not space.has_gates:
        return total
    return float(sum(1 for _ in space.enumerate())) if total <= 1e6 else float("inf")


def _print(picks: list[dict], opts: NAGOptions) -> None:
    print(f"{'budget':>12} {'pred cost':>12} {'true cost':>12} {'pred acc':>9} {'true acc':>9} {'ok':>3}  arch")
    for p in picks:
        true_cost = f"{p['cost']:.6g}" if "cost" in p else "-"
        true_acc = f"{p['test_acc']:.2f}" if "test_acc" in p else "-"
        ok = {True: "yes", False: "NO"}.get(p.get("feasible"), "?")
        pred_cost = f"{p['predicted_cost']:.6g}" if "predicted_cost" in p else "-"
        pred_acc = f"{p['predicted_acc']:.2f}" if "predicted_acc" in p else "-"
        print(f"{p['budget']:>12.6g} {pred_cost:>12} {true_cost:>12} {pred_acc:>9} "
              f"{true_acc:>9} {ok:>3}  {p['genotype'] if isinstance(p['genotype'], str) else '(see arch files)'}")


def _write_picks(out, table: Table, acc, cost, picks: list[dict], model: NAGModel | None,
                 opts: NAGOptions, device: str) -> tuple[Arch | None, dict]:
    """picks.json, true_front.json and, for buildable spaces, arch-<k>.json per budget; returns the
    first pick's architecture (None for a plain table) and the summary's own fields."""
    unit = "ms" if "latency" in opts.cost or opts.cost.endswith("_ms") else opts.cost
    write_json(out / "picks.json", {"metric": opts.cost, "unit": unit, "answered_by": picks[0]["answered_by"],
                                    "picks": picks})
    order = np.lexsort((-acc, cost))
    front, best = [], -np.inf
    for i in order:
        if acc[i] > best:
            best = acc[i]
            front.append({"cost": float(cost[i]), "acc": float(acc[i]), "arch": table.space.to_genotype(table.rows[i])})
    write_json(out / "true_front.json", {"metric": opts.cost, "rows": len(table), "points": front})
    first = picks[0]
    extras = {"target": {opts.cost: first["budget"]}, "unit": unit, "budgets": [p["budget"] for p in picks],
              "picks": picks, "table": str(opts.table), "answered_by": first["answered_by"],
              "rows_used": len(model.known) if model else len(table),
              "query_budget": model.settings.query_budget if model else None, "device": device,
              "val_acc": None}
    if first.get("test_acc") is not None:
        extras["test_acc"] = first["test_acc"]
    arch = None
    if table.space_name in BUILDABLE:
        for k, pick in enumerate(picks):
            pick_arch = Arch(table.space_name, table.config, pick["genotype"],
                             provenance=make_provenance("nag", opts.dataset, {opts.cost: pick["budget"]}, opts.seed))
            save_arch(pick_arch, out, f"arch-{k}.json")
            arch = arch or pick_arch
    return arch, extras
