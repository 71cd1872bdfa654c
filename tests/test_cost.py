"""Cost model: counts agree with plain sums; DARTS V2 matches its published size."""
from __future__ import annotations

import torch
import torch.nn as nn

from budgetnas import build_model, load_arch, profile
from budgetnas.cost import count_macs, count_nonzero, count_params, measure_latency

from conftest import EXAMPLES


def test_params_equal_plain_sum():
    for name in ("small_digits.json", "darts_v2.json"):
        model = build_model(load_arch(EXAMPLES / name))
        assert profile(model, (3, 32, 32) if "v2" in name else (1, 8, 8))["params_dense"] == \
            sum(p.numel() for p in model.parameters())


def test_darts_v2_published_size():
    # DARTS (2nd order) paper: 3.3M params; ~528M multiply-adds on CIFAR-10 input.
    result = profile(load_arch(EXAMPLES / "darts_v2.json"))
    assert abs(result["params_dense"] - 3.3e6) / 3.3e6 < 0.05
    assert abs(result["macs"] - 530e6) / 530e6 < 0.05


def test_macs_of_known_layers():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(8 * 16, 5))
    assert count_macs(model, (3, 4, 4)) == 3 * 8 * 9 * 16 + 8 * 16 * 5


def test_aux_head_excluded():
    arch = load_arch(EXAMPLES / "small_digits.json")
    plain = build_model(arch)
    with_aux = build_model(arch, auxiliary=True)
    assert count_params(with_aux) == count_params(plain)
    assert count_params(with_aux, include_aux=True) > count_params(plain)
    assert count_nonzero(with_aux) == count_nonzero(plain)


def test_latency_reports_median_and_settings():
    model = build_model(load_arch(EXAMPLES / "small_digits.json"))
    result = measure_latency(model, (1, 8, 8), runs=3, warmup=1, threads=1, batch_size=2)
    assert result["latency_ms"] > 0 and result["latency_runs"] == 3
    assert result["latency_threads"] == 1 and result["latency_batch_size"] == 2
    assert torch.get_num_threads() == 1  # restored


def test_profile_cli_json(cli_in_process):
    import json

    result = cli_in_process("profile", EXAMPLES / "small_digits.json", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    model = build_model(load_arch(EXAMPLES / "small_digits.json"))
    assert data["params_dense"] == sum(p.numel() for p in model.parameters())
    assert data["macs"] == count_macs(model, (1, 8, 8))


def test_latency_refuses_thread_counts_torch_cannot_take():
    import pytest

    from budgetnas.errors import UserError

    model = build_model(load_arch(EXAMPLES / "small_digits.json"))
    for threads in (-1, 0, 10**8):
        with pytest.raises(UserError, match="threads"):
            measure_latency(model, (1, 8, 8), runs=1, warmup=0, threads=threads)
    assert torch.get_num_threads() == 1
