"""Helpers of the benchmarks: the supernet ranking summary (retraining seeds averaged, their
agreement) and the op values of a NAS-Bench-201 ranking."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from dna_ranking import op_effects  # noqa: E402
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


def test_seed_zero_reuses_the_directory_of_earlier_runs(tmp_path):
    assert retrain_dir(tmp_path, 0) == tmp_path / "train"
    assert retrain_dir(tmp_path, 2) == tmp_path / "train-s2"


def test_op_effects_finds_the_op_a_score_rewards():
    from budgetnas.methods.dna.nb201.block import CONV3, all_cells

    cells = np.array(all_cells())
    effects = op_effects(cells, {"counts 3x3": (cells == CONV3).sum(1)})
    skip, conv1, conv3, pool = effects["counts 3x3"]
    assert conv3 > 0.15 and max(abs(skip), abs(conv1), abs(pool)) < 0.01
