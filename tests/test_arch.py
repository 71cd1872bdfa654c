"""Architecture file: round trip, validation errors (exit 2, precise message), masks."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from budgetnas import build_model, load_arch, save_arch
from budgetnas.cost import count_nonzero, count_params
from budgetnas.errors import ArchError, UserError

from conftest import EXAMPLES


def _write(tmp_path: Path, obj) -> Path:
    path = tmp_path / "arch.json"
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


@pytest.fixture
def small_obj() -> dict:
    return json.loads((EXAMPLES / "small_digits.json").read_text())


def test_examples_load_and_build():
    for name in ("darts_v2.json", "small_digits.json"):
        arch = load_arch(EXAMPLES / name)
        model = build_model(arch)
        cfg = arch.config
        out = model.eval()(torch.zeros(2, cfg["in_channels"], cfg["input_size"], cfg["input_size"]))
        assert out.shape == (2, cfg["num_classes"])


def test_round_trip_with_masks(tmp_path, small_obj):
    arch = load_arch(EXAMPLES / "small_digits.json")
    model = build_model(arch)
    name = "cells.0.ops.0.2.weight"  # a pointwise conv of a sep_conv
    weight = dict(model.named_parameters())[name]
    mask = (torch.rand(weight.shape, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    arch.masks = {name: mask}
    save_arch(arch, tmp_path)
    loaded = load_arch(tmp_path / "arch.json")
    masked_model = build_model(loaded)
    w = dict(masked_model.named_parameters())[name]
    assert torch.equal(w.detach() == 0, mask == 0) or bool((w.detach()[mask == 0] == 0).all())
    assert count_nonzero(masked_model) == count_params(masked_model) - int((mask == 0).sum())


def test_masked_weights_stay_zero_in_training(tmp_path):
    arch = load_arch(EXAMPLES / "small_digits.json")
    name = "cells.1.ops.1.6.weight"
    shape = dict(build_model(arch).named_parameters())[name].shape
    mask = torch.zeros(shape)
    mask[..., 0, 0][: shape[0] // 2] = 1
    arch.masks = {name: mask}
    model = build_model(arch)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    for _ in range(3):
        loss = model(torch.randn(4, 1, 8, 8)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    w = dict(model.named_parameters())[name].detach()
    assert (w[mask == 0] == 0).all() and (w[mask == 1] != 0).any()


@pytest.mark.parametrize("mutate, needle", [
    (lambda o: o.update(version=2), "unsupported 'version' 2"),
    (lambda o: o.update(format="other"), "'format' must be"),
    (lambda o: o["genotype"]["cells"][0]["edges"][0].update(op="conv_9x9"), "cells[0].edges[0].op"),
    (lambda o: o["genotype"]["cells"][1].update(channels=1), "cells[1].channels"),  # >= 2 (odd widths are fine)
    (lambda o: o["genotype"]["cells"][0]["edges"][1].update(mid=4), "cells[0].edges[1].mid"),
    (lambda o: o["genotype"]["cells"][0]["edges"][0].update(to=9), "cells[0].edges[0].to"),
    (lambda o: o["genotype"]["cells"][0].update(edges=[e for e in o["genotype"]["cells"][0]["edges"]
                                                       if e["to"] != 3]), "node(s) [3]"),
    (lambda o: o["config"].update(stem_channels=0), "config.stem_channels"),
    (lambda o: o["config"].update(colour="red"), "unknown setting"),
    (lambda o: o.update(masks="missing.safetensors"), "masks file"),
    (lambda o: o.update(masks="../../etc/passwd"), "escapes the directory"),
    (lambda o: o.update(space="resnet"), "unknown space 'resnet'"),
])
def test_malformed_arch_is_refused(tmp_path, small_obj, mutate, needle):
    obj = copy.deepcopy(small_obj)
    mutate(obj)
    with pytest.raises(UserError) as info:
        load_arch(_write(tmp_path, obj))
    assert needle in str(info.value)


def test_not_json(tmp_path):
    with pytest.raises(UserError, match="not valid JSON"):
        load_arch(_write(tmp_path, "{not json"))


def test_mask_shape_mismatch(tmp_path):
    arch = load_arch(EXAMPLES / "small_digits.json")
    arch.masks = {"cells.0.ops.0.2.weight": torch.ones(3, 3)}
    save_arch(arch, tmp_path)
    with pytest.raises(ArchError, match="has shape"):
        load_arch(tmp_path / "arch.json")


@pytest.mark.parametrize("content, needle", [
    ('{"format": "budgetnas.arch", "version": 7}', "unsupported 'version'"),
    ("[1, 2", "not valid JSON"),
    ('{"format": "budgetnas.arch", "version": 1, "space": "darts", "config": {}, '
     '"genotype": {"cells": [{"reduction": false, "channels": 8, "edges": '
     '[{"from": 0, "to": 2, "op": "bogus"}]}]}}', "unknown op 'bogus'"),
])
def test_cli_exit_2_without_traceback(tmp_path, cli_in_process, content, needle):
    path = _write(tmp_path, content)
    result = cli_in_process("profile", path)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_missing_masks_file_cli(tmp_path, cli_in_process, small_obj):
    small_obj["masks"] = "arch.safetensors"
    result = cli_in_process("profile", _write(tmp_path, small_obj))
    assert result.returncode == 2 and "masks file 'arch.safetensors' not found" in result.stderr
