"""DNA+ and DNA++ behaviour on tiny CPU settings: the next round's teacher is the previous round's
found network, retrained; the self-supervised teacher's targets change the ratings."""
from __future__ import annotations

import json

import torch

from budgetnas.arch import build_model, load_arch
from budgetnas.io import load_safetensors
from budgetnas.methods.dna.rounds import describe
from budgetnas.methods.dna.setup import teacher_checksum
from budgetnas.methods.dna.teacher import Teacher

SMALL = ["--dataset", "synthetic", "--teacher-epochs", "1", "--epochs", "2", "--depths", "1,2",
         "--ops", "e3k3,e6k3,e3k5", "--recal-batches", "2", "--no-report", "--allow-weak-teacher"]


def _log(run) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]


def _scores(run) -> list[list[float]]:
    return [[c["score"] for c in json.loads((run / "round0" / f"block{k}" / "ratings.json").read_text())["candidates"]]
            for k in range(3)]


def test_round_two_teacher_is_round_one_network_retrained(tmp_path, cli_in_process):
    out = tmp_path / "run"
    result = cli_in_process("search", "dna", *SMALL, "--progressive", "1", "--final-epochs", "1",
                 "--target-params", "40000", "--out", out)
    assert result.returncode == 0, result.stderr
    log = _log(out)
    teachers = {row["round"]: row for row in log if row["stage"] == "teacher"}
    found = {row["round"]: row["network"] for row in log if row["stage"] == "search"}
    (retrain_row,) = [row for row in log if row["stage"] == "retrain"]

    # The retrained directory holds round 0's found network, trained (not its initial weights).
    retrained = out / "round0" / "retrained"
    (directory,) = [p for p in retrained.iterdir() if p.is_dir()]
    assert retrain_row["teacher_next"] == str(directory) == teachers[1]["source"]
    arch = load_arch(directory / "arch.json")
    assert describe(arch.genotype) == found[0]
    assert json.loads((directory / "metrics.json").read_text())["epochs"] == 1
    model = build_model(arch)
    model.load_state_dict(load_safetensors(directory / "model.safetensors"))
    fresh = build_model(arch)
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))

    # Round 1 distilled from exactly these weights, and not from round 0's teacher.
    taps = [f"stages.{i}" for i in range(len(arch.genotype["stages"]))]
    assert teachers[1]["teacher_sum"] == teacher_checksum(Teacher(model, taps))
    assert teachers[0]["teacher_sum"] != teachers[1]["teacher_sum"]
    assert teachers[0]["source"] == "train"
    # ... so its ratings differ from round 0's for the same candidates.
    for k in range(3):
        r0 = json.loads((out / "round0" / f"block{k}" / "ratings.json").read_text())["candidates"]
        r1 = json.loads((out / "round1" / f"block{k}" / "ratings.json").read_text())["candidates"]
        assert [(c["cell"], c["path"]) for c in r0] == [(c["cell"], c["path"]) for c in r1]
        assert [c["score"] for c in r0] != [c["score"] for c in r1]
    assert json.loads((out / "summary.json").read_text())["rounds"] == 2


def test_self_supervised_targets_change_the_ratings_deterministically(tmp_path, cli_in_process):
    args = ["search", "dna", *SMALL, "--final-epochs", "0", "--target-params", "40000"]
    runs = {}
    for name, teacher in (("dna", "train"), ("dnapp", "none"), ("dnapp_again", "none")):
        runs[name] = tmp_path / name
        result = cli_in_process(*args, "--teacher", teacher, "--out", runs[name])
        assert result.returncode == 0, result.stderr
    sums = {name: [r for r in _log(run) if r["stage"] == "teacher"][0]["teacher_sum"] for name, run in runs.items()}
    assert sums["dnapp"] == sums["dnapp_again"] != sums["dna"]
    assert _scores(runs["dnapp"]) == _scores(runs["dnapp_again"])
    plain, ssl = _scores(runs["dna"]), _scores(runs["dnapp"])
    assert len(plain) == len(ssl) and all(len(a) == len(b) for a, b in zip(plain, ssl))
    for a, b in zip(plain, ssl):
        assert a != b
    # The self-supervised teacher was trained without labels (BYOL EMA target), not by the recipe.
    info = json.loads((runs["dnapp"] / "round0" / "teacher" / "metrics.json").read_text())
    assert info["kind"] == "self-supervised EMA target"
