"""`budgetnas generate --supernet`: picks within budget that ship with weights loading into
`build_model(arch)`, evaluated again by `train --init-from --epochs 0`, exact resume, and what is
refused (budgets below the smallest network, bad quantiles, table options)."""
from __future__ import annotations

import json

from budgetnas.arch import build_model, load_arch
from budgetnas.cost import profile
from budgetnas.io import load_safetensors

from conftest import EXAMPLES
from test_supernet import supernet_run  # noqa: F401 - the fixture (a supernet trained for 2 epochs)

GENERATE = ["generate", "--dataset", "synthetic", "--subset", "100", "--cost", "macs", "--query-budget", "30",
            "--initial-rows", "10", "--verify", "2", "--iterations", "40", "--predictor-epochs", "5",
            "--evaluator-steps", "40", "--select-samples", "16", "--query-samples", "16", "--query-grid", "4",
            "--query-rounds", "1", "--samples-per-step", "8", "--checkpoint-every", "20", "--threads", "1",
            "--no-report"]


def test_generate_from_a_supernet_writes_picks_with_their_weights(cli, supernet_run, tmp_path):
    out = tmp_path / "gen"
    done = cli(*GENERATE, "--supernet", supernet_run, "--budgets", "q80,q20", "--out", out)
    assert done.returncode == 0, done.stderr
    listing = json.loads((out / "picks.json").read_text())
    picks = listing["picks"]
    assert listing["evaluations"] <= 30 and picks[0]["budget"] > picks[1]["budget"]
    for pick in picks:
        assert pick["feasible"] and pick["cost"] <= pick["budget"]
        arch = load_arch(out / pick["arch"])
        build_model(arch).load_state_dict(load_safetensors(out / pick["weights"]))  # strict: every tensor fits
        assert profile(arch)["macs"] == pick["cost"]
    assert picks[0]["val_acc"] >= picks[1]["val_acc"]  # held-out accuracy never falls as the budget grows
    n = listing["val_images"]  # the noise of the held-out split is reported with every pick
    assert n > 0 and all(abs(p["val_acc_se"] - (p["val_acc"] * (1 - p["val_acc"]) / n) ** 0.5) < 1e-12 for p in picks)
    assert "+- one standard error" in done.stdout
    # 0 fine-tuning epochs: `train --init-from` evaluates the inherited weights.
    pick = out / "picks" / "1"
    evaluated = cli("train", pick / "arch.json", "--init-from", pick, "--epochs", "0", "--dataset", "synthetic",
                    "--subset", "100", "--out", tmp_path / "eval")
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert abs(metrics["test_acc"] - picks[1]["test_acc"]) <= 1 / 160 + 1e-9  # float rounding may flip one
    # Killed during generator training (after its checkpoint at iteration 20), then resumed.
    killed = cli(*GENERATE, "--supernet", supernet_run, "--budgets", "q80,q20", "--out", tmp_path / "part",
                 env={"BUDGETNAS_KILL_AT": "generator-step:30"})
    assert killed.returncode != 0
    resumed = cli(*GENERATE, "--supernet", supernet_run, "--budgets", "q80,q20", "--out", tmp_path / "part",
                  "--resume")
    assert resumed.returncode == 0, resumed.stderr
    again = json.loads((tmp_path / "part" / "picks.json").read_text())["picks"]
    assert [p["row"] for p in again] == [p["row"] for p in picks]
    assert (out / "generator.safetensors").read_bytes() == (tmp_path / "part" / "generator.safetensors").read_bytes()


def test_generate_from_a_supernet_refuses_what_it_cannot_answer(cli_in_process, supernet_run, tmp_path):
    low = cli_in_process(*GENERATE, "--supernet", supernet_run, "--budgets", "1000", "--out", tmp_path / "low")
    assert low.returncode == 2 and "smallest network of the space" in low.stderr, low.stderr
    assert "Traceback" not in low.stderr and not (tmp_path / "low").exists()
    for args in (["--budgets", "q150"], ["--budgets", "cheap"], ["--cost", "latency_ms_fpga"],
                 ["--table", supernet_run / "log.jsonl"], ["--query-budget", "12"]):
        bad = cli_in_process(*GENERATE, "--supernet", supernet_run, *args, "--out", tmp_path / "bad")
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, (args, bad.stderr)
    wrong = cli_in_process("train", EXAMPLES / "small_digits.json", "--init-from", supernet_run / "supernet.safetensors",
                "--epochs", "0", "--out", tmp_path / "wrong")
    assert wrong.returncode == 2 and "--init-from" in wrong.stderr, wrong.stderr


def test_supernet_costs_are_exact_counts_and_a_measured_latency_table(supernet_run, tmp_path, monkeypatch):
    import numpy as np
    import torch

    from budgetnas.arch import Arch
    from budgetnas.data import load_dataset
    from budgetnas.methods.nag.supernet_source import SupernetSource

    monkeypatch.setenv("BUDGETNAS_CACHE", str(tmp_path / "cache"))
    ds = load_dataset("synthetic", subset=100)
    params = SupernetSource(supernet_run, ds, "params", device=torch.device("cpu"))
    rows = params.space.sample_batch(np.random.default_rng(0), 4)
    for row, cost in zip(rows, params.cost(rows)):
        assert cost == profile(Arch("mbconv", params.config, params.genotype(row)))["params_dense"]
    latency = SupernetSource(supernet_run, ds, "latency", device=torch.device("cpu"))
    costs = latency.space_costs()
    _, smallest = latency.smallest()
    assert (costs > 0).all() and smallest <= costs.min()
    assert list((tmp_path / "cache").glob("mbconv-latency-cpu-t1.json"))  # measured once, then cached
