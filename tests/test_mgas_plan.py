"""The channel plan of physical pruning (derive.plan_cell, settle_width, docs/mgas.md 10.21): a
pruning keeps the size the search measured, pruning again changes nothing, and the gates still
narrow a pruned cell."""
from __future__ import annotations

import torch

from budgetnas.io import load_checkpoint, save_checkpoint
from budgetnas.methods.mgas.derive import plan_network
from budgetnas.methods.mgas.prune import commit, physical_prune
from budgetnas.methods.mgas.sizer import Sizer
from budgetnas.methods.mgas.supernet import GatedConvOp
from mgas_tiny import small_net


@torch.no_grad()
def scatter_gates(net, seed: int) -> None:
    """Random scores and thresholds at every level: ops keep different filters of a cell."""
    g = torch.Generator().manual_seed(seed)
    for cell in net.cells:
        for name in ("t_op", "t_fil"):
            getattr(cell, name).copy_(0.3 + 0.3 * torch.rand(getattr(cell, name).shape, generator=g))
        cell.t_w.copy_(0.2 * torch.rand(cell.t_w.shape, generator=g))
        tensors = [cell.alpha, cell.beta_pre0, cell.beta_pre1]
        tensors += [getattr(op, f"beta_{w}") for row in cell.ops for op in row
                    if isinstance(op, GatedConvOp) for w in op.levels()]
        for t in tensors:
            t.copy_(torch.randn(t.shape, generator=g))


def pruned(seed: int):
    net = small_net(seed)
    scatter_gates(net, seed)
    commit(net, cells=range(3))
    return net, torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)


def test_physical_pruning_keeps_the_measured_size_and_a_second_one_changes_nothing():
    sizer = Sizer("params", 8)
    for seed in range(3):
        net, opt = pruned(seed)
        measured, before = sizer(net), [cell.channels for cell in net.cells]
        physical_prune(net, plan_network(net), [opt])
        widths = [cell.channels for cell in net.cells]
        assert widths != before  # the plan narrowed cells
        assert sizer(net) == measured  # before settle_width, 10-20 % less: no gate had moved
        physical_prune(net, plan_network(net), [opt])
        assert [cell.channels for cell in net.cells] == widths and sizer(net) == measured


@torch.no_grad()
def test_the_gates_still_narrow_a_pruned_cell():
    net, opt = pruned(0)
    physical_prune(net, plan_network(net), [opt])
    cell = net.cells[0]
    width = cell.channels
    for row in cell.ops:  # every conv op of the cell loses half of its live filters
        for op in row:
            if isinstance(op, GatedConvOp):
                live = op.alive_out.nonzero().flatten()
                op.alive_out[live[: len(live) // 2]] = False
    assert plan_network(net)[0].keep.numel() < width


def test_a_checkpoint_from_before_the_width_scale_resumes(tmp_path, cli_in_process):
    out = tmp_path / "run"
    common = ["search", "mgas", "--dataset", "digits", "--subset", "100", "--batch-size", "50",
              "--target-params", "8000", "--warmup-epochs", "0", "--final-warmup-epochs", "0",
              "--max-final-epochs", "1", "--no-report", "--threads", "1", "--out", out]
    assert cli_in_process(*common, "--stop-after", "1").returncode == 0
    ckpt = load_checkpoint(out / "checkpoint.pt")
    model = ckpt["method"]["model"]
    old = [k for k in model if k.endswith("width_scale")]
    assert old  # the checkpoint holds the scales
    for key in old:
        del model[key]
    save_checkpoint(out / "checkpoint.pt", ckpt)
    proc = cli_in_process(*common, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert (out / "arch.json").is_file()

