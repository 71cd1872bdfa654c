"""NAS-Bench-201 space: the network matches the benchmark's own parameter and FLOP counts.

Reference values (CIFAR-10 head) from NATS-Bench (D-X-Y/NATS-Bench issues #18 and #36): a cell
with three nor_conv_3x3 edges has 0.802426 M parameters and 113.95 M FLOPs (the benchmark's
FLOPs are multiply-accumulates); arch index 0 has 15.64737 M FLOPs (issue #24). The paper gives
the space's range as 0.073-1.531 M parameters and 7.8-220.11 M FLOPs (all-none / all-3x3 cells).
"""
from __future__ import annotations

import numpy as np
import pytest

from budgetnas.arch import Arch, build_model
from budgetnas.cost import count_macs, count_params
from budgetnas.errors import ArchError, UserError
from budgetnas.spaces.nb201 import OPS, arch_string, decision_space, parse_arch_string

THREE_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
INDEX0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


@pytest.mark.parametrize("genotype,params,macs", [
    (THREE_CONV, 802_426, 113_951_360),
    ("|skip_connect~0|+|none~0|nor_conv_3x3~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|", 802_426, 113_951_360),
    (ALL_CONV, 1_531_546, 220_119_680),
    (ALL_NONE, 73_306, 7_783_040),
    (INDEX0, 129_306, 15_647_360),
])
def test_params_and_macs_match_the_benchmark(genotype, params, macs):
    model = build_model(Arch("nb201", {}, genotype))
    assert count_params(model) == params
    assert count_macs(model, (3, 32, 32)) == macs
    assert model(__import__("torch").zeros(2, 3, 32, 32)).shape == (2, 10)


def test_string_round_trip_and_decisions():
    space = decision_space()
    assert parse_arch_string(THREE_CONV) == ["nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect",
                                             "nor_conv_3x3", "skip_connect"]
    rng = np.random.default_rng(0)
    for _ in range(20):
        row = space.sample(rng)
        text = space.to_genotype(row)
        assert space.from_genotype(text) == row
        assert space.encode(row).sum() == 6
    assert arch_string([OPS[0]] * 6) == ALL_NONE


@pytest.mark.parametrize("bad", ["", "|nor_conv_3x3~0|", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                                 "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", 42])
def test_bad_strings_are_arch_errors(bad):
    with pytest.raises(ArchError):
        parse_arch_string(bad)


def test_cost_composition_matches_full_builds(tmp_path, monkeypatch):
    monkeypatch.setenv("BUDGETNAS_CACHE", str(tmp_path))
    from budgetnas.cost.nb201 import nb201_costs

    space = decision_space()
    rows = np.array([space.sample(np.random.default_rng(s)) for s in range(3)])
    costs = nb201_costs(rows, {"num_classes": 10})
    assert list(tmp_path.glob("nb201_params-*.json")) and list(tmp_path.glob("nb201_macs-*.json"))
    for row, p, m in zip(rows, costs["params"], costs["macs"]):
        model = build_model(Arch("nb201", {}, space.to_genotype(row)))
        assert (count_params(model), count_macs(model, (3, 32, 32))) == (p, m)


def test_profile_genotype_string():
    from budgetnas.arch import arch_from_genotype as arch_from_genotype_string

    arch = arch_from_genotype_string("nb201", THREE_CONV, in_channels=3, input_size=32, num_classes=10)
    assert count_params(build_model(arch)) == 802_426
    with pytest.raises(UserError):
        arch_from_genotype_string("nb201", "|nor_conv_3x3~0|")
