"""BatchNorm recalibration (train/bn_stats.py): exact averages inside, everything restored after."""
from __future__ import annotations

import torch
import torch.nn as nn

from budgetnas.train.bn_stats import batchnorms, recalibrated_bn


def test_statistics_are_the_average_over_the_inputs_and_are_restored():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    model.train()
    model(torch.randn(8, 3, 6, 6) * 5 + 2)  # statistics of other data
    bn = model[1]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inputs = [torch.randn(16, 3, 6, 6) for _ in range(3)]
    with torch.no_grad():
        features = [model[0](x) for x in inputs]
    with recalibrated_bn(model, model, inputs):
        assert not model.training
        mean = torch.stack([f.mean((0, 2, 3)) for f in features]).mean(0)
        var = torch.stack([f.var((0, 2, 3), unbiased=True) for f in features]).mean(0)
        torch.testing.assert_close(bn.running_mean, mean)
        torch.testing.assert_close(bn.running_var, var)
    assert model.training and bn.momentum == 0.1
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_restored_even_when_the_block_raises():
    model = nn.Sequential(nn.BatchNorm2d(2))
    model.eval()
    try:
        with recalibrated_bn(model, model, [torch.randn(4, 2, 3, 3)]):
            raise RuntimeError("stop")
    except RuntimeError:
        pass
    assert not model.training
    assert torch.equal(model[0].running_mean, torch.zeros(2)) and model[0].momentum == 0.1


def test_batchnorm_like_modules_are_found():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("running_mean", torch.zeros(2))
            self.register_buffer("running_var", torch.ones(2))
            self.momentum = 0.1

    model = nn.Sequential(nn.BatchNorm1d(2), Custom(), nn.Linear(2, 2))
    assert [type(m) for m in batchnorms(model)] == [nn.BatchNorm1d, Custom]
