"""Search quality: the networks each method finds, retrained with one recipe, at equal size.

    python benchmarks/search_quality.py --dataset digits --seeds 0,1,2 --workers 2
    python benchmarks/search_quality.py --dataset cifar --data-dir CACHE/cifar10 --seeds 0,1,2 --workers 2
    python benchmarks/search_quality.py --dataset cifar --page docs/bench_quality.md  # refresh its tables

Every method is run through the CLI and every found network is retrained with the same command,
then timed at batch 1 on one thread (`budgetnas profile --latency`). Rows: MGAS with its
defaults (`mgas`: the preset's one stage), MGAS `--stages 3` (`mgas-3stage`), DARTS + width
scaling, random + width scaling, and the hand-written network
`examples/small_digits.json` with its widths scaled to the target (`--methods mgas-cubic` adds
MGAS with `--plan cubic`; `mgas-nobrake`, `mgas-3stage-nobrake` and `mgas-cubic-nobrake` are
those three with `--brake-every 0`, the default before 2026-12-03; `mgas-3stage-w1` is
`--stages 3` with 1 warm-up epoch per stage, the tiny preset's until 2026-12-03, 4 since;
`mgas-3stage-t1` is `--stages 3 --first-stage train`). Each
(dataset, target, method, seed) is one job whose search and training directories live under --cache; a finished job's
result is appended to --results (docs/data/search_quality.jsonl, kept in the repository), so the
benchmark resumes after any kill (a killed search or training resumes from its own checkpoint)
and goes on from the finished jobs on another machine: it can run in the background for days.
Jobs run seed by seed, and within a seed target by target, so a first paired comparison comes
early. `--retrains K` retrains each found network K times (the job's seed, then seed + 1000,
+ 2000, ...) and the page compares the mean: on digits one retraining's noise (a few of the 359
test images) is as large as the differences between methods. A finished job with fewer
retrainings is topped up from its cached search.

The hand-written row takes the cells of examples/small_digits.json (its normal and reduction cells)
at the protocol's depth and scales only their widths.

Protocols (reduced for 2 CPU cores; the page says so):
- digits: the built-in 8x8 digits; targets 8k, 16k, 32k non-zero params; retraining
  `--recipe quick --epochs 20`; all 359 test images.
- cifar: the CIFAR-10 JPEG copy at 16x16, 1,000 training images per class (the search splits
  them into search-train and held-out), all 10,000 test images; targets 50k and 150k;
  retraining `--recipe cifar10 --epochs 30 --cutout 8 --batch-size 128`.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

PROTOCOLS = {
    "digits": {"data": ["--dataset", "digits"], "targets": [8000, 16000, 32000],
               "train": ["--recipe", "quick", "--epochs", "20"],
               "mgas": [], "cells": 3, "darts": ["--epochs", "8"], "random": ["--candidates", "8"]},
    "cifar": {"data": ["--dataset", "imagefolder", "--image-size", "16", "--subset", "10000"],
              "targets": [50000, 150000],
              "train": ["--recipe", "cifar10", "--epochs", "30", "--cutout", "8", "--batch-size", "128"],
              "mgas": ["--layers", "5", "--batch-size", "96"], "cells": 5,
              "darts": ["--layers", "5", "--channels", "8", "--epochs", "10"],
              "random": ["--layers", "5", "--candidates", "6"]},
}
METHODS = ["mgas", "mgas-3stage", "darts", "random", "handwritten"]
# variants run only when --methods names them
# (the in-epoch brake is the default since 2026-12-03: MGAS rows run before it are the -nobrake ones)
OPTIONAL = {"mgas-cubic": ["--plan", "cubic"], "mgas-nobrake": ["--brake-every", "0"],
            "mgas-3stage-nobrake": ["--stages", "3", "--brake-every", "0"],
            "mgas-cubic-nobrake": ["--plan", "cubic", "--brake-every", "0"],
            "mgas-3stage-w1": ["--stages", "3", "--warmup-epochs", "1"],
            "mgas-3stage-t1": ["--stages", "3", "--first-stage", "train"],
            "mgas-3stage-late": ["--stages", "3", "--stage-plan", "late"],
            "mgas-3stage-equal": ["--stages", "3", "--stage-plan", "equal"],
            "mgas-rewind": ["--brake", "rewind"], "mgas-3stage-rewind": ["--stages", "3", "--brake", "rewind"],
            "mgas-hold": ["--brake", "hold"], "mgas-3stage-hold": ["--stages", "3", "--brake", "hold"]}


def variant_width(method: str) -> int | None:
    """N of a `mgas-cN` variant (a supernet of width N), None for any other method."""
    return int(method[6:]) if method.startswith("mgas-c") and method[6:].isdigit() else None


def variant_flags(method: str) -> list[str]:
    """An optional variant's flags (for `mgas-cN` the later --channels wins)."""
    width = variant_width(method)
    return OPTIONAL[method] if width is None else ["--channels", str(width)]


def width_variants(rows: list[dict]) -> list[str]:
    return sorted({r["method"] for r in rows if variant_width(r["method"]) is not None}, key=variant_width)


def cli(args: list, log: Path, threads: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads)}
    with open(log, "a") as fh:
        done = subprocess.run([sys.executable, "-m", "budgetnas", *map(str, args)], stdout=fh, stderr=fh, env=env,
                              cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"budgetnas {' '.join(map(str, args[:3]))} failed (see {log})")


def resumable(directory: Path, done_file: str) -> list[str]:
    """Resume a run that left a checkpoint, start afresh otherwise."""
    if (directory / done_file).is_file():
        return []
    return ["--resume"] if (directory / "checkpoint.pt").is_file() else []


def search(job: dict, proto: dict, data: list, out: Path, threads: int, log: Path) -> Path:
    method, target, seed = job["method"], job["target"], job["seed"]
    common = [*data, "--seed", seed, "--threads", threads, "--no-report", "--target-params", target, "--out", out]
    if (out / "arch.json").is_file() and (out / "summary.json").is_file():
        return out / "arch.json"
    if method == "handwritten":
        scale_handwritten(proto, data, target, out)
        return out / "arch.json"
    name = "mgas" if method.startswith("mgas") else method
    base = {"mgas": proto["mgas"], "mgas-3stage": [*proto["mgas"], "--stages", "3"],
            "darts": proto["darts"], "random": proto["random"]}
    extra = base[method] if method in base else [*proto["mgas"], *variant_flags(method)]
    cli(["search", name, *common, *extra, *resumable(out, "summary.json")], log, threads)
    return out / "arch.json"


def scale_handwritten(proto: dict, data: list, target: int, out: Path) -> None:
    """The cells of examples/small_digits.json at the protocol's depth (its normal cells where a
    normal cell goes, its reduction cells at the reductions, in order), at the widths that land on
    the target, for this dataset's input."""
    from budgetnas import load_arch, save_arch
    from budgetnas.data import load_dataset
    from budgetnas.io import write_json
    from budgetnas.spaces.darts_cells import NetShape, make_arch, reduction_cells, scale_to_target

    hand = load_arch(ROOT / "examples" / "small_digits.json").genotype["cells"]
    normal = [c["edges"] for c in hand if not c["reduction"]]
    reduce = [c["edges"] for c in hand if c["reduction"]]
    reductions = reduction_cells(proto["cells"])
    cells = [reduce[reductions.index(i) % len(reduce)] if i in reductions else normal[i % len(normal)]
             for i in range(proto["cells"])]
    args = dict(zip(data[::2], data[1::2]))
    ds = load_dataset(args["--dataset"], args.get("--data-dir"),
                      image_size=int(args["--image-size"]) if "--image-size" in args else None,
                      subset=int(args["--subset"]) if "--subset" in args else None)
    shape = NetShape.of(ds)
    scaled = scale_to_target(lambda w: make_arch(cells, w, shape), target, "params", layers=len(cells))
    out.mkdir(parents=True, exist_ok=True)
    save_arch(scaled.arch, out)
    write_json(out / "summary.json", {"method": "handwritten", "target": {"params": target},
                                      "params_nonzero": scaled.size, "search_seconds": 0.0, **scaled.summary()})


def retrain_seed(seed: int, j: int) -> int:
    """Seed of a found network's j-th retraining: the job's own seed first (the only one before
    `--retrains`, so earlier rows stay valid), then seeds no search uses."""
    return seed if j == 0 else seed + 1000 * j


def retrain(arch: Path, proto: dict, data: list, train_dir: Path, seed: int, threads: int, log: Path) -> dict:
    if not (train_dir / "metrics.json").is_file():
        cli(["train", arch, *data, *proto["train"], "--seed", seed, "--threads", threads, "--out", train_dir,
             *resumable(train_dir, "metrics.json")], log, threads)
    return json.loads((train_dir / "metrics.json").read_text())


def run_job(job: dict, proto: dict, data: list, cache: Path, threads: int, retrains: int = 1) -> dict:
    tag = f"{job['dataset']}-{job['target']}-{job['method']}-s{job['seed']}"
    log = cache / "logs" / f"{tag}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    arch = search(job, proto, data, cache / "search" / tag, threads, log)
    runs = [retrain(arch, proto, data, cache / "train" / (tag if j == 0 else f"{tag}-r{j}"),
                    retrain_seed(job["seed"], j), threads, log) for j in range(retrains)]
    metrics = runs[0]
    summary = json.loads((arch.parent / "summary.json").read_text())
    latency = subprocess.run([sys.executable, "-m", "budgetnas", "profile", str(arch), "--latency", "--threads", "1",
                              "--runs", "30", "--json"], capture_output=True, text=True, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    latency_ms = json.loads(latency.stdout)["latency_ms"] if latency.returncode == 0 else None
    return {**job, "params_nonzero": metrics["params_nonzero"], "macs": metrics["macs"],
            "test_acc": metrics["test_acc"], "test_acc_retrains": [m["test_acc"] for m in runs],
            "search_seconds": summary.get("search_seconds"),
            "search_peak_mb": summary.get("peak_memory_mb"), "val_acc_search": summary.get("val_acc"),
            "pruned_by": summary.get("pruned_by"), "ops_kept": summary.get("ops_kept"),
            "latency_ms_b1_t1": latency_ms, "train_seconds": sum(m["train_seconds"] for m in runs),
            "job_seconds": round(time.time() - started, 1)}


def load_results(path: Path) -> list[dict]:
    """One row per job. **Decision:** the file is only ever appended to (two queues may write it
    at once), so a job run again with more retrainings adds a line, and the later line wins."""
    rows = {}
    for line in path.read_text().splitlines() if path.is_file() else []:
        row = json.loads(line)
        rows[key(row)] = row
    return list(rows.values())


def retrainings(row: dict) -> list[float]:
    """Test accuracy of each retraining of the row's network (one for rows before `--retrains`)."""
    return row.get("test_acc_retrains") or [row["test_acc"]]


def network_acc(row: dict) -> float:
    """The found network's accuracy: the mean over its retrainings, so retraining noise does not
    decide a comparison of searches."""
    return statistics.mean(retrainings(row))


def retrain_spread(rows: list[dict]) -> float | None:
    """Mean over found networks of the std of their retrainings (pp): how much one network's
    accuracy moves with the training seed alone (None without rows of >= 2 retrainings)."""
    spreads = [statistics.stdev(retrainings(r)) for r in rows if len(retrainings(r)) >= 2]
    return 100 * statistics.mean(spreads) if spreads else None


def key(row: dict) -> tuple:
    return row["dataset"], row["target"], row["method"], row["seed"]


def run_all(args) -> None:
    proto = PROTOCOLS[args.dataset]
    data = list(proto["data"])
    if args.dataset == "cifar":
        if not args.data_dir:
            raise SystemExit("--data-dir: the unpacked CIFAR-10 JPEG tree (train/ and test/ class folders)")
        data += ["--data-dir", str(args.data_dir)]
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    finished = {key(r) for r in load_results(args.results) if len(retrainings(r)) >= args.retrains}
    jobs = [{"dataset": args.dataset, "target": t, "method": m, "seed": s}
            for s in args.seeds for t in (args.targets or proto["targets"]) for m in args.methods]
    jobs = [j for j in jobs if key(j) not in finished]
    print(f"{len(jobs)} jobs to run ({len(finished)} cached) with {args.workers} workers", flush=True)

    def work(job):
        try:
            row = run_job(job, proto, data, cache, args.threads, args.retrains)
        except Exception as exc:  # noqa: BLE001 - reported, the other jobs go on
            print(f"FAILED {job}: {exc}", flush=True)
            return
        with open(args.results, "a") as fh:  # one whole line per finished job
            fh.write(json.dumps(row) + "\n")
        print(f"done {key(row)}: acc {network_acc(row):.4f} params {row['params_nonzero']} "
              f"({row['job_seconds']:.0f} s)", flush=True)

    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(work, jobs))


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:  # one seed: no spread to show
        return f"{100 * values[0]:.2f}"
    return f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f}"


def paired(diffs: list[float]) -> tuple[float, float, float] | None:
    """Mean of per-seed differences (pp) and its two-sided 95 % Student-t interval; None under 2
    seeds. **Decision:** a t interval, not a bootstrap: with 3 seeds a bootstrap has 10 distinct
    resamples and would claim far more certainty than 3 numbers hold."""
    if len(diffs) < 2:
        return None
    from scipy import stats

    mean = 100 * statistics.mean(diffs)
    half = stats.t.ppf(0.975, len(diffs) - 1) * 100 * statistics.stdev(diffs) / len(diffs) ** 0.5
    return mean, mean - half, mean + half


def paired_cell(diffs: list[float]) -> str:
    interval = paired(diffs)
    if interval is None:
        return mean_std(diffs)
    return f"{mean_std(diffs)} [{interval[1]:+.2f}, {interval[2]:+.2f}]"


def verdict(diffs: dict[str, list[float]]) -> str:
    """One plain sentence per target: which baselines MGAS beats or loses to with 95 % confidence
    (paired interval entirely on one side of 0), and which it cannot be told apart from.
    `diffs`: per baseline, its per-seed accuracy minus MGAS's."""
    better, worse, level = [], [], []
    for method, values in diffs.items():
        interval = paired(values)
        if interval is not None:
            (worse if interval[1] > 0 else better if interval[2] < 0 else level).append(method)
    if not better + worse + level:
        return "Paired 95 % intervals: none yet (they need >= 2 seeds of MGAS and of a baseline)."

    def words(methods: list[str]) -> str:
        return ", ".join(methods) or "none"

    return (f"Paired 95 % intervals (>= 2 seeds): MGAS ahead of {words(better)}; behind {words(worse)}; "
            f"not told apart from {words(level)}.")


def dataset_tables(rows: list[dict], dataset: str) -> list[str]:
    """One table per target: every method's mean, per-seed accuracies and paired difference."""
    lines = []
    for target in sorted({r["target"] for r in rows if r["dataset"] == dataset}):
        here = [r for r in rows if r["dataset"] == dataset and r["target"] == target]
        mgas = {r["seed"]: network_acc(r) for r in here if r["method"] == "mgas"}
        lines += [f"### target {target:,} non-zero params", "",
                  "| method | seeds | retrainings | params (mean) | off target | test acc % (mean ± std) | per seed | "
                  "paired diff vs MGAS (pp) [95 % CI] | retrain std (pp) | latency ms | search s | search peak MB |",
                  "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
        baseline_diffs = {}
        for method in [*METHODS, *OPTIONAL, *width_variants(here)]:
            rs = sorted((r for r in here if r["method"] == method), key=lambda r: r["seed"])
            if not rs:
                continue
            accs = [network_acc(r) for r in rs]
            diffs = [network_acc(r) - mgas[r["seed"]] for r in rs if r["seed"] in mgas]
            if method in METHODS and method != "mgas":
                baseline_diffs[method] = diffs
            params = statistics.mean(r["params_nonzero"] for r in rs)
            lat = [r["latency_ms_b1_t1"] for r in rs if r.get("latency_ms_b1_t1")]
            srch = [r["search_seconds"] for r in rs if r.get("search_seconds") is not None]
            peak = [r["search_peak_mb"] for r in rs if r.get("search_peak_mb")]
            counts = sorted({len(retrainings(r)) for r in rs})
            cells = [method, str(len(rs)), "-".join(map(str, counts)), f"{params:,.0f}", f"{100 * (params / target - 1):+.1f} %",
                     mean_std(accs), ", ".join(f"{100 * a:.1f}" for a in accs),
                     "-" if method == "mgas" or not diffs else paired_cell(diffs),
                     "-" if (spread := retrain_spread(rs)) is None else f"{spread:.2f}",
                     f"{statistics.median(lat):.2f}" if lat else "-",
                     f"{statistics.mean(srch):.0f}" if srch else "-", f"{max(peak):.0f}" if peak else "-"]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", verdict(baseline_diffs), ""]
    return lines


def write_page(results: Path, page: Path, command: str, dataset: str) -> None:
    """Write (or refresh) the tables of `dataset` from `results`. On an existing page only the
    dataset's generated block is replaced, so the readings written around it are kept."""
    rows = load_results(results)
    text = page.read_text() if page.is_file() else "\n".join([
        "# Search quality: accuracy at equal size", "",
        f"Results of `benchmarks/search_quality.py`. Machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores.", "",
        "Every method searched through the CLI, every network retrained with the same command, "
        "test accuracy on the whole test split (last epoch). Paired difference = method minus MGAS "
        "on the same seed, mean ± std over seeds [two-sided 95 % t interval of the mean]. Latency: batch 1, 1 thread, median of 30 runs.", ""])
    if any(r["dataset"] == dataset for r in rows):
        begin, end = f"<!-- search_quality:{dataset} -->", f"<!-- /search_quality:{dataset} -->"
        block = "\n".join([begin, f"_Tables written {_dt.date.today().isoformat()} from {results.name} "
                                  f"(`{command}`)._", "", *dataset_tables(rows, dataset), end])
        if begin in text and end in text:
            text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
        else:
            text = text.rstrip("\n") + f"\n\n## {dataset}\n\n{block}\n"
    from budgetnas.io import atomic_write

    with atomic_write(page, "w") as fh:  # a page is never left half-written
        fh.write(text.rstrip("\n") + "\n")
    print(f"wrote {page}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(PROTOCOLS), default="digits")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--seeds", type=lambda t: [int(v) for v in t.split(",")], default=[0, 1, 2])
    parser.add_argument("--targets", type=lambda t: [int(v) for v in t.split(",")], default=None,
                        help="comma-separated non-zero params targets (default: the protocol's)")
    parser.add_argument("--methods", type=lambda t: t.split(","), default=METHODS,
                        help=f"comma-separated, from {', '.join([*METHODS, *OPTIONAL])}, mgas-cN (supernet width N)")
    parser.add_argument("--retrains", type=int, default=1,
                        help="retrain each found network this many times (seeds: the job's, then +1000, +2000, ...) "
                             "and compare the mean; finished jobs with fewer are topped up, the search is reused")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job")
    parser.add_argument("--cache", default=str(ROOT / ".cache" / "search_quality"),
                        help="run directories of searches and trainings (resumable)")
    parser.add_argument("--results", type=Path, default=ROOT / "docs" / "data" / "search_quality.jsonl",
                        help="one line per finished job; kept in the repository")
    parser.add_argument("--page", type=Path, default=None, help="write the results page and exit")
    args = parser.parse_args()
    if args.page:
        write_page(args.results, args.page, " ".join(sys.argv[1:]), args.dataset)
        return
    run_all(args)


if __name__ == "__main__":
    main()
