"""Ranking metrics and the NASWOT score on hand-made inputs."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from budgetnas.naswot import naswot_score
from budgetnas.ranking import (kendall_tau, pick_regret, rank_mean, ranking_report, size_bins,
                               spearman_rho, top_precision, within_bin_tau)

# 8 architectures: accuracy, a score, params
TRUTH = [90.0, 91.0, 85.0, 93.0, 70.0, 88.0, 92.0, 10.0]
SCORE = [0.5, 0.6, 0.3, 0.9, 0.1, 0.4, 0.7, 0.0]  # same order as TRUTH except one swap below
PARAMS = [100, 100, 200, 200, 300, 300, 400, 400]


def test_kendall_and_spearman_by_hand():
    assert kendall_tau(SCORE, TRUTH) == pytest.approx(1.0)
    assert spearman_rho(SCORE, TRUTH) == pytest.approx(1.0)
    swapped = list(SCORE)
    swapped[0], swapped[1] = swapped[1], swapped[0]  # one discordant pair of 28
    assert kendall_tau(swapped, TRUTH) == pytest.approx((27 - 1) / 28)
    assert kendall_tau([-s for s in SCORE], TRUTH) == pytest.approx(-1.0)
    # ties: tau-b; a constant score carries no information (0, not NaN)
    assert kendall_tau([1, 1, 2, 2], [1, 2, 3, 4]) == pytest.approx(4 / math.sqrt(4 * 6))
    assert kendall_tau([1.0] * 8, TRUTH) == 0.0


def test_bins_are_equal_count_and_stable_in_ties():
    bins = size_bins(PARAMS, 4)
    assert [b.tolist() for b in bins] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert [len(b) for b in size_bins(list(range(10)), 3)] == [4, 3, 3]
    mean, taus = within_bin_tau(SCORE, TRUTH, PARAMS, bins=4)
    assert taus == [pytest.approx(1.0)] * 4 and mean == pytest.approx(1.0)
    # params as the score: constant inside every bin -> tau 0 everywhere
    assert within_bin_tau(PARAMS, TRUTH, PARAMS, bins=4) == (0.0, [0.0] * 4)


def test_top_precision_and_pick_regret():
    assert top_precision(SCORE, TRUTH, 0.25) == 1.0  # top 2: indices 3 and 6 in both
    assert top_precision([-s for s in SCORE], TRUTH, 0.25) == 0.0
    flat = [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]  # finds 3, ties give 0 (not 6)
    assert top_precision(flat, TRUTH, 0.25) == 0.5
    r = pick_regret(PARAMS, TRUTH, PARAMS, 300)  # "largest" picks index 4 (ties: lower index)
    assert r["pick"] == 4 and r["truth"] == 70.0 and r["best"] == 93.0 and r["regret"] == 23.0
    assert r["feasible"] == 6
    assert pick_regret(SCORE, TRUTH, PARAMS, 150)["regret"] == 0.0
    # reach: the best truth among the k best-scored under the budget; params ranks 4, 5, 2, 3 first
    reach = pick_regret(PARAMS, TRUTH, PARAMS, 300, reach=(1, 2, 3, 4))["reach"]
    assert reach == {"1": 23.0, "2": 5.0, "3": 5.0, "4": 0.0}
    with pytest.raises(ValueError, match="no architecture"):
        pick_regret(SCORE, TRUTH, PARAMS, 50)
    report = ranking_report(SCORE, TRUTH, PARAMS, budgets=[150, 400], bins=2, top=0.25)
    assert report["kendall_tau"] == pytest.approx(1.0) and [p["budget"] for p in report["picks"]] == [150, 400]


def test_rank_mean_is_scale_free_and_breaks_one_scores_ties_with_the_other():
    logdet = [100.0, 300.0, 200.0, 400.0]  # any scale: only the order counts
    loss = [-0.9, -0.1, -0.1, -0.5]  # negated losses; a tie between 1 and 2
    combined = rank_mean(logdet, loss)
    # ranks / 3: logdet [0, 2/3, 1/3, 1]; loss [0, 5/6, 5/6, 1/3] (the tie shares rank 2.5)
    assert combined.tolist() == pytest.approx([0.0, (2 / 3 + 5 / 6) / 2, (1 / 3 + 5 / 6) / 2, (1 + 1 / 3) / 2])
    assert rank_mean([v * 1e6 for v in logdet], loss).tolist() == pytest.approx(combined.tolist())
    assert rank_mean(SCORE).tolist() == pytest.approx((np.argsort(np.argsort(SCORE)) / 7).tolist())
    with pytest.raises(ValueError, match="same length"):
        rank_mean([1.0, 2.0], [1.0, 2.0, 3.0])


def test_bad_columns_are_refused():
    with pytest.raises(ValueError, match="same length"):
        kendall_tau([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="NaN"):
        spearman_rho([1, float("nan")], [1, 2])


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 6), nn.Linear(6, 5)
        self.r1, self.r2 = nn.ReLU(), nn.ReLU()

    def forward(self, x):
        return self.r2(self.b(self.r1(self.a(x))))


def test_naswot_equals_the_kernel_written_out():
    torch.manual_seed(0)
    model, x = _Tiny(), torch.randn(7, 4)
    with torch.no_grad():
        h1 = model.a(x)
        h2 = model.b(torch.relu(h1))
    codes = torch.cat([(h1 > 0), (h2 > 0)], 1).double()
    units = codes.shape[1]
    hamming = torch.cdist(codes, codes, p=1)
    expected = torch.linalg.slogdet(units - hamming)[1].item()
    assert naswot_score(model, x) == pytest.approx(expected, rel=1e-12)
    assert naswot_score(nn.Linear(4, 2), x) == float("-inf")  # no ReLU: no codes
    assert np.isfinite(naswot_score(model, x))


TABLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "nasbench201" / "nb201_cifar10.csv"


@pytest.mark.skipif(not TABLE.is_file(), reason="the NAS-Bench-201 table is not available")
def test_params_alone_on_the_whole_nas_bench_201_table():
    """The published table against the full-scale network's exact params: the size proxy that
    DNA's ratings are compared with (docs/bench_dna.md)."""
    from budgetnas.methods.dna.nb201.block import cell_index, cell_of_string
    from budgetnas.methods.dna.nb201.search import cell_costs

    acc = np.full(15625, np.nan)
    with open(TABLE, newline="") as fh:
        for row in csv.DictReader(fh):
            acc[cell_index(cell_of_string(row["arch"]))] = float(row["cifar10_test_acc"])
    assert not np.isnan(acc).any()
    full = {"in_channels": 3, "num_classes": 10, "input_size": 32, "C": 16, "cells_per_stage": 5}
    params = cell_costs(full)["params"]
    assert params.max() == 1_531_546
    report = ranking_report(params, acc, params, budgets=[float(params.max())])
    assert report["kendall_tau"] == pytest.approx(0.5778, abs=1e-4)
    assert report["within_bin_tau"] == pytest.approx(0.2650, abs=1e-4)
    assert report["top_precision"] == pytest.approx(0.3708, abs=1e-4)
    assert report["picks"][0]["best"] == pytest.approx(acc.max())
