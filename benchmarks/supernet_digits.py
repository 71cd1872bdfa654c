"""Supernet + NAG on the user's own data: digits by default (any dataset the CLI reads works).

    .venv/bin/python benchmarks/supernet_digits.py --threads 1 [--cache .cache/supernet_digits]
    .venv/bin/python benchmarks/supernet_digits.py --threads 1 --doc docs/bench_nag.md   # write the section

Steps, each cached under --cache (run the same command again to continue after an interruption):
1. supernet: `budgetnas search supernet` (resumed when a checkpoint exists);
2. sample: held-out accuracy with inherited weights (BN recalibrated) and cost of N random subnets
   ("exhaustive evaluation of a large random sample"; evals.json, saved every 25 evaluations);
3. kendall: K subnets spread over the cost range, retrained from scratch (`budgetnas train`, one
   run directory per subnet and --retrain-seeds seed): Kendall tau between inherited and retrained
   test accuracy (the seeds' mean), and with several seeds how far retraining agrees with itself;
4. generate, per seed: `budgetnas generate --supernet` with its defaults (5 quantile budgets):
   regret of every pick against the best of the sample within its budget; the largest-budget
   pick evaluated with 0 fine-tuning epochs (`budgetnas train --init-from --epochs 0`);
5. compare, per seed: NAG picks among generated architectures only (no random row) against random
   search and per-budget regularized evolution, each with the same number of subnet evaluations.

Every finished step (and every retrained subnet of step 3) is also kept in --keep (default
docs/data/supernet_DATASET.json, committed) with the settings it was measured with: on another
machine the same command takes them from there, trains the supernet again only for a step still
missing, and writes the page from the kept steps alone when all are there.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from budgetnas.arch import Arch, save_arch  # noqa: E402
from budgetnas.data import load_dataset  # noqa: E402
from budgetnas.io import read_json, write_json  # noqa: E402
from budgetnas.spaces.decisions import compact  # noqa: E402
from budgetnas.train.loop import evaluate  # noqa: E402
from supernet_compare import compare_seed, regret_rows  # noqa: E402

BUDGETS = ["q10", "q30", "q50", "q70", "q90"]


def cli(args: list, threads: int, log: Path) -> None:
    """Run `budgetnas ARGS` (this checkout's code); its output goes to `log`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads)}
    with open(log, "a") as fh:
        done = subprocess.run([sys.executable, "-m", "budgetnas", *map(str, args)], env=env, stdout=fh,
                              stderr=subprocess.STDOUT, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"budgetnas {' '.join(map(str, args))} failed (exit {done.returncode}); see {log}")


def data_flags(a) -> list[str]:
    flags = ["--dataset", a.dataset]
    for name in ("data_dir", "image_size", "subset"):
        if getattr(a, name):
            flags += ["--" + name.replace("_", "-"), str(getattr(a, name))]
    return flags + ["--threads", str(a.threads)]


def run_once(out: Path, args: list, a, *, done_file: str) -> None:
    """A CLI run into `out`, skipped when finished, resumed when a checkpoint exists."""
    if (out / done_file).is_file():
        return
    resume = ["--resume"] if (out / "checkpoint.pt").is_file() else []
    if out.exists() and not resume:
        import shutil

        shutil.rmtree(out)
    quiet = [] if args[0] == "train" else ["--no-report"]  # train writes no report
    cli([*args, *data_flags(a), "--out", out, *quiet, *resume], a.threads, a.cache / "cli.log")


class Evals:
    """Held-out accuracy of subnets, cached in a JSON file (compact row -> accuracy)."""

    def __init__(self, source, path: Path):
        self.source, self.path = source, path
        self.values = read_json(path) if path.is_file() else {}
        self.new = 0

    def __call__(self, row) -> float:
        key = compact(row)
        if key not in self.values:
            self.values[key] = self.source.accuracy(tuple(int(v) for v in row))
            self.new += 1
            if self.new % 25 == 0:
                self.save()
        return self.values[key]

    def measure(self, row) -> tuple[float, float]:
        return self(row), float(self.source.cost(np.array([row]))[0])

    def save(self) -> None:
        write_json(self.path, self.values)


def step_sample(a, evals: Evals, space) -> dict:
    from budgetnas.methods.nag.per_budget import distinct_samples

    rows = distinct_samples(space, a.sample, np.random.default_rng(12345))
    started = time.time()
    acc = np.array([evals(r) for r in rows])
    evals.save()
    return {"rows": [list(r) for r in rows], "val_acc": acc.tolist(),
            "cost": evals.source.cost(np.array(rows)).tolist(), "seconds": round(time.time() - started, 1)}


def retrain_dir(directory: Path, seed: int, epochs: int) -> Path:
    """One directory per (epochs, seed): runs of other retraining lengths are kept beside it."""
    return directory / f"train-e{epochs}-s{seed}"


def step_kendall(a, lazy: "Lazy", sample: dict, kept: "Kept") -> dict:
    """K subnets evenly spread over the sample's cost ranks, each retrained from scratch once per
    --retrain-seeds seed (each subnet kept as it finishes); the retrained accuracy is the seeds' mean."""
    order = np.argsort(sample["cost"], kind="stable")
    picks = [int(order[int(round(i))]) for i in np.linspace(0, len(order) - 1, a.kendall)]
    out = kept.steps.setdefault("kendall-subnets", [])
    for n, i in enumerate(picks[len(out):], start=len(out)):
        row, source = tuple(sample["rows"][i]), lazy.source
        directory = a.cache / "kendall" / str(n)
        directory.mkdir(parents=True, exist_ok=True)
        save_arch(Arch("mbconv", source.config, source.genotype(row)), directory)
        accs = []
        for seed in a.retrain_seed_list:
            run = retrain_dir(directory, seed, a.retrain_epochs)
            run_once(run, ["train", directory / "arch.json", "--epochs", a.retrain_epochs, "--seed", seed],
                     a, done_file="metrics.json")
            accs.append(read_json(run / "metrics.json")["test_acc"])
        inherited = evaluate(source.subnet(row), lazy.dataset, lazy.dataset.test, source.device)
        out.append({"row": list(row), "cost": sample["cost"][i], "inherited_val": sample["val_acc"][i],
                    "inherited_test": inherited, "retrained_test": float(np.mean(accs)), "retrained_seeds": accs})
        kept.save()
    return kendall_summary(out)


def kendall_summary(subnets: list[dict]) -> dict:
    """Kendall tau of the inherited accuracies against the retrained ones; with several retraining
    seeds also how well retraining agrees with itself (the ceiling any proxy is measured against)."""
    from scipy.stats import kendalltau

    retrained = [r["retrained_test"] for r in subnets]
    tau_test = kendalltau([r["inherited_test"] for r in subnets], retrained)
    tau_val = kendalltau([r["inherited_val"] for r in subnets], retrained)
    out = {"subnets": subnets, "tau_test": float(tau_test.statistic), "p_test": float(tau_test.pvalue),
           "tau_val": float(tau_val.statistic), "p_val": float(tau_val.pvalue)}
    per_seed = np.array([r.get("retrained_seeds", [r["retrained_test"]]) for r in subnets])  # subnets x seeds
    if per_seed.shape[1] > 1:
        pairs = [(i, j) for i in range(per_seed.shape[1]) for j in range(i + 1, per_seed.shape[1])]
        out["retrain_noise"] = {
            "tau_between_seeds": float(np.mean([kendalltau(per_seed[:, i], per_seed[:, j]).statistic
                                                for i, j in pairs])),
            "sd_within_subnet": float(np.mean(per_seed.std(1, ddof=1))),
            "sd_between_subnets": float(per_seed.mean(1).std(ddof=1)),
            "tau_val_single_seed": [float(kendalltau([r["inherited_val"] for r in subnets], per_seed[:, k]).statistic)
                                    for k in range(per_seed.shape[1])]}
    return out


def step_generate(a, _trained: "Lazy", seed: int, sample: dict) -> dict:
    """`generate --supernet` (the supernet trained first, through `_trained`) and its picks."""
    out = a.cache / f"generate-s{seed}"
    run_once(out, ["generate", "--supernet", a.cache / "supernet", "--cost", a.cost, "--budgets", ",".join(BUDGETS),
                   "--query-budget", a.queries, "--seed", seed], a, done_file="picks.json")
    listing = read_json(out / "picks.json")
    picks = listing["picks"]
    largest = max(range(len(picks)), key=lambda k: picks[k]["budget"])
    pick_dir = out / "picks" / str(largest)
    run_once(out / "eval-largest", ["train", pick_dir / "arch.json", "--init-from", pick_dir, "--epochs", 0],
             a, done_file="metrics.json")
    zero = read_json(out / "eval-largest" / "metrics.json")["test_acc"]
    by_budget = sorted(picks, key=lambda p: p["budget"])
    return {"picks": [{k: p[k] for k in ("budget", "cost", "val_acc", "test_acc", "row")} for p in picks],
            "regret": regret_rows(picks, sample), "evaluations": listing["evaluations"],
            "largest_test_acc_0_epochs": zero, "seconds": read_json(out / "summary.json")["search_seconds"],
            "val_monotone": all(x["val_acc"] <= y["val_acc"] for x, y in zip(by_budget, by_budget[1:])),
            "test_monotone": all(x["test_acc"] <= y["test_acc"] for x, y in zip(by_budget, by_budget[1:]))}


def step_compare(a, lazy: "Lazy", seed: int, sample: dict, generated: dict) -> dict:
    """compare_seed reads the generator of `generate`'s run directory: redone if the generate step
    came from the kept file on a machine without it."""
    if not (a.cache / f"generate-s{seed}" / "generator.json").is_file():
        step_generate(a, lazy.open(), seed, sample)
    return compare_seed(a, seed, lazy.source, lazy.evals, sample, generated)


class Kept:
    """Finished steps in a JSON file kept in the repository, valid for one set of settings."""

    def __init__(self, path: Path, settings: dict):
        self.path, self.settings = path, settings
        kept = read_json(path) if path.is_file() else {}
        self.steps = kept.get("steps", {}) if kept.get("settings") == settings else {}

    def step(self, name: str, cache: Path, compute):
        """The step from the kept file, else from the cache directory, else computed (and kept)."""
        if name not in self.steps:
            self.steps[name] = read_json(cache) if cache.is_file() else compute()
            write_json(cache, self.steps[name])
            self.save()
        return self.steps[name]

    def save(self) -> None:
        write_json(self.path, {"settings": self.settings, "steps": self.steps})


class Lazy:
    """The supernet (trained on first use), its dataset and its evaluator."""

    def __init__(self, a):
        self.a, self._source = a, None

    def open(self) -> "Lazy":
        from budgetnas.methods.nag.supernet_source import SupernetSource

        a = self.a
        if self._source is not None:
            return self
        run_once(a.cache / "supernet", ["search", "supernet", "--epochs", a.epochs], a, done_file="supernet.json")
        self.dataset = load_dataset(a.dataset, a.data_dir, image_size=a.image_size, subset=a.subset)
        self._source = SupernetSource(a.cache / "supernet", self.dataset, a.cost, device=torch.device("cpu"),
                                      threads=a.threads)
        self.evals = Evals(self._source, a.cache / "evals.json")
        return self

    @property
    def source(self):
        return self.open()._source


SETTINGS = ("dataset", "image_size", "subset", "epochs", "sample", "kendall", "retrain_epochs", "queries", "cost")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cache", type=Path, default=ROOT / ".cache" / "supernet_digits")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--subset", type=int, default=None)
    p.add_argument("--epochs", type=int, default=40, help="supernet training epochs")
    p.add_argument("--sample", type=int, default=1000, help="random subnets evaluated exhaustively")
    p.add_argument("--kendall", type=int, default=24, help="subnets retrained from scratch")
    p.add_argument("--retrain-epochs", type=int, default=20)
    p.add_argument("--retrain-seeds", default="0",
                   help="retrain each ranked subnet once per seed (comma list); the truth is their mean")
    p.add_argument("--queries", type=int, default=400, help="subnet evaluations per method and seed")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--cost", default="macs")
    p.add_argument("--doc", type=Path, default=None, help="write the results section into this file")
    p.add_argument("--keep", type=Path, default=None,
                   help="finished steps, kept in the repository (default docs/data/supernet_DATASET.json)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    a.cache.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    keep = a.keep or ROOT / "docs" / "data" / f"supernet_{a.dataset}.json"
    a.retrain_seed_list = [int(s) for s in a.retrain_seeds.split(",")]
    settings = {k: getattr(a, k) for k in SETTINGS}
    if a.retrain_seed_list != [0]:  # absent for one seed, so files kept before the option stay valid
        settings["retrain_seeds"] = a.retrain_seeds
    kept, lazy = Kept(keep, settings), Lazy(a)
    sample = kept.step("sample", a.cache / "sample.json",
                       lambda: step_sample(a, lazy.open().evals, lazy.source.space))
    kendall_cache = a.cache / f"kendall-e{a.retrain_epochs}-r{'-'.join(map(str, a.retrain_seed_list))}.json"
    kendall = kept.step("kendall", kendall_cache, lambda: step_kendall(a, lazy, sample, kept))
    seeds = [int(s) for s in a.seeds.split(",")]
    generate = {s: kept.step(f"generate-s{s}", a.cache / f"generate-s{s}.json",
                             lambda: step_generate(a, lazy.open(), s, sample)) for s in seeds}
    compare = {s: kept.step(f"compare-s{s}", a.cache / f"compare-s{s}.json",
                            lambda: step_compare(a, lazy, s, sample, generate[s])) for s in seeds}
    summary = a.cache / "supernet" / "summary.json"
    supernet = kept.step("supernet", summary, lambda: lazy.open() and read_json(summary))
    if lazy._source is not None:
        lazy.evals.save()
    results = {"supernet": supernet, "sample": {
        "n": len(sample["rows"]), "seconds": sample["seconds"]}, "kendall": kendall, "generate": generate,
        "compare": compare, "date": _dt.date.today().isoformat(), "wall_seconds_this_run": round(time.time() - t0)}
    write_json(a.cache / "results.json", results)
    from supernet_report import section

    text = section(results, a)
    print(text)
    if a.doc:
        from supernet_report import write_section

        write_section(a.doc, text)


if __name__ == "__main__":
    main()
