"""DNA teachers in the MBConv space: the trained teacher is larger than every candidate and records
its accuracy, a weaker teacher is refused, and teacher weights are never unpickled."""
from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
import torchvision

from budgetnas.arch import Arch, build_model, save_arch
from budgetnas.cost import count_params
from budgetnas.data import load_dataset
from budgetnas.errors import UserError
from budgetnas.io import save_safetensors
from budgetnas.methods.dna.options import DEFAULT_OPS
from budgetnas.methods.dna.teacher import TEACHER_INFO, teacher_arch, torchvision_teacher, train_teacher

TINY = ["--dataset", "synthetic", "--epochs", "1", "--depths", "1", "--ops", "e3k3", "--recal-batches", "1",
        "--no-report"]


def _largest_candidate(teacher: Arch) -> Arch:
    """The biggest network of the default space: the deepest default cell (2 layers) of the largest
    default op in every block, at the widths the students copy from the teacher."""
    biggest = max(DEFAULT_OPS, key=lambda op: (int(op[1]), int(op[3])))
    layer = {"expansion": int(biggest[1]), "kernel": int(biggest[3])}
    stages = [{"channels": s["channels"], "layers": [dict(layer), dict(layer)]} for s in teacher.genotype["stages"]]
    return Arch("mbconv", teacher.config, {"stages": stages}, None, teacher.provenance)


def test_trained_teacher_is_larger_than_every_candidate_and_records_its_accuracy(tmp_path):
    dataset = load_dataset("synthetic")
    arch = teacher_arch(dataset, 0)
    big = _largest_candidate(arch)
    teacher_stages, big_stages = arch.genotype["stages"], big.genotype["stages"]
    for t, b in zip(teacher_stages, big_stages, strict=True):
        assert t["channels"] == b["channels"] and len(t["layers"]) == 2 * len(b["layers"])
        assert all(l["expansion"] >= 6 and l["kernel"] >= 7 for l in t["layers"])
    path = train_teacher(dataset, tmp_path / "teacher", epochs=1, seed=0, device=torch.device("cpu"))
    info = json.loads((path / TEACHER_INFO).read_text())
    assert info["params"] == count_params(build_model(arch)) > 1.5 * count_params(build_model(big))
    assert 0.0 <= info["val_acc"] <= 1.0 and 0.0 <= info["test_acc"] <= 1.0
    assert info["test_acc"] == json.loads((path / "metrics.json").read_text())["test_acc"]


def _constant_teacher(directory, dataset) -> None:
    """A `budgetnas train`-style run directory whose network always answers class 0."""
    arch = teacher_arch(dataset, 0)
    save_arch(arch, directory, "arch.json")
    torch.manual_seed(0)
    net = build_model(arch)
    head = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[0] = 1.0
    save_safetensors(directory / "model.safetensors", net.state_dict())


def test_a_teacher_weaker_than_the_found_network_is_refused(tmp_path, cli_in_process):
    dataset = load_dataset("synthetic")
    teacher = tmp_path / "teacher"
    _constant_teacher(teacher, dataset)
    out = tmp_path / "run"
    args = ["search", "dna", *TINY, "--teacher", teacher, "--final-epochs", "3", "--target-params", "1000000",
            "--out", out]
    refused = cli_in_process(*args)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "below the found network's" in refused.stderr and "--allow-weak-teacher" in refused.stderr
    assert not (out / "summary.json").exists()
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("round0/block*/ratings.json")}
    allowed = cli_in_process(*args, "--resume", "--allow-weak-teacher")
    assert allowed.returncode == 0, allowed.stderr
    assert {p: p.stat().st_mtime_ns for p in out.glob("round0/block*/ratings.json")} == stamps  # cached
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if line.strip()]
    teacher_acc = [r for r in log if r["stage"] == "teacher"][0]["val_acc"]
    summary = json.loads((out / "summary.json").read_text())
    assert teacher_acc == pytest.approx(1 / dataset.num_classes, abs=0.1)
    assert summary["val_acc"] > teacher_acc
    without_retraining = cli_in_process("search", "dna", *TINY, "--teacher", teacher, "--final-epochs", "0",
                             "--target-params", "1000000", "--out", tmp_path / "no_check")
    assert without_retraining.returncode == 0, without_retraining.stderr  # nothing retrained to compare


class _Exploit:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_teacher_weights_are_refused_unexecuted(tmp_path, cli_in_process):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({"conv1.weight": _Exploit(marker)})
    pt, disguised = tmp_path / "evil.pt", tmp_path / "evil.safetensors"
    pt.write_bytes(evil)
    disguised.write_bytes(evil)
    run_dir = tmp_path / "rundir"
    save_arch(teacher_arch(load_dataset("synthetic"), 0), run_dir, "arch.json")
    (run_dir / "model.safetensors").write_bytes(evil)
    cases = [["--teacher", "torchvision:resnet18", "--teacher-weights", pt],
             ["--teacher", "torchvision:resnet18", "--teacher-weights", disguised],
             ["--teacher", run_dir]]
    for i, teacher in enumerate(cases):
        result = cli_in_process("search", "dna", *TINY, *teacher, "--target-params", "1000000", "--out", tmp_path / f"o{i}")
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert not marker.exists()
    assert "must be a .safetensors file" in cli_in_process(
        "search", "dna", *TINY, *cases[0], "--target-params", "1000000", "--out", tmp_path / "o").stderr
    pickle.loads(evil)  # the file is a live exploit: unpickling it does create the marker
    assert marker.exists()


def test_a_safetensors_torchvision_teacher_loads(tmp_path):
    torch.manual_seed(0)
    state = torchvision.models.mobilenet_v3_small().state_dict()
    save_safetensors(tmp_path / "w.safetensors", state)
    loaded = torchvision_teacher("mobilenet_v3_small", weights=tmp_path / "w.safetensors", download=False)
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    other = torchvision.models.mobilenet_v3_small(num_classes=10).state_dict()
    save_safetensors(tmp_path / "other.safetensors", other)
    with pytest.raises(UserError, match="do not fit mobilenet_v3_small"):
        torchvision_teacher("mobilenet_v3_small", weights=tmp_path / "other.safetensors", download=False)
