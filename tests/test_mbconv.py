"""The mbconv space: strict validation, layer structure, exact per-layer cost sums."""
from __future__ import annotations

import copy

import pytest
import torch

from budgetnas.arch import Arch, build_model, validate_arch_dict
from budgetnas.cost import count_macs, count_params
from budgetnas.errors import ArchError
from budgetnas.cost.mbconv import MBConvCosts as CostTable, network_cost
from budgetnas.spaces.mbconv import CONFIG_DEFAULTS, MBConv, tiny_config, tiny_genotype


def _doc(config=None, genotype=None):
    return {"format": "budgetnas.arch", "version": 1, "space": "mbconv",
            "config": tiny_config() if config is None else config,
            "genotype": tiny_genotype() if genotype is None else genotype}


@pytest.mark.parametrize("size,channels", [(8, 1), (32, 3)])
def test_tiny_config_builds_and_runs(size, channels):
    model = build_model(Arch("mbconv", tiny_config(channels, 10, size), tiny_genotype()))
    assert model(torch.randn(2, channels, size, size)).shape == (2, 10)
    assert [len(s) for s in model.stages] == [1, 2, 2]


@pytest.mark.parametrize("change,field", [
    (lambda d: d["config"].update(strides=[1, 2]), "genotype.stages"),
    (lambda d: d["config"].update(colour="red"), "config"),
    (lambda d: d["config"].update(stem_stride=3), "config.stem_stride"),
    (lambda d: d["config"].update(activation="tanh"), "config.activation"),
    (lambda d: d["config"].update(se_ratio=1.5), "config.se_ratio"),
    (lambda d: d["genotype"]["stages"][1]["layers"][0].update(kernel=4), "stages[1].layers[0].kernel"),
    (lambda d: d["genotype"]["stages"][0]["layers"][0].update(se="no"), "stages[0].layers[0].se"),
    (lambda d: d["genotype"]["stages"][2].update(layers=[]), "stages[2].layers"),
    (lambda d: d["genotype"]["stages"][0].update(channels=0), "stages[0].channels"),
    (lambda d: d["genotype"]["stages"][0]["layers"][0].update(width=3), "stages[0].layers[0]"),
])
def test_validation_names_the_field(change, field):
    doc = copy.deepcopy(_doc())
    change(doc)
    with pytest.raises(ArchError, match=field.replace("[", r"\[").replace("]", r"\]")):
        validate_arch_dict(doc, where="a.json")


def test_mbconv_layer_structure():
    plain = MBConv(8, 8, expansion=1, kernel=3)
    assert plain.expand is None and plain.residual and plain.se.reduce.out_channels == 2
    strided = MBConv(8, 8, expansion=6, kernel=5, stride=2, se=False)
    assert not strided.residual and strided.se is None and strided.depthwise[0].kernel_size == (5, 5)
    assert strided.depthwise[0].groups == 48
    widen = MBConv(8, 16, expansion=3, kernel=3)
    assert not widen.residual and widen.se.reduce.out_channels == 2  # ratio of the *input* width


@pytest.mark.parametrize("config", [tiny_config(1, 10, 8), {**CONFIG_DEFAULTS, "input_size": 64}])
def test_cost_table_sums_equal_whole_network_counts(config):
    genotype = tiny_genotype() if len(config["strides"]) == 3 else {"stages": [
        {"channels": c, "layers": [{"expansion": 6, "kernel": 3}, {"expansion": 3, "kernel": 5, "se": False}]}
        for c in (24, 40, 80, 112, 192, 320)]}
    model = build_model(Arch("mbconv", config, genotype))
    cfg = {**CONFIG_DEFAULTS, **config}
    shape = (cfg["in_channels"], cfg["input_size"], cfg["input_size"])
    assert network_cost(CostTable("params"), cfg, genotype) == count_params(model)
    assert network_cost(CostTable("macs"), cfg, genotype) == count_macs(model, shape)
