"""Export: ONNX outputs match PyTorch under onnxruntime; TorchScript matches; bad weights refused."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from budgetnas.export import load_trained_model
from budgetnas.io import save_safetensors
from budgetnas import build_model, load_arch


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import run_cli, EXAMPLES

    out = tmp_path_factory.mktemp("run")
    result = run_cli("train", EXAMPLES / "small_digits.json", "--epochs", "1", "--out", out)
    assert result.returncode == 0, result.stderr
    return out


def test_onnx_matches_pytorch(trained, cli):
    ort = pytest.importorskip("onnxruntime")
    target = trained / "model.onnx"
    result = cli("export", trained / "arch.json", "--weights", trained, "--format", "onnx", "--out", target)
    assert result.returncode == 0, result.stderr
    model, shape = load_trained_model(trained / "arch.json", trained)
    x = torch.randn(5, *shape, generator=torch.Generator().manual_seed(0))
    got = ort.InferenceSession(str(target)).run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, model(x).detach().numpy(), atol=1e-4, rtol=1e-4)


def test_torchscript_matches_pytorch(trained, cli):
    target = trained / "model.ts"
    result = cli("export", trained / "arch.json", "--weights", trained / "model.safetensors",
                 "--format", "torchscript", "--out", target)
    assert result.returncode == 0, result.stderr
    model, shape = load_trained_model(trained / "arch.json", trained)
    x = torch.randn(2, *shape)
    assert torch.allclose(torch.jit.load(str(target))(x), model(x), atol=1e-5)


def test_mismatched_weights_exit_2(trained, tmp_path, cli):
    from conftest import EXAMPLES

    bogus = tmp_path / "w.safetensors"
    save_safetensors(bogus, build_model(load_arch(EXAMPLES / "darts_v2.json")).state_dict())
    result = cli("export", trained / "arch.json", "--weights", bogus, "--format", "onnx",
                 "--out", tmp_path / "m.onnx")
    assert result.returncode == 2 and "do not match" in result.stderr


@pytest.mark.parametrize("fmt,target", [("torchscript", "torch.jit.trace"), ("onnx", "torch.onnx.export")])
def test_exporter_failure_is_exit_1_on_one_line(tmp_path, fmt, target, capsys):
    """An exporter crash on a valid model and valid options is an internal error (1), not bad input."""
    from unittest import mock

    from conftest import EXAMPLES

    from budgetnas.cli import main

    if fmt == "onnx":
        pytest.importorskip("onnx")
    weights = tmp_path / "w.safetensors"
    save_safetensors(weights, build_model(load_arch(EXAMPLES / "small_digits.json")).state_dict())
    with mock.patch(target, side_effect=RuntimeError("exporter broke\nsecond line")):
        code = main(["export", str(EXAMPLES / "small_digits.json"), "--weights", str(weights),
                     "--format", fmt, "--out", str(tmp_path / "m.out")])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.count("\n") == 1 and "exporter broke" in err and "Traceback" not in err
    assert not (tmp_path / "m.out").exists()


@pytest.mark.parametrize("path", ["small_digits.json", "darts_v2.json"])
def test_inference_form_computes_the_same_logits(path):
    """BN folding, same-edge merging and dead-filter removal change no logit (float64: 1e-9;
    float32: 1e-5 of the logits' scale)."""
    from conftest import EXAMPLES

    from budgetnas.spaces import get_space

    arch = load_arch(EXAMPLES / path)
    torch.manual_seed(0)
    model = build_model(arch).eval()
    with torch.no_grad():  # trained-looking BN statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
                if m.weight is not None:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.3, 0.3)
    x = torch.randn(3, arch.config["in_channels"], arch.config["input_size"], arch.config["input_size"])
    deployed = get_space(arch.space).deploy(model)
    with torch.no_grad():
        y, z = model(x), deployed(x)
        assert (z - y).abs().max() <= 1e-5 * y.abs().max()
        model64 = model.double()
        assert (get_space(arch.space).deploy(model64)(x.double()) - model64(x.double())).abs().max() < 1e-9
    assert sum(1 for _ in deployed.modules()) < sum(1 for _ in model.modules())


def test_merging_several_ops_per_edge_with_masks_and_dead_filters():
    """A cell whose edges carry up to five conv ops of two kinds, with weight masks and
    a dead middle channel, is one merged chain per kind and edge, with the same logits."""
    from budgetnas.arch import Arch
    from budgetnas.spaces import get_space
    from budgetnas.spaces.darts import OPS
    from budgetnas.spaces.darts_deploy import MergedConvs, MergedReduces

    edges = [{"from": s, "to": d, "op": op} for d in range(2, 6) for s in (0, 1) for op in OPS]
    for e in edges:
        if e["op"].startswith("sep"):
            e["mid"] = 6
    cells = [{"reduction": r, "channels": c, "edges": edges} for r, c in ((False, 6), (True, 8), (False, 8))]
    arch = Arch("darts", {"in_channels": 1, "num_classes": 10, "input_size": 8, "stem_channels": 9,
                          "pool_bn": True}, {"cells": cells})
    torch.manual_seed(1)
    model = build_model(arch).double().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.dim() == 4 and p.shape[-1] == 1:
                p.mul_((torch.rand_like(p) > 0.3).double())  # a weight mask's zeros
        pw1 = model.cells[0].ops[1][2]  # an op's first pointwise conv: one dead middle channel
        pw1.weight[0] = 0
        model.cells[0].ops[1][3].bias[0] = -1.0
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 1.5)
    deployed = get_space("darts").deploy(model)
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        assert (deployed(x) - model(x)).abs().max() < 1e-9
    merged = [m for m in deployed.modules() if isinstance(m, MergedConvs)]
    assert len(merged) == 3 * 8 * 2  # per cell, per edge: one chain of sep convs, one of dil convs
    pools = [m for m in deployed.modules() if isinstance(m, (torch.nn.MaxPool2d, torch.nn.AvgPool2d))]
    assert len(pools) == 3 * 2 * 2  # per cell, one of each kind per source node (not one per edge)
    assert not [m for m in deployed.modules() if isinstance(m, torch.nn.BatchNorm2d)]  # pools' BNs folded
    reduces = [m for m in deployed.modules() if isinstance(m, MergedReduces)]
    assert len(reduces) == 2 and all(len(m.ranges) == 4 for m in reduces)  # the reduction cell's skips


@pytest.mark.parametrize("space,config,genotype", [
    ("nb201", {"C": 4, "cells_per_stage": 1, "input_size": 16},
     "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"),
    ("mbconv", None, None),
    ("nbmacro", {"input_size": 16, "head_channels": 64}, "12012201"),
    ("darts", {"in_channels": 3, "num_classes": 10, "input_size": 16, "stem_channels": 9, "pool_bn": True},
     {"cells": [{"reduction": r, "channels": 6, "edges": [  # every op on the input edges: shared pools, reduces
         {"from": s, "to": d, "op": op, **({"mid": 4} if op.startswith("sep") else {})}
         for d in (2, 3) for s in (0, 1) for op in ("skip_connect", "max_pool_3x3", "avg_pool_3x3",
                                                    "sep_conv_3x3", "dil_conv_5x5")]
         + [{"from": 2, "to": 4, "op": "max_pool_3x3"}, {"from": 3, "to": 5, "op": "skip_connect"}]}
         for r in (False, True, False)]}),
])
def test_every_space_exports_to_onnx_through_the_dynamo_exporter(space, config, genotype, tmp_path):
    """Each space's inference form through `torch.onnx.export(dynamo=True)`, checked in ONNX
    Runtime at two batch sizes (the batch dimension is dynamic)."""
    ort = pytest.importorskip("onnxruntime")
    import warnings

    from budgetnas.arch import Arch
    from budgetnas.export import export_onnx
    from budgetnas.spaces import get_space
    from budgetnas.spaces.mbconv import tiny_config, tiny_genotype

    if space == "mbconv":
        config, genotype = tiny_config(3, 10, 16), tiny_genotype()
    arch = Arch(space, config, genotype)
    torch.manual_seed(0)
    model = get_space(space).deploy(build_model(arch).eval())
    shape = (3, arch.config.get("input_size", 32), arch.config.get("input_size", 32))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the exporter torch keeps: no deprecation
        export_onnx(model, torch.randn(1, *shape), tmp_path / "m.onnx", 18)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    for batch in (1, 4):
        x = torch.randn(batch, *shape)
        got = session.run(None, {"input": x.numpy()})[0]
        np.testing.assert_allclose(got, model(x).detach().numpy(), atol=1e-4, rtol=1e-4)
