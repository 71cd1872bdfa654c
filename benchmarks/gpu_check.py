"""GPU check: everything of the CUDA path in one command (about 8 minutes on one H200, measured 2026-12-04).

    python benchmarks/gpu_check.py                 # on a GPU machine: writes docs/bench_gpu.md
    python benchmarks/gpu_check.py --dry-run       # on a CPU: the same steps, tiny, CPU only

Steps (each one's outcome and numbers go into the page; a failing step does not stop the rest):
1. the CUDA-marked tests (`pytest -m cuda`);
2. bf16 autocast training of examples/small_digits.json against fp32 (same seed, same epochs):
   test accuracy of both;
3. the fast depthwise backward (`budgetnas.depthwise`) against autograd on CUDA tensors, for every
   kernel / stride / dilation the spaces use;
4. one MGAS search step against the plain DARTS supernet (C=16, 8 cells, 32x32, batch 64): step
   time (median of timed steps after warm-up) and peak GPU memory;
5. a 2-process DDP training run: NCCL over two GPUs, or gloo with both processes on one GPU;
6. the commands a user runs, end to end on the device: the default MGAS search on digits and 5 epochs
   of training of what it found, an elastic supernet on digits and `generate --supernet` from it, and a
   tiny DNA search (a dry run: the DNA search only). Exit codes, wall times and accuracies.
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
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def run_cli(args: list[str], env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "budgetnas", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def cuda_tests(dry: bool) -> dict:
    where = ["tests/test_cuda.py"] if dry else ["tests"]  # a dry run only checks the plumbing
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", *where],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)
    last = (done.stdout.strip().splitlines() or [""])[-1]
    return {"ok": done.returncode in (0, 5) if dry else done.returncode == 0, "summary": last}


def bf16_vs_fp32(device: str, epochs: int, work: Path, dry: bool) -> dict:
    rows = {}
    for amp in (False, True):
        out = work / f"train-{'bf16' if amp else 'fp32'}"
        result = run_cli(["train", ROOT / "examples" / "small_digits.json", "--epochs", epochs, "--device", device,
                          "--amp" if amp else "--no-amp", "--seed", 0, "--out", out,
                          *(["--subset", 200] if dry else [])])
        if result.returncode != 0:
            raise RuntimeError(result.stderr.strip().splitlines()[-1])
        metrics = json.loads((out / "metrics.json").read_text())
        rows["bf16" if amp else "fp32"] = {"test_acc": metrics["test_acc"], "train_seconds": metrics["train_seconds"]}
    gap = abs(rows["bf16"]["test_acc"] - rows["fp32"]["test_acc"])
    return {"ok": gap <= 0.02 or dry, "gap": gap, **rows, "note": "bf16 autocast is used on CUDA only; on CPU both runs are fp32"}


def depthwise_vs_autograd(device: str) -> dict:
    import torch
    import torch.nn.functional as F

    from budgetnas.depthwise import _DepthwiseConv

    worst = 0.0
    for kernel, stride, dilation in [(3, 1, 1), (5, 1, 1), (3, 2, 1), (5, 2, 1), (3, 1, 2), (5, 1, 2), (3, 2, 2), (5, 2, 2)]:
        gen = torch.Generator().manual_seed(kernel * 10 + stride + dilation)
        x = torch.randn(8, 16, 16, 16, generator=gen).to(device).contiguous(memory_format=torch.channels_last)
        w = torch.randn(16, 1, kernel, kernel, generator=gen).to(device)
        pad = dilation * (kernel - 1) // 2
        x1, w1 = x.clone().requires_grad_(), w.clone().requires_grad_()
        x2, w2 = x.clone().requires_grad_(), w.clone().requires_grad_()
        g = torch.randn(F.conv2d(x, w, None, stride, pad, dilation, 16).shape, generator=gen).to(device)
        (_DepthwiseConv.apply(x1, w1, stride, pad, dilation) * g).sum().backward()
        (F.conv2d(x2, w2, None, stride, pad, dilation, 16) * g).sum().backward()
        worst = max(worst, float((x1.grad - x2.grad).abs().max()), float((w1.grad - w2.grad).abs().max()))
    return {"ok": worst < 1e-3, "max_abs_diff": worst}


def mgas_vs_plain(device: str, dry: bool) -> dict:
    import torch

    from mgas_step import mgas, plain_darts

    channels, cells, size, batch, steps = (4, 3, 8, 8, 2) if dry else (16, 8, 32, 64, 10)
    rows = {}
    for name, build in (("mgas", mgas), ("plain", lambda c, n, k: plain_darts(c, n, k, False))):
        torch.manual_seed(0)
        net, step = build(channels, cells, 10)
        net.to(device).train()
        x = torch.randn(batch, 3, size, size, device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        step(x, y)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            step(x, y)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
        rows[name] = {"step_s": statistics.median(times), "peak_mb": peak}
        del net, step
    return {"ok": True, "config": f"C={channels}, {cells} cells, {size}x{size}, batch {batch}, {steps} timed steps",
            **rows, "mgas_over_plain": rows["mgas"]["step_s"] / rows["plain"]["step_s"]}


def ddp(device: str, work: Path, dry: bool) -> dict:
    import torch

    gpus = torch.cuda.device_count() if device == "cuda" else 0
    backend = "nccl" if gpus >= 2 else "gloo"
    env = {"BUDGETNAS_DIST_BACKEND": backend, "OMP_NUM_THREADS": "1"}
    out = work / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "budgetnas",
           "train", str(ROOT / "examples" / "small_digits.json"), "--epochs", "1", "--device", device, "--out", str(out),
           *(["--subset", "200"] if dry else [])]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env={**os.environ, **env})
    if done.returncode != 0:
        raise RuntimeError((done.stderr.strip().splitlines() or ["no output"])[-1])
    metrics = json.loads((out / "metrics.json").read_text())
    sums = metrics["rank_checksums"]
    return {"ok": len(sums) == 2 and sums[0] == sums[1], "backend": backend, "gpus": gpus,
            "world_size": metrics["world_size"], "test_acc": metrics["test_acc"]}


DNA_TINY = ["search", "dna", "--space", "nbmacro", "--dataset", "synthetic", "--subset", "200", "--nbmacro-channels", "4",
            "--teacher-epochs", "1", "--epochs", "1", "--recal-batches", "1", "--rate-batch-size", "16",
            "--rate-samples", "16", "--final-epochs", "0", "--target-params", "600000"]
GENERATE_SMALL = ["--cost", "macs", "--budgets", "q20,q80", "--query-budget", "30", "--initial-rows", "10", "--verify", "2",
                  "--iterations", "200", "--select-samples", "50", "--query-rounds", "1"]


def end_to_end(device: str, work: Path, dry: bool) -> dict:
    """The user's commands on the device: exit 0, wall time, and what they report."""
    common = ["--device", device, "--seed", 0, "--no-report"]
    steps = {"search dna (tiny)": [*DNA_TINY, *common, "--out", work / "dna"]}
    if not dry:
        steps = {"search mgas (default, digits)": ["search", "mgas", "--dataset", "digits", *common, "--out", work / "mgas"],
                 "train found arch, 5 epochs": ["train", work / "mgas" / "arch.json", "--epochs", 5, "--device", device,
                                                "--seed", 0, "--out", work / "mgas-train"],
                 "search supernet (digits, 10 epochs)": ["search", "supernet", "--dataset", "digits", "--epochs", 10,
                                                         *common, "--out", work / "supernet"],
                 "generate --supernet": ["generate", "--supernet", work / "supernet", "--dataset", "digits",
                                         *GENERATE_SMALL, *common, "--out", work / "picks"],
                 **steps}
    rows, ok = {}, True
    for name, args in steps.items():
        if name.startswith("train found") and rows.get("search mgas (default, digits)", {}).get("rc"):
            continue  # nothing found to train
        start = time.perf_counter()
        done = run_cli(args)
        rows[name] = {"rc": done.returncode, "seconds": round(time.perf_counter() - start, 1)}
        if done.returncode != 0:
            rows[name]["error"] = (done.stderr.strip().splitlines() or ["no output"])[-1]
            ok = False
    if not dry and ok:
        rows["found network test_acc"] = json.loads((work / "mgas-train" / "metrics.json").read_text())["test_acc"]
        summary = json.loads((work / "mgas" / "summary.json").read_text())
        rows["found network params"] = summary["params_nonzero"]
    return {"ok": ok, **rows}


def write_page(path: Path, results: dict, args, machine: str, seconds: float) -> None:
    lines = ["# GPU check", "",
             f"- command: `python benchmarks/gpu_check.py{' --dry-run' if args.dry_run else ''}`",
             f"- machine: {machine}", f"- date: {_dt.date.today().isoformat()}; wall time {seconds:.0f} s",
             f"- mode: {'dry run on the CPU (tiny sizes; no CUDA)' if args.dry_run else 'CUDA'}", "",
             "| step | ok | details |", "|---|---|---|"]
    for name, result in results.items():
        details = {k: v for k, v in result.items() if k != "ok"}
        ok = {True: "yes", False: "NO", None: "error"}[result.get("ok")]
        lines.append(f"| {name} | {ok} | `{json.dumps(details, default=str)}` |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def describe_machine() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}, torch {torch.__version__}"
        return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    except ImportError:
        return platform.platform()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="run every step on the CPU, tiny")
    parser.add_argument("--out", type=Path, default=None,
                        help="page to write (default docs/bench_gpu.md; a temporary file with --dry-run)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the bf16/fp32 training")
    parser.add_argument("--steps", default=None, help="run only these steps, by number (e.g. 1,6)")
    args = parser.parse_args()
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device: run with --dry-run on a CPU", file=sys.stderr)
        return 2
    device = "cpu" if args.dry_run else "cuda"
    out = args.out or (Path(tempfile.mkdtemp()) / "bench_gpu.md" if args.dry_run else ROOT / "docs" / "bench_gpu.md")
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="gpu_check-"))
    steps = {"CUDA-marked tests": lambda: cuda_tests(args.dry_run),
             "bf16 vs fp32 training": lambda: bf16_vs_fp32(device, 1 if args.dry_run else args.epochs, work,
                                                           args.dry_run),
             "depthwise backward vs autograd": lambda: depthwise_vs_autograd(device),
             "MGAS step vs plain DARTS supernet": lambda: mgas_vs_plain(device, args.dry_run),
             "2-process DDP": lambda: ddp(device, work, args.dry_run),
             "commands end to end": lambda: end_to_end(device, work, args.dry_run)}
    if args.steps:
        chosen = {int(n) for n in args.steps.split(",") if n.strip().isdigit()}
        if not chosen or not chosen <= set(range(1, len(steps) + 1)):
            parser.error(f"--steps: numbers 1-{len(steps)}, comma-separated (got {args.steps!r})")
        steps = {name: fn for i, (name, fn) in enumerate(steps.items(), 1) if i in chosen}
    results = {}
    for name, fn in steps.items():
        try:
            results[name] = fn()
        except Exception as exc:  # noqa: BLE001 - record and go on with the other steps
            results[name] = {"ok": None, "error": f"{type(exc).__name__}: {exc}",
                             "where": traceback.format_exc().strip().splitlines()[-3:]}
        print(f"{name}: {results[name]}", flush=True)
    write_page(out, results, args, describe_machine(), time.perf_counter() - started)
    print(f"wrote {out}")
    return 0 if all(r.get("ok") for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
