"""Operator calls per search step: MGAS's gated supernet against the plain DARTS supernet.

    python benchmarks/op_count.py                    # C=16, 8 cells, 16x16, batch 4, on the CPU

On a GPU a step of these small cells is launch-bound: each operator call is at least one kernel
launch of several microseconds, so the number of calls, counted here on the CPU with
torch.profiler, predicts the GPU step time better than the arithmetic does (docs/bench_gpu.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from mgas_step import mgas, plain_darts  # noqa: E402


def count(build, channels: int, cells: int, size: int, batch: int) -> dict:
    torch.manual_seed(0)
    net, step = build(channels, cells, 10)
    net.train()
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
    step(x, y)  # warm-up: lazy state, optimizer buffers
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(x, y)
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    top = sorted(events, key=lambda e: -e.count)[:6]
    return {"aten_calls": sum(e.count for e in events), "top": [(e.key, e.count) for e in top]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = {"mgas": count(mgas, args.channels, args.cells, args.size, args.batch),
            "plain": count(lambda c, n, k: plain_darts(c, n, k, False), args.channels, args.cells, args.size,
                           args.batch)}
    for name, row in rows.items():
        print(f"{name}: {row['aten_calls']:,} aten calls per step; most: {row['top']}")
    print(f"mgas / plain: {rows['mgas']['aten_calls'] / rows['plain']['aten_calls']:.2f}x")


if __name__ == "__main__":
    main()
