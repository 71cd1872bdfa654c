"""Benchmark 3: one full-supernet training step (forward, backward, weight + architecture update)
of the MGAS supernet against a plain DARTS mixed-op supernet of the same size (softmax-weighted sum
of the 7 ops on every edge, written here), in the default and channels_last memory formats.

Each (network, format) runs in its own subprocess so its peak RSS is its own.

    .venv/bin/python benchmarks/mgas_step.py [--channels 16 --cells 8 --size 32 --batch 64
                                              --threads 2 --steps 2 --doc docs/bench_mgas.md]
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def plain_darts(channels: int, cells: int, classes: int):
    """First-order DARTS supernet: shared normal/reduce alphas, softmax mixed ops."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from budgetnas.layers import DilConv, FactorizedReduce, ReLUConvBN, SepConv

    def make(name: str, c: int, stride: int) -> nn.Module:
        if name == "skip_connect":
            return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
        if name.startswith("sep"):
            return SepConv(c, c, c, int(name[-1]), stride)
        if name.startswith("dil"):
            return DilConv(c, c, int(name[-1]), stride)
        pool = nn.AvgPool2d(3, stride, 1, count_include_pad=False) if name.startswith("avg") \
            else nn.MaxPool2d(3, stride, 1)
        return nn.Sequential(pool, nn.BatchNorm2d(c, affine=False))

    names = ("skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
             "avg_pool_3x3", "max_pool_3x3")

    class Cell(nn.Module):
        def __init__(self, c_pp, c_p, c, reduction, reduction_prev):
            super().__init__()
            self.reduction = reduction
            self.pre0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c)
            self.pre1 = ReLUConvBN(c_p, c)
            self.edges = [(i, j + 2) for j in range(4) for i in range(j + 2)]
            self.ops = nn.ModuleList(nn.ModuleList(make(n, c, 2 if reduction and s < 2 else 1) for n in names)
                                     for s, _ in self.edges)

        def forward(self, s0, s1, weights):
            states = [self.pre0(s0), self.pre1(s1)]
            for node in range(2, 6):
                total = 0
                for e, (src, dst) in enumerate(self.edges):
                    if dst == node:
                        total = total + sum(w * op(states[src]) for w, op in zip(weights[e], self.ops[e]))
                states.append(total)
            return torch.cat(states[2:], 1)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            c_stem = 3 * channels
            self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
            c_pp, c_p, c, red_prev = c_stem, c_stem, channels, False
            self.cells = nn.ModuleList()
            for i in range(cells):
                red = i in (cells // 3, 2 * cells // 3)
                c = c * 2 if red else c
                self.cells.append(Cell(c_pp, c_p, c, red, red_prev))
                c_pp, c_p, red_prev = c_p, 4 * c, red
            self.classifier = nn.Linear(c_p, classes)
            self.alpha_normal = nn.Parameter(1e-3 * torch.randn(14, 7))
            self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(14, 7))

        def forward(self, x):
            s0 = s1 = self.stem(x)
            wn, wr = F.softmax(self.alpha_normal, -1), F.softmax(self.alpha_reduce, -1)
            for cell in self.cells:
                s0, s1 = s1, cell(s0, s1, wr if cell.reduction else wn)
            return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))

    net = Net()
    arch = [net.alpha_normal, net.alpha_reduce]
    weights = [p for p in net.parameters() if all(p is not a for a in arch)]
    w_opt = torch.optim.SGD(weights, lr=0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(arch, lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)

    def step(x, y):
        w_opt.zero_grad(set_to_none=True)
        a_opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        w_opt.step()
        a_opt.step()
    return net, step


def mgas(channels: int, cells: int, classes: int):
    import torch
    import torch.nn.functional as F

    from budgetnas.methods.mgas.search import SearchSettings, make_optimizers, regularizers
    from budgetnas.methods.mgas.supernet import MGASSupernet

    net = MGASSupernet(channels=channels, layers=cells, in_channels=3, num_classes=classes)
    w_opt, a_opt = make_optimizers(net, SearchSettings())

    def step(x, y):
        w_opt.zero_grad(set_to_none=True)
        a_opt.zero_grad(set_to_none=True)
        r_size, r_thr = regularizers(net, range(cells), 0.0)
        loss = F.cross_entropy(net(x, search=True), y) + 1e-3 * (r_size + r_thr)
        loss.backward()
        w_opt.step()
        a_opt.step()
    return net, step


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    build = mgas if args.net == "mgas" else plain_darts
    net, step = build(args.channels, args.cells, 10)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 10, (args.batch,))
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    net.train()
    step(x, y)  # warm-up (allocator, kernels)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step(x, y)
        times.append(time.perf_counter() - start)
    params = sum(p.numel() for n, p in net.named_parameters() if not n.startswith("stage_heads"))
    print(json.dumps({"net": args.net, "channels_last": args.channels_last, "step_s": min(times),
                      "step_s_all": times, "params": params,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except Exception:  # noqa: BLE001 - lscpu missing: fall back to the platform string
        model = platform.processor() or platform.machine()
    import os
    return f"{model}, {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--doc", type=Path, default=None, help="append the results to this Markdown file")
    parser.add_argument("--child", choices=["mgas", "plain"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--channels-last", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.net = args.child
        child(args)
        return
    rows = []
    common = ["--channels", str(args.channels), "--cells", str(args.cells), "--size", str(args.size),
              "--batch", str(args.batch), "--threads", str(args.threads), "--steps", str(args.steps)]
    for channels_last in (False, True):
        for net in ("plain", "mgas"):
            cmd = [sys.executable, __file__, "--child", net, *common] + (["--channels-last"] if channels_last else [])
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if out.returncode:
                raise SystemExit(out.stderr)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    report(args, rows)


def report(args, rows: list[dict]) -> None:
    best_plain = min(r["step_s"] for r in rows if r["net"] == "plain")
    lines = [f"## One full-supernet training step: MGAS vs plain DARTS mixed-op supernet", "",
             f"- command: `.venv/bin/python benchmarks/mgas_step.py --channels {args.channels} --cells "
             f"{args.cells} --size {args.size} --batch {args.batch} --threads {args.threads} --steps {args.steps}`",
             f"- machine: {machine()} (shared with other work; {args.threads} torch threads)",
             f"- date: {datetime.date.today().isoformat()}",
             f"- step = forward, backward, weight update and architecture update (best of {args.steps} "
             "after one warm-up step); each row in its own process (peak RSS of that process)", "",
             "| network | memory format | params | step (s) | vs best plain | peak RSS (MB) |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        fmt = "channels_last" if r["channels_last"] else "contiguous"
        lines.append(f"| {'MGAS' if r['net'] == 'mgas' else 'plain DARTS'} | {fmt} | {r['params']} | "
                     f"{r['step_s']:.2f} | {r['step_s'] / best_plain:.2f}x | {r['peak_rss_mb']:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.doc:
        with open(args.doc, "a") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
