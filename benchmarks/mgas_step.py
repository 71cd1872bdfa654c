"""Benchmark 3: one full-supernet training step (forward, backward, weight + architecture update)
of the MGAS supernet against a plain DARTS mixed-op supernet of the same size (softmax-weighted sum
of the 7 ops on every edge, written here with stock layers), in the default and channels_last
memory formats, the same plain supernet with budgetnas's depthwise conv, and NNI 3.0's DARTS
supernet (optional: a Python with the `bench` extra installed, given by --nni-python; NNI pins
old versions of some packages, so keep it in its own environment).

    .venv/bin/python benchmarks/mgas_step.py [--channels 16 --cells 8 --size 32 --batch 64
                                              --threads 2 --steps 2 --rounds 3 --nni-python PY
                                              --doc FILE]

Each (network, format) runs in its own subprocess so its peak RSS is its own. With --rounds R the
whole list of rows runs R times, interleaved, and the table reports each row's median over the
rounds (and the range): a transient load on the machine then shows as a spread instead of moving
one row's number.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def plain_darts(channels: int, cells: int, classes: int, fast_depthwise: bool = False):
    """First-order DARTS supernet as commonly written: shared normal/reduce alphas, softmax mixed
    ops, stock `nn.Conv2d` layers (or, with `fast_depthwise`, budgetnas's depthwise conv)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from budgetnas.layers import DepthwiseConv2d

    def dw(c: int, k: int, stride: int, pad: int, dilation: int = 1) -> nn.Module:
        if fast_depthwise:
            return DepthwiseConv2d(c, k, stride, pad, dilation)
        return nn.Conv2d(c, c, k, stride, pad, dilation, groups=c, bias=False)

    def relu_conv_bn(c_in: int, c_out: int) -> nn.Module:
        return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    class FactorizedReduce(nn.Module):
        def __init__(self, c_in: int, c_out: int):
            super().__init__()
            self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
            self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
            self.bn = nn.BatchNorm2d(c_out)

        def forward(self, x):
            x = F.relu(x)
            return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))

    def make(name: str, c: int, stride: int) -> nn.Module:
        if name == "skip_connect":
            return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
        k = int(name[-1])
        if name.startswith("sep"):
            return nn.Sequential(nn.ReLU(), dw(c, k, stride, k // 2), nn.Conv2d(c, c, 1, bias=False),
                                 nn.BatchNorm2d(c), nn.ReLU(), dw(c, k, 1, k // 2),
                                 nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))
        if name.startswith("dil"):
            return nn.Sequential(nn.ReLU(), dw(c, k, stride, k - 1, 2), nn.Conv2d(c, c, 1, bias=False),
                                 nn.BatchNorm2d(c))
        pool = nn.AvgPool2d(3, stride, 1, count_include_pad=False) if name.startswith("avg") \
            else nn.MaxPool2d(3, stride, 1)
        return nn.Sequential(pool, nn.BatchNorm2d(c, affine=False))

    names = ("skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
             "avg_pool_3x3", "max_pool_3x3")

    class Cell(nn.Module):
        def __init__(self, c_pp, c_p, c, reduction, reduction_prev):
            super().__init__()
            self.reduction = reduction
            self.pre0 = FactorizedReduce(c_pp, c) if reduction_prev else relu_conv_bn(c_pp, c)
            self.pre1 = relu_conv_bn(c_p, c)
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
    return net, darts_step(net, [net.alpha_normal, net.alpha_reduce])


def darts_step(net, arch):
    """First-order DARTS update on one batch: SGD on the weights, Adam on the alphas."""
    import torch
    import torch.nn.functional as F

    ids = {id(a) for a in arch}
    weights = [p for p in net.parameters() if id(p) not in ids]
    w_opt = torch.optim.SGD(weights, lr=0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(arch, lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)

    def step(x, y):
        w_opt.zero_grad(set_to_none=True)
        a_opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        w_opt.step()
        a_opt.step()
    return step


def nni_darts(channels: int, cells: int, classes: int):
    """NNI 3.0's DARTS model space turned into its differentiable supernet by NNI's DARTS strategy
    (needs the `bench` extra: nni + pytorch-lightning)."""
    import warnings

    warnings.filterwarnings("ignore")
    from nni.nas.hub.pytorch import DARTS as DartsSpace
    from nni.nas.oneshot.pytorch.strategy import DARTS as DartsStrategy

    strategy = DartsStrategy()
    net = strategy.mutate_model(DartsSpace(width=channels, num_cells=cells, dataset="cifar"))
    if classes != 10:
        raise SystemExit("the NNI variant is built for CIFAR-10 (10 classes)")
    arch = list(strategy._arch_parameters.values())
    return net, darts_step(net, arch)


def mgas(channels: int, cells: int, classes: int, compiled: bool = False):
    """The supernet and its search step; `compiled`: the forward through `torch.compile`."""
    import torch
    import torch.nn.functional as F

    from budgetnas.methods.mgas.regularizers import make_optimizers, regularizers
    from budgetnas.methods.mgas.settings import SearchSettings
    from budgetnas.methods.mgas.supernet import MGASSupernet

    net = MGASSupernet(channels=channels, layers=cells, in_channels=3, num_classes=classes)
    w_opt, a_opt = make_optimizers(net, SearchSettings())
    forward = torch.compile(net) if compiled else net

    def step(x, y):
        w_opt.zero_grad(set_to_none=True)
        a_opt.zero_grad(set_to_none=True)
        r_size, r_thr = regularizers(net, range(cells), 0.0)
        loss = F.cross_entropy(forward(x, search=True), y) + 1e-3 * (r_size + r_thr)
        loss.backward()
        w_opt.step()
        a_opt.step()
        return loss.detach()
    return net, step


BUILDERS = {"mgas": mgas, "plain": plain_darts, "plain_fast": lambda c, n, k: plain_darts(c, n, k, True),
            "nni": nni_darts}
LABELS = {"mgas": "MGAS (as the search runs it)", "plain": "plain DARTS, stock layers",
          "plain_fast": "plain DARTS + budgetnas depthwise conv", "nni": "NNI 3.0 DARTS supernet"}


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net, step = BUILDERS[args.net](args.channels, args.cells, 10)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 10, (args.batch,))
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    net.train()
    step(x, y)  # warm-up (allocator, kernels)
    times, cpu = [], []
    for _ in range(args.steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        step(x, y)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    params = sum(p.numel() for n, p in net.named_parameters()
                 if not n.startswith("stage_heads") and "alpha" not in n)
    print(json.dumps({"net": args.net, "channels_last": args.channels_last, "step_s": min(times),
                      "step_s_all": times, "cpu_s": min(cpu), "params": params,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except Exception:  # noqa: BLE001 - lscpu missing: fall back to the platform string
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every row this many times, interleaved; report medians")
    parser.add_argument("--nni-python", default=None,
                        help="a Python with the bench extra (nni, pytorch-lightning) for the NNI rows")
    parser.add_argument("--doc", type=Path, default=None, help="append the results to this Markdown file")
    parser.add_argument("--child", choices=sorted(BUILDERS), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--channels-last", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.net = args.child
        child(args)
        return
    common = ["--channels", str(args.channels), "--cells", str(args.cells), "--size", str(args.size),
              "--batch", str(args.batch), "--threads", str(args.threads), "--steps", str(args.steps)]
    runs = [("plain", False, sys.executable), ("plain", True, sys.executable),
            ("plain_fast", True, sys.executable), ("mgas", False, sys.executable)]
    if args.nni_python:
        runs[2:2] = [("nni", False, args.nni_python), ("nni", True, args.nni_python)]
    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    for rnd in range(args.rounds):
        for net, channels_last, python in runs:
            cmd = [python, __file__, "--child", net, *common] + (["--channels-last"] if channels_last else [])
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
            if out.returncode:
                raise SystemExit(out.stderr[-3000:])
            rows.append({**json.loads(out.stdout.strip().splitlines()[-1]), "round": rnd})
            print(rows[-1], flush=True)
    rows = merge_rounds(rows)
    report(args, rows)


def merge_rounds(rows: list[dict]) -> list[dict]:
    """One row per (network, format): the median over rounds of step, CPU time and peak RSS,
    with the range of the step time."""
    merged: dict[tuple, dict] = {}
    for r in rows:
        merged.setdefault((r["net"], r["channels_last"]), {**r, "runs": []})["runs"].append(r)
    for m in merged.values():
        for key in ("step_s", "cpu_s", "peak_rss_mb"):
            m[key] = statistics.median(r[key] for r in m["runs"])
        m["step_range"] = (min(r["step_s"] for r in m["runs"]), max(r["step_s"] for r in m["runs"]))
    return list(merged.values())


def report(args, rows: list[dict]) -> None:
    best_plain = min(r["step_s"] for r in rows if r["net"] == "plain")
    nni = [r["step_s"] for r in rows if r["net"] == "nni"]
    lines = ["## One full-supernet training step: MGAS vs plain DARTS and NNI supernets", "",
             f"- command: `.venv/bin/python benchmarks/mgas_step.py --channels {args.channels} --cells "
             f"{args.cells} --size {args.size} --batch {args.batch} --threads {args.threads} --steps "
             f"{args.steps} --rounds {args.rounds}" + (" --nni-python NNI_VENV/bin/python" if nni else "") + "`",
             f"- machine: {machine()} ({args.threads} torch threads)",
             f"- date: {datetime.date.today().isoformat()}",
             f"- step = forward, backward, weight update and architecture update (best of {args.steps} "
             "after one warm-up step); each row in its own process (peak RSS of that process); "
             "CPU = process CPU time of that step"
             + (f"; median over {args.rounds} interleaved rounds, range in brackets" if args.rounds > 1 else ""),
             "",
             "| network | memory format | params | step (s) | CPU (s) | vs best plain (stock) |"
             + (" vs best NNI |" if nni else "") + " peak RSS (MB) |",
             "|---|---|---:|---:|---:|---:|" + ("---:|" if nni else "") + "---:|"]
    for r in rows:
        fmt = "channels_last" if r["channels_last"] else "contiguous"
        if r["net"] == "mgas":
            fmt = "channels_last (inside the model)"
        vs_nni = f" {r['step_s'] / min(nni):.2f}x |" if nni else ""
        lo, hi = r["step_range"]
        spread = f" [{lo:.2f}-{hi:.2f}]" if args.rounds > 1 else ""
        lines.append(f"| {LABELS[r['net']]} | {fmt} | {r['params']} | {r['step_s']:.2f}{spread} | {r['cpu_s']:.2f} | "
                     f"{r['step_s'] / best_plain:.2f}x |{vs_nni} {r['peak_rss_mb']:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.doc:
        with open(args.doc, "a") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
