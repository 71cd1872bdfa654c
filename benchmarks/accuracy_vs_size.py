"""Accuracy against size: MGAS, DARTS + width scaling and random cell networks at three target
sizes, on digits and on a small CIFAR-10 configuration, each searched through the CLI and
retrained with the same recipe (`budgetnas train`), 2 seeds. Writes a Markdown section to
docs/bench_baselines.md and the raw rows to WORK/results.json.

    .venv/bin/python benchmarks/accuracy_vs_size.py [--work /tmp/bench-accuracy] [--workers 2]

CIFAR-10 comes from the JPEG copy in ../shared/data/cifar10 (unpacked once into --cache, outside
the repository); the first --per-class images of each class of train/ and test/ are linked into a
smaller image folder and read at --image-size pixels. The DARTS search does not depend on the
target, so it runs once per dataset and seed; the other targets reuse it (`--scale-from`).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARBALL = ROOT.parent / "shared" / "data" / "cifar10" / "cifar10-jpg.tar.gz"
DOC = ROOT / "docs" / "bench_baselines.md"
TARGETS = [8000, 16000, 32000]
SEEDS = [0, 1]
# Reduced so that the whole benchmark fits about 25 minutes on 2 CPU cores.
MGAS_FLAGS = ["--preset", "tiny", "--warmup-epochs", "0", "--max-stage-epochs", "2", "--commit-every", "1",
              "--final-warmup-epochs", "0", "--max-final-epochs", "2"]
DARTS_FLAGS = ["--preset", "tiny", "--epochs", "2", "--no-report"]
RANDOM_FLAGS = ["--preset", "tiny", "--candidates", "4", "--epochs-per-candidate", "1", "--no-report"]
TRAIN_FLAGS = ["--recipe", "quick", "--epochs", "10", "--batch-size", "64", "--lr", "0.05"]


def prepare_cifar(cache: Path, per_class_train: int, per_class_test: int) -> Path:
    """Unpack the JPEG tarball once and link a class-balanced subset into its own image folder."""
    full = cache / "cifar10-jpg"
    if not (full / "train").is_dir():
        full.mkdir(parents=True, exist_ok=True)
        with tarfile.open(TARBALL) as tar:
            tar.extractall(full, filter="data")
    sub = cache / f"cifar10-jpg-{per_class_train}-{per_class_test}"
    if not (sub / ".complete").exists():
        shutil.rmtree(sub, ignore_errors=True)
        for split, n in (("train", per_class_train), ("test", per_class_test)):
            for class_dir in sorted((full / split).iterdir()):
                dest = sub / split / class_dir.name
                dest.mkdir(parents=True)
                for image in sorted(class_dir.iterdir())[:n]:
                    try:
                        os.link(image, dest / image.name)
                    except OSError:
                        shutil.copy2(image, dest / image.name)
        (sub / ".complete").write_text("")
    return sub


def cli(args: list[str], log: Path) -> float:
    """Run `budgetnas ARGS` (one thread); returns wall seconds. Output goes to `log`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    with open(log, "a") as fh:
        fh.write("$ budgetnas " + " ".join(args) + "\n")
        fh.flush()
        proc = subprocess.run([sys.executable, "-m", "budgetnas", *args, "--threads", "1"], cwd=ROOT,
                              env=env, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise RuntimeError(f"budgetnas {' '.join(args)} failed ({proc.returncode}); see {log}")
    return time.perf_counter() - started


def chains(datasets: dict, work: Path) -> list[list[dict]]:
    """Each chain is a list of steps run in order (search, then its retraining)."""
    out = []
    for name, spec in datasets.items():
        data = spec["flags"]
        for seed in SEEDS:
            s = ["--seed", str(seed)]
            for method, flags in (("mgas", MGAS_FLAGS), ("random", RANDOM_FLAGS)):
                for target in spec["targets"]:
                    run = work / name / f"{method}-t{target}-s{seed}"
                    out.append([{"kind": "search", "dataset": name, "method": method, "target": target,
                                 "seed": seed, "dir": run,
                                 "args": ["search", method, *data, *flags, *s, "--target-params",
                                          str(target), "--out", str(run)]},
                                _train_step(name, method, target, seed, run, data)])
            chain, first = [], None
            for target in spec["targets"]:
                run = work / name / f"darts-t{target}-s{seed}"
                reuse = ["--scale-from", str(first)] if first else []
                chain.append({"kind": "search", "dataset": name, "method": "darts", "target": target,
                              "seed": seed, "dir": run,
                              "args": ["search", "darts", *data, *DARTS_FLAGS, *s, *reuse, "--target-params",
                                       str(target), "--out", str(run)]})
                chain.append(_train_step(name, "darts", target, seed, run, data))
                first = first or run
            out.append(chain)
    return out


def _train_step(name: str, method: str, target: int, seed: int, run: Path, data: list[str]) -> dict:
    return {"kind": "train", "dataset": name, "method": method, "target": target, "seed": seed,
            "dir": Path(f"{run}-train"),
            "args": ["train", str(run / "arch.json"), *data, *TRAIN_FLAGS, "--seed", str(seed),
                     "--out", f"{run}-train"]}


def run_chain(chain: list[dict], work: Path, results: list, lock: threading.Lock) -> None:
    try:
        _run_chain(chain, work, results, lock)
    except RuntimeError as exc:  # keep the other chains going; the table marks what is missing
        print(f"failed: {exc}", flush=True)


def _run_chain(chain: list[dict], work: Path, results: list, lock: threading.Lock) -> None:
    for step in chain:
        if (step["dir"] / ("summary.json" if step["kind"] == "search" else "metrics.json")).exists():
            seconds = None  # done by an earlier invocation of this benchmark
        else:
            shutil.rmtree(step["dir"], ignore_errors=True)
            seconds = cli(step["args"], work / "commands.log")
        row = {k: (str(v) if isinstance(v, Path) else v) for k, v in step.items() if k != "args"}
        row["wall_seconds"] = seconds
        row["command"] = "budgetnas " + " ".join(step["args"])
        with lock:
            results.append(row)
            (work / "results.json").write_text(json.dumps(results, indent=1))
        print(f"[{time.strftime('%H:%M:%S')}] {step['kind']} {step['dataset']} {step['method']} "
              f"t={step['target']} s={step['seed']} ({seconds and round(seconds)} s)", flush=True)


def collect(work: Path, datasets: dict) -> list[dict]:
    rows = []
    for name, spec in datasets.items():
        for method in ("mgas", "darts", "random"):
            for target in spec["targets"]:
                for seed in SEEDS:
                    run = work / name / f"{method}-t{target}-s{seed}"
                    summary_path, metrics_path = run / "summary.json", Path(f"{run}-train") / "metrics.json"
                    if not summary_path.exists():
                        continue
                    summary = json.loads(summary_path.read_text())
                    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
                    rows.append({"dataset": name, "method": method, "target": target, "seed": seed,
                                 "params": summary["params_nonzero"], "macs": summary["macs"],
                                 "off": summary["params_nonzero"] / target - 1,
                                 "search_s": summary["search_seconds"], "test_acc": metrics.get("test_acc"),
                                 "train_s": metrics.get("train_seconds")})
    return rows


def markdown(rows: list[dict], datasets: dict, args: argparse.Namespace, wall: float) -> str:
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True,
                         text=True).stdout.split(":", 1)[-1].strip()
    lines = ["# Baselines: accuracy against size", "",
             "Results of `benchmarks/accuracy_vs_size.py` (issue 3, benchmark 2).", "",
             f"- command: `.venv/bin/python benchmarks/accuracy_vs_size.py --workers {args.workers} "
             f"--per-class {args.per_class} --test-per-class {args.test_per_class} "
             f"--image-size {args.image_size}`",
             f"- machine: {cpu}, {os.cpu_count()} cores, shared with other work; {args.workers} runs at a time, "
             "1 torch thread each",
             f"- date: {dt.date.today().isoformat()}; wall time of the whole benchmark {wall / 60:.1f} min",
             "- searches (all via the CLI, `tiny` preset = 3 cells, C=4 for the supernets):",
             f"  - MGAS: `budgetnas search mgas {' '.join(MGAS_FLAGS)} --target-params T`",
             f"  - DARTS: `budgetnas search darts {' '.join(DARTS_FLAGS)} --target-params T` once per "
             "dataset and seed; the other targets reuse that search with `--scale-from`",
             f"  - random: `budgetnas search random {' '.join(RANDOM_FLAGS)} --target-params T`",
             f"- retraining, same recipe for all: `budgetnas train ARCH {' '.join(TRAIN_FLAGS)}` (train + "
             "held-out split together; accuracy on the test split, last epoch)",
             f"- seeds {SEEDS} (search and retraining use the same seed)", ""]
    for name, spec in datasets.items():
        lines += [f"### {name}", "", spec["about"], "",
                  "| method | target params | params (non-zero, mean) | off target (mean) | test acc mean | "
                  "test acc per seed | search s (mean) |", "|---|---:|---:|---:|---:|---|---:|"]
        for target in spec["targets"]:
            for method in ("mgas", "darts", "random"):
                group = [r for r in rows if r["dataset"] == name and r["method"] == method and r["target"] == target]
                if not group:
                    lines.append(f"| {method} | {target} | not run | | | | |")
                    continue
                accs = [r["test_acc"] for r in group if r["test_acc"] is not None]
                acc_mean = f"{100 * statistics.mean(accs):.1f} %" if accs else "-"
                lines.append(
                    f"| {method} | {target} | {statistics.mean(r['params'] for r in group):.0f} | "
                    f"{100 * statistics.mean(r['off'] for r in group):+.1f} % | {acc_mean} | "
                    f"{', '.join(f'{100 * a:.1f}' for a in accs)} | "
                    f"{statistics.mean(r['search_s'] for r in group):.1f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-accuracy"), help="run directories")
    parser.add_argument("--cache", type=Path, default=Path("/tmp"), help="where CIFAR-10 JPEGs are unpacked")
    parser.add_argument("--workers", type=int, default=2, help="commands at a time")
    parser.add_argument("--per-class", type=int, default=100, help="CIFAR-10 training images per class")
    parser.add_argument("--test-per-class", type=int, default=100, help="CIFAR-10 test images per class")
    parser.add_argument("--image-size", type=int, default=16, help="CIFAR-10 resolution")
    parser.add_argument("--only", choices=["digits", "cifar10"], help="run one dataset")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/bench_baselines.md")
    args = parser.parse_args()
    cifar = prepare_cifar(args.cache, args.per_class, args.test_per_class)
    datasets = {
        "digits": {"flags": ["--dataset", "digits"], "targets": TARGETS,
                   "about": "Built-in 8x8 digits (1,437 training images: 80 % search-train / 20 % held-out; "
                            "359 test images)."},
        "cifar10": {"flags": ["--dataset", "imagefolder", "--data-dir", str(cifar),
                              "--image-size", str(args.image_size)], "targets": TARGETS,
                    "about": f"CIFAR-10 JPEG copy, first {args.per_class} training and {args.test_per_class} "
                             f"test images per class, resized to {args.image_size}x{args.image_size}. "
                             "**Caveat:** the images were re-encoded as JPEG (quality 75), so accuracies are "
                             "a little below what the original CIFAR-10 would give and are not CIFAR-10 "
                             "results (see ../shared/data/README.md); with 1,000 training images at "
                             "16x16 and 10 epochs they only rank the methods."},
    }
    if args.only:
        datasets = {args.only: datasets[args.only]}
    args.work.mkdir(parents=True, exist_ok=True)
    weight = {"mgas": 3, "darts": 3, "random": 1}
    todo = sorted(chains(datasets, args.work),  # the longest chains first
                  key=lambda c: -weight[c[0]["method"]] * (3 if c[0]["dataset"] == "cifar10" else 1))
    results: list = []
    lock = threading.Lock()
    started = time.perf_counter()
    with cf.ThreadPoolExecutor(args.workers) as pool:
        futures = [pool.submit(run_chain, c, args.work, results, lock) for c in todo]
        for future in cf.as_completed(futures):
            future.result()
    wall = time.perf_counter() - started
    rows = collect(args.work, datasets)
    text = markdown(rows, datasets, args, wall)
    print(text)
    if not args.no_doc:
        # Hand-written notes below the tables survive a rerun.
        old = DOC.read_text() if DOC.exists() else ""
        notes = old[old.index("\n## Notes"):] if "\n## Notes" in old else ""
        DOC.write_text(text + "\n" + notes)


if __name__ == "__main__":
    main()
