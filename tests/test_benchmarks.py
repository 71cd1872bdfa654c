"""Helpers of the benchmarks: the supernet ranking summary (retraining seeds averaged, their
agreement) and the op values of a NAS-Bench-201 ranking."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from dna_ranking import op_effects  # noqa: E402
from nb201_synflow import synflow  # noqa: E402
import search_quality  # noqa: E402
from search_quality import load_results, network_acc, paired, retrain_spread, verdict  # noqa: E402
from supernet_finetune import outside_indices, reinitialised  # noqa: E402
from supernet_digits import kendall_summary, retrain_dir  # noqa: E402


def _subnet(inherited: float, seeds: list[float]) -> dict:
    return {"inherited_val": inherited, "inherited_test": inherited, "retrained_seeds": seeds,
            "retrained_test": sum(seeds) / len(seeds)}


def test_one_seed_has_no_noise_summary():
    out = kendall_summary([_subnet(x, [x]) for x in (0.1, 0.2, 0.3)])
    assert out["tau_test"] == pytest.approx(1.0) and "retrain_noise" not in out


def test_seeds_that_disagree_show_in_the_noise_summary():
    # seed 0 orders the subnets one way, seed 1 the opposite way: retraining cannot rank them
    subnets = [_subnet(0.1, [0.50, 0.62]), _subnet(0.2, [0.55, 0.57]), _subnet(0.3, [0.60, 0.52])]
    noise = kendall_summary(subnets)["retrain_noise"]
    assert noise["tau_between_seeds"] == pytest.approx(-1.0)
    assert noise["tau_val_single_seed"] == pytest.approx([1.0, -1.0])
    assert noise["sd_within_subnet"] > noise["sd_between_subnets"]


def test_retrain_dir_is_one_per_epochs_and_seed(tmp_path):
    assert retrain_dir(tmp_path, 0, 10) == tmp_path / "train-e10-s0"
    assert retrain_dir(tmp_path, 2, 30) == tmp_path / "train-e30-s2"


def test_op_effects_finds_the_op_a_score_rewards():
    from budgetnas.methods.dna.nb201.block import CONV3, all_cells

    cells = np.array(all_cells())
    effects = op_effects(cells, {"counts 3x3": (cells == CONV3).sum(1)})
    skip, conv1, conv3, pool = effects["counts 3x3"]
    assert conv3 > 0.15 and max(abs(skip), abs(conv1), abs(pool)) < 0.01


def _nag_run(regrets: dict[str, float]) -> dict:
    rows = {name: {"mean": r, "worst": r + 1, "mean_unseen": r, "feasible": 1.0, "ms": None, "picks": [0],
                   "queries": 1000} for name, r in regrets.items()}
    return {"rows": rows, "budgets": [1.0], "fit_s": 1.0, "train_s": 1.0, "rounds": 3, "discount": 0.5,
            "margin": 0.01}


def test_nag_summary_averages_seeds_and_pairs_them():
    from nag_nb201 import EVO, GEN, NAG, RANDOM, cost_section, summary_rows

    runs = [_nag_run({NAG: 0.1, GEN: 0.2, RANDOM: 0.34, EVO: 0.1}),
            _nag_run({NAG: 0.1, GEN: 0.4, RANDOM: 0.3, EVO: 0.9})]
    line, paired = summary_rows("macs", runs)
    cells = [c.strip() for c in line.split("|")[1:-1]]
    assert cells[2] == "0.30 ± 0.14" and cells[-1] == "yes"  # below random search's 0.32 and evolution's 0.50
    assert cells[4] == "0.50 ± 0.57" and cells[5] == "0.32"  # best baseline: the lowest mean of the others
    pair = [c.strip() for c in paired.split("|")[1:-1]]
    assert pair[2] == "1 of 2" and pair[4] == "1 of 2"  # better than random on seed 0, than evolution on seed 1
    table = "\n".join(cost_section("macs", runs, [0, 1]))
    assert "| regularized evolution | 1000 | 0.50 ± 0.57 | 1.90 |" in table


def test_paired_interval_is_the_t_interval_of_the_mean():
    mean, low, high = paired([0.01, 0.02, 0.03])  # 1, 2, 3 pp: sd 1, t(0.975, 2) = 4.303
    assert mean == pytest.approx(2.0)
    assert (low, high) == pytest.approx((2.0 - 4.3027 / 3 ** 0.5, 2.0 + 4.3027 / 3 ** 0.5), abs=1e-3)
    assert paired([0.01]) is None  # one seed has no spread to judge


def test_verdict_separates_clear_wins_losses_and_noise():
    diffs = {"mgas-3stage": [0.10],  # one seed: not judged
             "darts": [-0.05, -0.04, -0.06],  # clearly behind MGAS
             "random": [0.02, 0.03, 0.025],  # clearly ahead
             "handwritten": [-0.01, 0.02, 0.0]}  # noise
    text = verdict(diffs)
    assert "ahead of darts;" in text and "behind random;" in text
    assert "not told apart from handwritten." in text and "mgas-3stage" not in text
    assert "none yet" in verdict({"mgas-3stage": [0.10]})


def test_a_later_line_with_more_retrainings_replaces_the_job_and_is_averaged(tmp_path):
    job = {"dataset": "digits", "target": 8000, "method": "mgas", "seed": 0}
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps({**job, "test_acc": 0.90}) + "\n"
                    + json.dumps({**job, "method": "darts", "test_acc": 0.95}) + "\n"
                    + json.dumps({**job, "test_acc": 0.90, "test_acc_retrains": [0.90, 0.96, 0.99]}) + "\n")
    rows = load_results(path)
    assert [r["method"] for r in rows] == ["mgas", "darts"]
    assert network_acc(rows[0]) == pytest.approx(0.95) and network_acc(rows[1]) == 0.95


def test_retrain_spread_is_the_mean_std_of_each_networks_retrainings_and_skips_single_ones():
    rows = [{"test_acc": 0.9, "test_acc_retrains": [0.90, 0.92, 0.94]},
            {"test_acc": 0.9, "test_acc_retrains": [0.95, 0.95, 0.95]},
            {"test_acc": 0.5}]  # one retraining: no spread of its own
    assert retrain_spread(rows) == pytest.approx(100 * 0.02 / 2)
    assert retrain_spread(rows[2:]) is None


def test_retrains_top_up_a_finished_job_with_new_seeds_only(tmp_path, monkeypatch):
    job = {"dataset": "digits", "target": 8000, "method": "random", "seed": 2}
    tag = "digits-8000-random-s2"
    arch = tmp_path / "search" / tag / "arch.json"
    arch.parent.mkdir(parents=True)
    (arch.parent / "summary.json").write_text("{}")
    first = tmp_path / "train" / tag
    first.mkdir(parents=True)
    (first / "metrics.json").write_text(json.dumps({"test_acc": 0.9, "params_nonzero": 8000, "macs": 1,
                                                    "train_seconds": 1.0}))
    seeds = []

    def fake_train(args, log, threads):  # records the seed, writes what `budgetnas train` would
        out = Path(args[args.index("--out") + 1])
        seeds.append(args[args.index("--seed") + 1])
        out.mkdir(parents=True)
        (out / "metrics.json").write_text(json.dumps({"test_acc": 0.8 + len(seeds) / 100, "params_nonzero": 8000,
                                                      "macs": 1, "train_seconds": 2.0}))

    monkeypatch.setattr(search_quality, "search", lambda *a: arch)
    monkeypatch.setattr(search_quality, "cli", fake_train)
    monkeypatch.setattr(search_quality.subprocess, "run", lambda *a, **k: type("Done", (), {"returncode": 1})())
    row = search_quality.run_job(job, search_quality.PROTOCOLS["digits"], [], tmp_path, 1, retrains=3)
    assert seeds == [1002, 2002]  # the seed-2 training is reused, two new seeds are trained
    assert row["test_acc"] == 0.9 and row["test_acc_retrains"] == pytest.approx([0.9, 0.81, 0.82])
    assert row["train_seconds"] == 5.0 and row["latency_ms_b1_t1"] is None


def test_reinitialised_is_a_fresh_copy_with_fresh_batchnorm_statistics():
    import torch

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    with torch.no_grad():
        model[0].weight.zero_()
        model[1].running_mean.fill_(5.0)
    fresh = reinitialised(model, seed=0)
    assert fresh[0].weight.abs().sum() > 0 and torch.all(fresh[1].running_mean == 0)
    assert model[0].weight.abs().sum() == 0 and torch.all(model[1].running_mean == 5.0)  # untouched


def test_synflow_counts_parameters_on_live_paths_only():
    tiny = {"in_channels": 3, "num_classes": 10, "input_size": 8, "C": 4, "cells_per_stage": 1}
    live = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"  # 0 -> 1 -> 2 -> 3
    dead = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"  # the conv feeds nothing
    small = "|nor_conv_1x1~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"
    broken = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"  # no path from input to output
    assert synflow(live, tiny) > synflow(small, tiny) > synflow(dead, tiny)
    assert synflow(live, tiny) == synflow(live, tiny)  # seeded
    assert synflow(broken, tiny) < synflow(dead, tiny)


def test_outside_indices_leave_the_subset_alone():
    import torch

    from budgetnas.data import _stratified_head

    y = torch.arange(300) % 10
    picked = outside_indices(y, subset=100, n=150)
    assert len(picked) == 150 and len(set(picked.tolist())) == 150
    assert not set(picked.tolist()) & set(_stratified_head(y, 100).tolist())
    assert (picked == outside_indices(y, subset=100, n=150)).all()
    assert len(outside_indices(y, subset=100, n=10_000)) == 200  # no more than the subset left
