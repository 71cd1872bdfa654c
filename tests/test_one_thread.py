"""One thread: oneDNN's strided 1x1 backward kernel for AVX2 CPUs writes past its buffer with one
thread on channels_last inputs of 2 to 6 channels (heap corruption, SIGABRT/SIGSEGV with torch
2.14.1). budgetnas computes every strided 1x1 conv as the stride-1 conv of every other pixel
(`layers.StridedPointwise`); these tests run it where the library kernel breaks (oneDNN limited to
AVX2, one thread, glibc's heap checks on) in a subprocess, and train a network MGAS found."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from budgetnas.layers import FactorizedReduce, StridedPointwise

ROOT = Path(__file__).resolve().parents[1]
# Where the library kernel corrupts the heap: oneDNN's AVX2 code path, one thread.
FRAGILE = {"ONEDNN_MAX_CPU_ISA": "AVX2", "MALLOC_CHECK_": "3", "OMP_NUM_THREADS": "1"}
LOOP = """
import sys, torch
from budgetnas.layers import StridedPointwise
torch.set_num_threads(1)
torch.manual_seed(0)
for c_in in (2, 3, 4, 6):
    conv = StridedPointwise(c_in, 4, 2)
    for _ in range(60):
        x = torch.randn(64, c_in, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_()
        conv(torch.relu(x)).square().mean().backward()
print("ok")
"""


def run_python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env}, cwd=ROOT)


def test_strided_pointwise_survives_where_the_library_kernel_corrupts_the_heap():
    done = run_python(LOOP, FRAGILE)
    assert done.returncode == 0 and done.stdout.strip() == "ok", (done.returncode, done.stderr[-2000:])


def test_strided_pointwise_computes_the_strided_conv_exactly():
    torch.manual_seed(0)
    conv = StridedPointwise(4, 6, 2)
    for size in (7, 8):  # odd sizes too: the last row and column are read
        x = torch.randn(3, 4, size, size).contiguous(memory_format=torch.channels_last)
        a, b = x.clone().requires_grad_(), x.clone().contiguous().requires_grad_()
        out = conv(a)
        ref = F.conv2d(b, conv.weight, None, 2)
        torch.testing.assert_close(out, ref)
        grad = torch.randn_like(ref)
        (wa,) = torch.autograd.grad(out, conv.weight, grad, retain_graph=True)
        out.backward(grad)
        ref.backward(grad)
        torch.testing.assert_close(a.grad, b.grad)
        torch.testing.assert_close(wa, torch.autograd.grad(F.conv2d(b.detach(), conv.weight, None, 2),
                                                           conv.weight, grad)[0])
    assert [n for n, _ in FactorizedReduce(4, 4).named_parameters()][:2] == ["conv_1.weight", "conv_2.weight"]


def test_an_mgas_found_network_searches_and_trains_with_one_thread(tmp_path):
    env = {**FRAGILE, "PYTHONPATH": str(ROOT / "src")}
    search = subprocess.run(
        [sys.executable, "-m", "budgetnas", "search", "mgas", "--dataset", "digits", "--subset", "200",
         "--channels", "2", "--batch-size", "50", "--warmup-epochs", "0", "--max-stage-epochs", "2",
         "--final-warmup-epochs", "0", "--max-final-epochs", "2", "--threads", "1", "--no-report",
         "--out", str(tmp_path / "search")], capture_output=True, text=True, timeout=900, env={**os.environ, **env})
    assert search.returncode == 0, search.stderr[-2000:]
    arch = json.loads((tmp_path / "search" / "arch.json").read_text())
    assert any(c["reduction"] for c in arch["genotype"]["cells"])  # it has stride-2 1x1 convs
    train = subprocess.run(
        [sys.executable, "-m", "budgetnas", "train", str(tmp_path / "search"), "--epochs", "1", "--threads", "1",
         "--subset", "300", "--out", str(tmp_path / "train")], capture_output=True, text=True, timeout=900,
        env={**os.environ, **env})
    assert train.returncode == 0, train.stderr[-2000:]
    assert 0.0 <= json.loads((tmp_path / "train" / "metrics.json").read_text())["test_acc"] <= 1.0
