"""The CUDA path (skipped without a GPU; `benchmarks/gpu_check.py` runs these on a GPU machine),
and the GPU check's CPU dry run."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from budgetnas import build_model, load_arch
from budgetnas.depthwise import _DepthwiseConv

ROOT = Path(__file__).resolve().parents[1]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("kernel,stride,dilation", [(3, 1, 1), (5, 2, 1), (3, 1, 2), (5, 2, 2)])
def test_depthwise_backward_matches_autograd_on_cuda(kernel, stride, dilation):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 8, 16, 16, generator=gen).cuda().contiguous(memory_format=torch.channels_last)
    w = torch.randn(8, 1, kernel, kernel, generator=gen).cuda()
    pad = dilation * (kernel - 1) // 2
    a = [x.clone().requires_grad_(), w.clone().requires_grad_()]
    b = [x.clone().requires_grad_(), w.clone().requires_grad_()]
    _DepthwiseConv.apply(a[0], a[1], stride, pad, dilation).square().sum().backward()
    F.conv2d(b[0], b[1], None, stride, pad, dilation, 8).square().sum().backward()
    for p, q in zip(a, b):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-3, rtol=1e-3)


@pytest.mark.cuda
@needs_cuda
def test_mgas_search_step_on_cuda():
    from budgetnas.methods.mgas.regularizers import make_optimizers, regularizers
    from budgetnas.methods.mgas.settings import SearchSettings
    from budgetnas.methods.mgas.supernet import MGASSupernet

    torch.manual_seed(0)
    net = MGASSupernet(channels=4, layers=3, in_channels=3, num_classes=10).cuda()
    w_opt, a_opt = make_optimizers(net, SearchSettings())
    x, y = torch.randn(8, 3, 16, 16, device="cuda"), torch.randint(0, 10, (8,), device="cuda")
    r_size, r_thr = regularizers(net, range(3), 0.0)
    loss = F.cross_entropy(net(x, search=True), y) + 1e-3 * (r_size + r_thr)
    loss.backward()
    w_opt.step()
    a_opt.step()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p).all() for p in net.parameters())


@pytest.mark.cuda
@needs_cuda
def test_bf16_autocast_forward_matches_fp32_closely():
    model = build_model(load_arch(ROOT / "examples" / "small_digits.json")).cuda().eval()
    x = torch.randn(16, 1, 8, 8, device="cuda")
    with torch.no_grad():
        full = model(x)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            half = model(x).float()
    assert (full.argmax(1) == half.argmax(1)).float().mean() >= 0.9


def test_gpu_check_dry_run_on_cpu(tmp_path):
    page = tmp_path / "bench_gpu.md"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(page)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = page.read_text()
    for step in ("CUDA-marked tests", "bf16 vs fp32 training", "depthwise backward vs autograd",
                 "MGAS step vs plain DARTS supernet", "2-process DDP", "commands end to end"):
        assert f"| {step} | yes |" in text, text


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, needs_cuda])])
def test_an_mgas_export_from_any_device_holds_cpu_masks_and_builds(device):
    """The export of a supernet on the GPU once kept its weight masks on the GPU, and building the
    exported network (on the CPU) then failed with a device mismatch at the end of every search."""
    from budgetnas.methods.mgas.derive import export_arch, plan_network
    from budgetnas.methods.mgas.supernet import GatedConvOp, MGASSupernet

    torch.manual_seed(0)
    net = MGASSupernet(channels=4, layers=3, in_channels=3, num_classes=10).to(device)
    op = next(op for op in net.cells[0].ops[0] if isinstance(op, GatedConvOp))
    with torch.no_grad():
        op.pw1.mask[0].zero_()  # one pruned filter row: the export must carry a mask
    arch = export_arch(net, plan_network(net), input_size=16)
    assert arch.masks and all(m.device.type == "cpu" for m in arch.masks.values())
    model = build_model(arch)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)
