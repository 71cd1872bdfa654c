"""The elastic supernet: subnets extracted with their weights compute what the supernet computes,
the sandwich step trains both ends of the space, channel sorting keeps the largest network's
function, and `budgetnas search supernet` resumes to identical weights after a kill."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from budgetnas.data import load_dataset
from budgetnas.methods.supernet.elastic import ElasticNetwork
from budgetnas.methods.supernet.files import load_supernet
from budgetnas.methods.supernet.subnets import calibrate_bn, extract, genotype_of, random_subnet, subnet_of
from budgetnas.methods.supernet.training import TrainSettings, make_optimizer, sort_channels, train_epoch
from budgetnas.errors import UserError
from budgetnas.spaces.mbconv import tiny_config

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = [8, 12, 16]
SUPERNET = ["search", "supernet", "--dataset", "synthetic", "--subset", "100", "--epochs", "2",
            "--batch-size", "32", "--calibration-images", "64", "--no-report", "--threads", "1"]


def small_net(seed: int = 0, classes: int = 10, channels: int = 1) -> ElasticNetwork:
    torch.manual_seed(seed)
    config = {**tiny_config(channels, classes, 8), "stem_channels": 8, "head_channels": 32}
    net = ElasticNetwork(config, WIDTHS)
    with torch.no_grad():  # weights away from their initial values, so every part matters
        for name, p in net.named_parameters():
            if "kernel_transforms" in name or p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return net


def test_extracted_subnets_compute_the_supernets_logits():
    net = small_net()
    rng = np.random.default_rng(0)
    calibration = [torch.randn(16, 1, 8, 8) for _ in range(3)]
    x = torch.randn(6, 1, 8, 8)
    subnets = [net.largest(), net.smallest()] + [random_subnet(rng, WIDTHS, net.choices) for _ in range(4)]
    for subnet in subnets:
        genotype = genotype_of(subnet, WIDTHS)
        net.set_active(subnet)
        expected = calibrate_bn(net, calibration)(x)
        copied = extract(net, genotype).eval()  # the statistics the supernet was just calibrated to
        assert torch.allclose(copied(x), expected, atol=1e-5)
        recalibrated = calibrate_bn(extract(net, genotype), calibration)
        assert torch.allclose(recalibrated(x), expected, atol=1e-5)
        assert subnet_of(genotype, net) == subnet


def test_networks_outside_the_supernet_are_refused():
    net = small_net()
    genotype = genotype_of(net.largest(), WIDTHS)
    genotype["stages"][1]["layers"][0]["kernel"] = 9
    with pytest.raises(UserError, match="not in the supernet"):
        extract(net, genotype)
    genotype = genotype_of(net.smallest(), WIDTHS)
    genotype["stages"][0]["layers"] = genotype["stages"][0]["layers"][:1]
    with pytest.raises(UserError, match="depths"):
        extract(net, genotype)


def test_sorting_channels_keeps_the_largest_network_and_puts_important_channels_first():
    net = small_net().eval()
    x = torch.randn(4, 1, 8, 8)
    before = net(x)
    optimizer, _ = make_optimizer(net, TrainSettings(), 10)
    sort_channels(net, optimizer)
    assert torch.allclose(net(x), before, atol=1e-5)
    for layer in net.layers():
        importance = layer.project[0].weight.abs().sum(dim=(0, 2, 3))
        assert bool((importance[:-1] >= importance[1:]).all())


def test_sandwich_training_lowers_the_losses_of_the_largest_and_smallest_subnets():
    torch.set_num_threads(1)
    ds = load_dataset("synthetic", subset=120)
    net = small_net(classes=ds.num_classes, channels=ds.channels).to(memory_format=torch.channels_last)
    s = TrainSettings(epochs=5, batch_size=32, lr=0.2, random_subnets=1, augment=False, seed=0)
    optimizer, scheduler = make_optimizer(net, s, 5 * 3)
    rows = [train_epoch(net, optimizer, scheduler, ds, epoch, s) for epoch in range(s.epochs)]
    largest = [r["loss_largest"] / r["n"] for r in rows]
    smallest = [r["ce_smallest"] / r["n"] for r in rows]
    assert largest[-1] < 0.7 * largest[0] and smallest[-1] < 0.7 * smallest[0], (largest, smallest)


def test_progressive_shrinking_starts_with_the_largest_network_only():
    from budgetnas.methods.supernet.training import phase_of, sandwich

    s = TrainSettings(epochs=8, progressive=True)
    assert [phase_of(e, s) for e in range(8)] == [0, 0, 1, 1, 2, 2, 3, 3]
    net = small_net()
    rng = np.random.default_rng(0)
    assert sandwich(net, rng, 0, 2) == [net.largest()]
    kernels_only = sandwich(net, rng, 1, 2)
    assert all(len(stage) == 4 and all(e == 6 for _, e in stage) for sub in kernels_only for stage in sub)


@pytest.fixture(scope="module")
def supernet_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("supernet") / "full"
    from conftest import run_cli

    done = run_cli(*SUPERNET, "--out", out)
    assert done.returncode == 0, done.stderr
    return out


def test_supernet_run_resumes_to_identical_weights(cli, supernet_run, tmp_path):
    summary = json.loads((supernet_run / "summary.json").read_text())
    assert summary["method"] == "supernet" and summary["epochs"] == 2
    assert summary["largest"]["params"] > summary["smallest"]["params"]
    net, meta = load_supernet(supernet_run)
    assert meta["dataset"]["name"] == "synthetic" and meta["calibration"]["images"] == 64
    # Killed at the first step of the second epoch (the checkpoint of epoch 1 exists), then resumed.
    killed = cli(*SUPERNET, "--out", tmp_path / "part", env={"BUDGETNAS_KILL_AT": "supernet-step:3"})
    assert killed.returncode != 0 and not (tmp_path / "part" / "supernet.safetensors").exists()
    resumed = cli(*SUPERNET, "--out", tmp_path / "part", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert (supernet_run / "supernet.safetensors").read_bytes() == \
        (tmp_path / "part" / "supernet.safetensors").read_bytes()
    other = cli(*SUPERNET, "--out", tmp_path / "part", "--resume", "--lr", "0.1")
    assert other.returncode == 2 and "--lr" in other.stderr


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun not installed")
def test_two_process_supernet_training_agrees(tmp_path):
    import os

    torchrun = str(Path(sys.executable).parent / "torchrun")
    proc = subprocess.run([torchrun, "--nproc_per_node=2", "--master_port=29541", "-m", "budgetnas",
                           *SUPERNET, "--device", "cpu", "--out", str(tmp_path / "ddp")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world_size"] == 2 and len(set(summary["rank_checksums"])) == 1
