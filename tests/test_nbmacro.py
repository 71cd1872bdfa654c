"""NAS-Bench-Macro: every one of the 6,561 strings has the benchmark's params and MACs (closed
form of ../shared/specs/nbmacro.md), built networks agree, canonical forms, profile and train."""
from __future__ import annotations

import itertools
import json
import random

import pytest
import torch

from budgetnas import build_model
from budgetnas.arch import Arch, arch_from_genotype
from budgetnas.cost import count_macs, count_params
from budgetnas.cost.nbmacro import nbmacro_costs
from budgetnas.errors import ArchError
from budgetnas.spaces import get_space
from budgetnas.spaces.nbmacro import canonical, decision_space

ALL = ["".join(p) for p in itertools.product("012", repeat=8)]
# (C_in, C_out, H_in) of the eight layers and the fixed parts, as the benchmark defines them.
PLAN = [(32, 64, 32), (64, 64, 16), (64, 128, 16), (128, 128, 8), (128, 128, 8), (128, 256, 8),
        (256, 256, 4), (256, 256, 4)]
FIXED_PARAMS, FIXED_MACS = 343_978, 6_140_416


def closed_form(arch: str) -> tuple[int, int]:
    params, macs = FIXED_PARAMS, FIXED_MACS
    for choice, (c_in, c_out, h_in) in zip(arch, PLAN):
        h_out = h_in // (2 if c_out != c_in else 1)
        if choice == "0":
            if c_in != c_out:  # the stride-2 projection
                params += c_in * c_out + 2 * c_out
                macs += c_in * c_out * h_out ** 2
            continue
        t, k = (3, 3) if choice == "1" else (6, 5)
        h = t * c_in
        params += c_in * h + k * k * h + h * c_out + 2 * h + 2 * h + 2 * c_out
        macs += c_in * h * h_in ** 2 + k * k * h * h_out ** 2 + h * c_out * h_out ** 2
    return params, macs


def test_all_6561_strings_cost_what_the_benchmark_says():
    costs = nbmacro_costs(ALL)
    expected = [closed_form(a) for a in ALL]
    assert [int(p) for p in costs["params"]] == [e[0] for e in expected]
    assert [int(m) for m in costs["macs"]] == [e[1] for e in expected]
    assert closed_form("00000000") == (387_882, 7_713_280)
    assert closed_form("22222222")[0] == 2_932_586


@pytest.mark.parametrize("arch", ["00000000", "11111111", "22222222", *random.Random(0).sample(ALL, 4)])
def test_built_networks_match_the_closed_form(arch):
    model = build_model(Arch("nbmacro", {}, arch))
    assert (count_params(model), count_macs(model, (3, 32, 32))) == closed_form(arch)
    with torch.no_grad():
        assert model.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_canonical_forms_and_the_decision_view():
    assert canonical("01201122") == "01210122" == canonical("01210122")
    assert canonical("10" "102" "012") == "10" "120" "012"
    assert canonical("00" "000" "200") == "00" "000" "200"
    assert len({canonical(a) for a in ALL}) == 9 * 21 * 21  # the 3,969 trained networks
    space = decision_space()
    assert space.to_genotype(space.from_genotype("21012002")) == "21012002"
    for bad in ("0120112", "012011223", "01201132", 12345678):
        with pytest.raises(ArchError):
            get_space("nbmacro").validate({}, bad, where="test")


def test_profile_prints_the_benchmark_counts(cli_in_process):
    result = cli_in_process("profile", "--space", "nbmacro", "--genotype", "01201122", "--json")
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    assert (got["params_dense"], got["macs"]) == closed_form("01201122")
    arch = arch_from_genotype("nbmacro", "01201122")
    assert arch.config["input_size"] == 32 and arch.genotype == "01201122"


def test_train_runs_on_an_nbmacro_network(cli_in_process, tmp_path):
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"format": "budgetnas.arch", "version": 1, "space": "nbmacro",
                                "config": {"in_channels": 3, "input_size": 8, "num_classes": 4,
                                           "head_channels": 64}, "genotype": "10000000", "masks": None}))
    result = cli_in_process("train", path, "--dataset", "synthetic", "--epochs", "1", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["test_acc"] <= 1.0
