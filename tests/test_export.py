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
