"""MGAS: gates, pruning, regrowth, node protection, target control, resume, DDP, bad targets."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from budgetnas import build_model, load_arch
from budgetnas.cost import count_nonzero
from budgetnas.methods.mgas.options import MGASOptions
from budgetnas.methods.mgas.derive import plan_network
from budgetnas.methods.mgas.gates import gated_weight, magnitude_mask, score_gate, step, surrogate
from budgetnas.methods.mgas.prune import commit, physical_prune, regrow
from budgetnas.methods.mgas.sizer import Sizer, minimum_arch
from budgetnas.methods.mgas.supernet import GatedConvOp, MGASSupernet, SuperCell
from budgetnas.runs import run_method
from budgetnas.spaces.darts import OPS
from budgetnas.testing import kill_and_resume

ROOT = Path(__file__).resolve().parents[1]
# A few-second search: tiny preset on 400 digits, short stages; no report (tests/test_report.py
# covers it).
FAST = dict(dataset="digits", subset=200, preset="tiny", channels=2, batch_size=50, warmup_epochs=0,
            max_stage_epochs=2, final_warmup_epochs=0, max_final_epochs=2, seed=0, threads=1)


def fast_flags(**extra) -> list[str]:
    opts = {**FAST, **extra}
    flags = ["--no-report"]
    for key, value in opts.items():
        flags += [f"--{key.replace('_', '-')}", str(value)]
    return flags


def small_net(seed: int = 0) -> MGASSupernet:
    torch.manual_seed(seed)
    return MGASSupernet(channels=4, layers=3, in_channels=1, num_classes=10)


# ------------------------------------------------------------------ STE
def test_ste_forward_and_backward_values():
    u = torch.tensor([-1.5, -0.7, -0.4, -0.1, 0.0, 0.1, 0.3, 0.4, 0.5, 1.0, 1.2], requires_grad=True)
    out = step(u)
    assert out.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    out.sum().backward()
    expected = [0.0, 0.4, 0.4, 1.6, 2.0, 1.6, 0.8, 0.4, 0.4, 0.4, 0.0]
    assert torch.allclose(u.grad, torch.tensor(expected), atol=1e-6)
    assert torch.allclose(surrogate(u.detach()), torch.tensor(expected), atol=1e-6)


def test_fused_gates_match_the_formula():
    torch.manual_seed(1)
    beta, t = torch.randn(12, requires_grad=True), torch.tensor(0.45, requires_grad=True)
    coeff = torch.randn(12)
    (score_gate(beta, t) * coeff).sum().backward()
    beta2, t2 = beta.detach().clone().requires_grad_(), t.detach().clone().requires_grad_()
    s = torch.sigmoid(beta2)
    (s * step(s - t2) * coeff).sum().backward()  # gate = sigmoid * step(sigmoid - t)
    assert torch.allclose(beta.grad, beta2.grad) and torch.allclose(t.grad, t2.grad)

    w, tw = torch.randn(6, 3, 3, 3, requires_grad=True), torch.tensor(0.6, requires_grad=True)
    mask = torch.rand(6, 3, 3, 3) > 0.3
    r = torch.randn(6, 3, 3, 3)
    (gated_weight(w, tw, mask) * r).sum().backward()
    w2, tw2 = w.detach().clone().requires_grad_(), tw.detach().clone().requires_grad_()
    (w2 * mask * magnitude_mask(w2, tw2) * r).sum().backward()
    assert torch.allclose(w.grad, w2.grad) and torch.allclose(tw.grad, tw2.grad)


# ------------------------------------------------------------------ physical pruning
def _randomize_bn(net: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, buf in net.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=g) + 0.5)
        for name, p in net.named_parameters():
            if name.endswith(("beta_mid", "beta_out", "beta_pre0", "beta_pre1", "alpha")):
                p.copy_(torch.randn(p.shape, generator=g))


def test_physical_pruning_keeps_the_function_and_momentum():
    net = small_net()
    _randomize_bn(net)
    with torch.no_grad():
        for c, cell in enumerate(net.cells):
            dead = torch.tensor([0, 1]) if c == 0 else torch.tensor([2, 3])
            if cell.reduction:  # FactorizedReduce skips mix channels: remove them (dead stay 0)
                for e, (src, _) in enumerate(cell.edges):
                    if src < 2:
                        cell.alive_op[e, OPS.index("skip_connect")] = False
            cell.alive_pre0[dead] = False
            cell.alive_pre1[dead] = False
            for row in cell.ops:
                for op in row:
                    if isinstance(op, GatedConvOp):
                        op.alive_out[dead] = False
                        if op.kind == "sep":
                            op.alive_mid[1] = False
    net.eval()
    x = torch.randn(5, 1, 8, 8)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    net(x, search=True).mean().backward()  # some momentum to carry over
    opt.step()
    before = net(x, search=True)
    dense = sum(p.numel() for p in net.parameters())
    physical_prune(net, plan_network(net), [opt])
    after = net(x, search=True)
    assert sum(p.numel() for p in net.parameters()) < dense
    assert [c.channels for c in net.cells] == [2, 6, 14]
    assert torch.allclose(before, after, atol=1e-5), (before - after).abs().max()
    for p in net.parameters():
        if "momentum_buffer" in opt.state.get(p, {}):
            assert opt.state[p]["momentum_buffer"].shape == p.shape
    net.train()
    net(x, search=True).sum().backward()  # the rebuilt optimizer state steps the sliced tensors
    opt.step()


# ------------------------------------------------------------------ regrow and node protection
def test_factorized_reduce_runs_with_one_half_pruned_away():
    """Physical pruning slices a factorized reduce by the kept channels; when all of them lie in
    one half, the other half's conv has no output channel and is skipped."""
    from budgetnas.methods.mgas.supernet import BN, FactorizedReduce

    fr = FactorizedReduce(4, 4)
    fr.conv_1.weight = torch.nn.Parameter(fr.conv_1.weight.detach()[:0])
    fr.bn = BN(2)
    assert fr(torch.randn(2, 4, 8, 8)).shape == (2, 2, 4, 4)


def test_regrow_restores_an_op():
    net = small_net()
    cell: SuperCell = net.cells[1]
    e, o = 3, OPS.index("sep_conv_3x3")
    op = cell.ops[e][o]
    with torch.no_grad():
        cell.alpha[e, o] = -2.5
        cell.alive_op[e, o] = False
        op.alive_out[:3] = False
        op.pw1.mask.zero_()
        op.beta_out.fill_(-4.0)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    grown = regrow(net, [(1, e, o)], ratio=1.0, alpha_momentum={}, generator=torch.Generator().manual_seed(0),
                   optimizers=[opt])
    assert grown == [(1, e, o)]
    assert bool(cell.alive_op[e, o]) and bool(op.alive_out.all()) and bool(op.pw1.mask.all())
    assert float(op.beta_out.abs().sum()) == 0.0
    assert float(cell.alpha[e, o]) == pytest.approx(-2.5)  # its old alpha back
    out = net(torch.randn(2, 1, 8, 8), search=True)
    assert torch.isfinite(out).all()


def test_every_node_keeps_its_strongest_op():
    net = small_net()
    cell: SuperCell = net.cells[0]
    with torch.no_grad():
        cell.alpha.copy_(torch.randn(cell.alpha.shape, generator=torch.Generator().manual_seed(5)))
        cell.t_op.fill_(0.99)  # every op gate closed
    commit(net, cells=range(1))
    for node in range(2, cell.steps + 2):
        rows = [e for e, (_, dst) in enumerate(cell.edges) if dst == node]
        alive = cell.alive_op[rows]
        assert int(alive.sum()) == 1
        best = int(torch.argmax(cell.alpha.detach()[rows]))
        assert bool(alive.flatten()[best])
    assert torch.isfinite(net(torch.randn(2, 1, 8, 8), search=True)).all()


# ------------------------------------------------------------------ target control
def _search(tmp_path: Path, name: str, **extra) -> Path:
    opts = MGASOptions(**{**FAST, "out": tmp_path / name, "report": False, **extra})
    run_method("mgas", opts, progress=False)
    assert not (opts.out / ".lock").exists()  # released when the run ends, not at exit
    return opts.out


def test_targets_are_hit_within_3_percent(tmp_path):
    net = MGASSupernet(channels=2, layers=3, in_channels=1, num_classes=10)
    largest = Sizer("params", 8)(net)
    smallest = count_nonzero(build_model(minimum_arch(net, 8)))
    for share in (0.85, 0.6, 0.35):
        target = int(smallest + share * (largest - smallest))
        out = _search(tmp_path, f"t{share}", target_params=target)
        summary = json.loads((out / "summary.json").read_text())
        model = build_model(load_arch(out / "arch.json"))
        assert summary["params_nonzero"] == count_nonzero(model)
        assert (summary["channels"], summary["channels_from"]) == (2, "--channels")  # never widened
        assert abs(summary["params_nonzero"] / target - 1) <= 0.03, (target, summary["params_nonzero"])
        log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        assert {"stage", "lambda", "op_ratio", "filter_ratio", "weight_ratio", "size", "val_acc",
                "seconds", "peak_memory_mb"} <= log[0].keys()


def test_macs_target(tmp_path):
    net = MGASSupernet(channels=2, layers=3, in_channels=1, num_classes=10)
    largest = Sizer("macs", 8)(net)
    out = _search(tmp_path, "macs", target_macs=int(0.6 * largest), stages=1)
    summary = json.loads((out / "summary.json").read_text())
    assert abs(summary["macs"] / (0.6 * largest) - 1) <= 0.03


# ------------------------------------------------------------------ resume
def test_kill_and_resume_gives_the_same_arch(tmp_path):
    args = ["search", "mgas", *fast_flags(target_params=12000)]
    reference = tmp_path / "reference"
    subprocess.run([sys.executable, "-m", "budgetnas", *args, "--out", str(reference)], cwd=ROOT,
                   check=True, capture_output=True, env={**_env()})
    # SIGKILL inside the 9th atomic write (a checkpoint mid-search), resume until finished.
    outcome = kill_and_resume(args, tmp_path / "killed", "write:7", files=["arch.json", "arch.safetensors"],
                              ignore={"provenance"}, reference=reference, cwd=ROOT)
    assert outcome.killed and outcome.resumes >= 1
    assert outcome.equal, outcome.differences
    # SIGKILL between two search steps of the second epoch (no write in flight).
    outcome = kill_and_resume(args, tmp_path / "killed_step", "at:search-step:6",
                              files=["arch.json", "arch.safetensors"], ignore={"provenance"},
                              reference=reference, cwd=ROOT)
    assert outcome.killed and outcome.resumes >= 1
    assert outcome.equal, outcome.differences


def _env() -> dict:
    import os
    return {**os.environ, "OMP_NUM_THREADS": "1"}


# ------------------------------------------------------------------ DDP
@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun not installed")
def test_two_process_search_agrees(tmp_path):
    out = tmp_path / "ddp"
    torchrun = str(Path(sys.executable).parent / "torchrun")
    proc = subprocess.run([torchrun, "--nproc_per_node=2", "--master_port=29533", "-m", "budgetnas",
                           "search", "mgas", *fast_flags(target_params=12000),
                           "--out", str(out), "--device", "cpu"],
                          cwd=ROOT, capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    sums = summary["rank_arch_checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]
    assert summary["world_size"] == 2
    load_arch(out / "arch.json")


# ------------------------------------------------------------------ bad targets
@pytest.mark.parametrize("flag,value", [("--target-params", "100"), ("--target-params", "10000000"),
                                        ("--target-macs", "10")])
def test_impossible_targets_exit_2(tmp_path, cli_in_process, flag, value):
    proc = cli_in_process("search", "mgas", "--subset", "100", flag, value, "--out", str(tmp_path / "bad"))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert flag in proc.stderr and "fix:" in proc.stderr


# ------------------------------------------------------------------ presets
@pytest.mark.parametrize("preset,cells,channels", [("darts8_c24", 8, 24), ("darts14_c44", 14, 44)])
def test_published_presets_build_the_authors_supernets(preset, cells, channels):
    from budgetnas.methods.mgas.presets import PRESETS

    settings = PRESETS[preset]
    assert (settings["layers"], settings["channels"]) == (cells, channels)
    net = MGASSupernet(channels=channels, layers=cells, in_channels=3, num_classes=10)
    assert net.reduction_cells == [cells // 3, 2 * cells // 3]
    assert [c.channels for c in net.cells][-1] == 4 * channels
    # Every op of every edge is in the supernet; the authors' released networks (0.70M / 2.29M
    # dense params) are pruned from it, so it must be larger than them.
    assert sum(int(c.alive_op.sum()) for c in net.cells) == cells * 14 * len(OPS)
    published = {"darts8_c24": 0.70e6, "darts14_c44": 2.29e6}[preset]
    assert Sizer("params", 32)(net) > 3 * published
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_darts8_c24_preset_runs_a_search_epoch(tmp_path):
    out = _search(tmp_path, "p8", preset="darts8_c24", dataset="synthetic", subset=None, channels=None,
                  batch_size=None, warmup_epochs=None, max_stage_epochs=None, final_warmup_epochs=None,
                  max_final_epochs=None, stop_after=1)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["stage"] == "stage1" and log[0]["kind"] == "warmup"
    assert (out / "checkpoint.pt").exists() and not (out / "summary.json").exists()


def test_a_first_stage_option_without_stages_is_refused_with_exit_2(tmp_path, cli):
    result = cli("search", "mgas", "--dataset", "synthetic", "--first-stage", "train", "--no-report",
                 "--out", tmp_path / "one")
    assert result.returncode == 2, result.stderr
    assert "--first-stage" in result.stderr and "--stages 3" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "one").exists()


def test_a_stage_plan_without_stages_is_refused_with_exit_2(tmp_path, cli):
    result = cli("search", "mgas", "--dataset", "synthetic", "--stage-plan", "late", "--no-report",
                 "--out", tmp_path / "one")
    assert result.returncode == 2, result.stderr
    assert "--stage-plan" in result.stderr and "--stages 3" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "one").exists()


def test_a_rewinding_brake_without_a_brake_is_refused_with_exit_2(tmp_path, cli):
    result = cli("search", "mgas", "--dataset", "synthetic", "--brake", "rewind", "--lambda-schedule", "paper",
                 "--no-report", "--out", tmp_path / "one")
    assert result.returncode == 2, result.stderr
    assert "--brake" in result.stderr and "--brake-every" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "one").exists()


def test_nan_loss_stops_the_search_with_exit_2(tmp_path, cli):
    result = cli("search", "mgas", "--dataset", "synthetic", "--channels", "2", "--lr-weights", "1e30",
                 "--target-params", "3000", "--no-report", "--out", tmp_path / "nan")
    assert result.returncode == 2, result.stderr
    assert "loss became" in result.stderr and "epoch 1, step" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "nan" / "checkpoint.pt").exists()


def test_latency_target_is_hit_by_the_table_estimate(tmp_path, monkeypatch):
    """--target-latency-ms: the search steers by a per-op latency table measured on this device
    (cached), lands within 3 % of the target by that table, and reports the measured latency."""
    monkeypatch.setenv("BUDGETNAS_CACHE", str(tmp_path / "cache"))
    from budgetnas.cost.darts import darts_latency, latency_table

    net = MGASSupernet(channels=2, layers=3, in_channels=1, num_classes=10)
    table = latency_table("cpu", threads=1)
    largest = Sizer("latency", 8, table)(net)
    smallest = darts_latency(table, minimum_arch(net, 8))
    table.save()
    target = round(smallest + 0.5 * (largest - smallest), 3)
    out = _search(tmp_path, "lat", target_latency_ms=target, stages=1)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target"] == {"latency": target}
    assert abs(summary["latency_ms_table"] / target - 1) <= 0.03
    assert summary["latency_ms_measured"] > 0 and list((tmp_path / "cache").glob("darts_latency-*.json"))


def test_held_out_accuracy_does_not_depend_on_stale_batchnorm_statistics():
    """After a commit the running statistics belong to the search-mode network; the held-out
    accuracy is judged with statistics recalibrated for the committed one, and the search's own
    statistics are left as they were."""
    from budgetnas.data import load_dataset
    from budgetnas.methods.mgas.search import MGASSearch
    from budgetnas.methods.mgas.settings import settings_from

    opts = MGASOptions(**FAST)
    search = MGASSearch(load_dataset("digits", subset=200), settings_from(opts), target={"params": 20000},
                        seed=0, device=torch.device("cpu"))
    search.one_epoch()
    phase = search.phases[-1]
    logits = search.held_out_logits(phase)
    stale = {k: v.clone() for k, v in search.net.state_dict().items()}
    for name, buffer in search.net.named_buffers():
        if name.endswith("running_mean"):
            buffer.add_(torch.randn_like(buffer) * 3)
        elif name.endswith("running_var"):
            buffer.mul_(10)
    corrupted = {k: v.clone() for k, v in search.net.state_dict().items()}
    torch.testing.assert_close(search.held_out_logits(phase), logits)
    assert all(torch.equal(v, corrupted[k]) for k, v in search.net.state_dict().items())
    assert any(not torch.equal(stale[k], corrupted[k]) for k in stale)
