"""Does `torch.compile` make an MGAS search step fast? Eager against compiled, one supernet.

    python benchmarks/mgas_compile.py --device cuda --channels 16 --cells 5 --size 16 --batch 96
    python benchmarks/mgas_compile.py --channels 4 --cells 2 --size 8 --batch 8      # CPU, small

On a GPU the search step is launch-bound (docs/bench_gpu.md): inductor's fused kernels would
cut the launches, but the first (compiling) step has to be paid for, and a search recompiles
whenever a commit changes which ops run or physical pruning changes the shapes. Each mode runs in
its own subprocess under --limit seconds, so a compile that takes too long is reported as such
instead of hanging the benchmark. Prints the first step's time (the compile), the median of the
timed steps, and the losses of the first and last step (compiled and eager must agree).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(args) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import torch

    from mgas_step import mgas

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net, step = mgas(args.channels, args.cells, 10, compiled=args.mode == "compiled")
    net.to(args.device).train()
    x = torch.randn(args.batch, 3, args.size, args.size, device=args.device)
    y = torch.randint(0, 10, (args.batch,), device=args.device)

    def timed() -> tuple[float, float]:
        start = time.perf_counter()
        loss = float(step(x, y))  # float() waits for the device
        return time.perf_counter() - start, loss

    first_s, first_loss = timed()
    for _ in range(2):
        timed()
    runs = [timed() for _ in range(args.steps)]
    print(json.dumps({"mode": args.mode, "first_step_s": round(first_s, 2),
                      "step_s": round(statistics.median(t for t, _ in runs), 4),
                      "first_loss": first_loss, "last_loss": runs[-1][1]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--cells", type=int, default=2)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed steps after 3 untimed ones")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=float, default=900, help="seconds each mode may take")
    parser.add_argument("--mode", choices=["eager", "compiled"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        return child(args)
    rows = {}
    for mode in ("eager", "compiled"):
        cmd = [sys.executable, __file__, *sys.argv[1:], "--mode", mode]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.limit, check=True)
            rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            rows[mode] = {"mode": mode, "unfinished": f"no result within {args.limit:g} s"}
        print(json.dumps(rows[mode]), flush=True)
    if all("step_s" in r for r in rows.values()):
        print(f"compiled step speed-up: {rows['eager']['step_s'] / rows['compiled']['step_s']:.2f}x")


if __name__ == "__main__":
    main()
