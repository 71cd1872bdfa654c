"""Baselines: DARTS search and derivation, width scaling, random networks, resume, bad targets."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from budgetnas import build_model, load_arch
from budgetnas.errors import UserError
from budgetnas.methods.darts.options import DartsOptions
from budgetnas.methods.darts.supernet import derive_cell
from budgetnas.methods.random.method import candidate_cells
from budgetnas.methods.random.options import RandomOptions
from budgetnas.runs import run_method
from budgetnas.spaces.darts_cells import (MIN_WIDTH, NetShape, cell_edges, make_arch, measure,
                                          random_cell, reduction_cells, scale_to_target)
from budgetnas.spaces.darts import OPS
from budgetnas.testing import kill_and_resume, reference_run

ROOT = Path(__file__).resolve().parents[1]
SHAPE = NetShape(in_channels=1, num_classes=10, input_size=8)
# A search of a few seconds: 3 cells at C=2 on 200 digits.
FAST = dict(dataset="digits", subset=200, layers=3, channels=2, batch_size=32, seed=0, threads=1,
            report=False)



def run_darts(opts, progress=True):
    return run_method("darts", opts, progress=progress)


def run_random(opts, progress=True):
    return run_method("random", opts, progress=progress)


def check_arch(path: Path, *, layers: int) -> dict:
    """Loads, builds and runs; every node has exactly 2 inputs; widths double at reductions."""
    arch = load_arch(path)
    model = build_model(arch)
    model.eval()
    cfg = arch.config
    out = model(torch.zeros(2, cfg["in_channels"], cfg["input_size"], cfg["input_size"]))
    assert out.shape == (2, cfg["num_classes"])
    cells = arch.genotype["cells"]
    assert len(cells) == layers
    reductions = reduction_cells(layers)
    assert [c["reduction"] for c in cells] == [i in reductions for i in range(layers)]
    stage_of = [sum(r <= i for r in reductions) for i in range(layers)]
    for i, cell in enumerate(cells):  # the cells of a stage share its width
        assert cell["channels"] == cells[stage_of.index(stage_of[i])]["channels"] >= 2
        for node in range(2, 6):
            inputs = [e["from"] for e in cell["edges"] if e["to"] == node]
            assert len(inputs) == 2 and len(set(inputs)) == 2 and all(s < node for s in inputs)
    return json.loads(path.read_text())


# ------------------------------------------------------------------ derivation
def test_derive_keeps_the_two_strongest_inputs_per_node():
    edges = cell_edges(4)
    weights = torch.full((len(edges), len(OPS)), 1.0 / len(OPS))
    strong = {(0, 2): 1, (1, 2): 3, (2, 3): 6, (0, 3): 2, (3, 4): 4, (1, 4): 0, (4, 5): 5, (2, 5): 1}
    for (src, dst), op in strong.items():
        weights[edges.index((src, dst)), op] = 0.5 + 0.01 * op
    weights[edges.index((1, 3)), 5] = 0.3  # strong, but weaker than both chosen inputs of node 3
    derived = derive_cell(weights)
    assert {(e["from"], e["to"]): e["op"] for e in derived} == {k: OPS[v] for k, v in strong.items()}


# ------------------------------------------------------------------ width scaling
@pytest.mark.parametrize("unit", ["params", "macs"])
def test_width_scaling_lands_within_3_percent_at_any_width(unit):
    cells = [random_cell(random.Random(i)) for i in range(3)]
    make = lambda w: make_arch(cells, w, SHAPE)  # noqa: E731
    grid = {c: measure(make(c), unit) for c in range(MIN_WIDTH, 41)}  # any integer C, odd too
    values = list(grid.values())
    assert all(a < b for a, b in zip(values, values[1:]))  # strictly grows with the width
    for goal in (int(1.2 * grid[2]), int(0.5 * (grid[12] + grid[13])), grid[20], grid[40] - 1):
        scaled = scale_to_target(make, goal, unit, layers=3)
        assert abs(scaled.rel_error) <= 0.03, (goal, scaled.size, scaled.widths)
        assert scaled.size == measure(scaled.arch, unit)
        # never farther than the nearest default-width network (C alone)
        assert abs(scaled.size - goal) <= min(abs(v - goal) for v in values)
        widths = [c["channels"] for c in scaled.arch.genotype["cells"]]
        assert list(scaled.widths.stages) == widths and scaled.arch.config["stem_channels"] == scaled.widths.stem
    assert scale_to_target(make, grid[20], unit, layers=3).rel_error == 0.0


def test_width_scaling_refuses_a_target_below_the_smallest_width():
    cells = [random_cell(random.Random(0)) for _ in range(3)]
    smallest = measure(make_arch(cells, MIN_WIDTH, SHAPE), "params")
    with pytest.raises(UserError, match="below this genotype's smallest network"):
        scale_to_target(lambda w: make_arch(cells, w, SHAPE), smallest - 1, "params", layers=3)


@pytest.mark.parametrize("method,flags,message", [
    ("darts", ["--target-params", "100"], "below the smallest network of 3 cells"),
    ("random", ["--target-macs", "50"], "below the smallest network of 3 cells"),
    ("darts", ["--target-params", str(10**13)], "above the largest network"),
    ("random", ["--target-params", "1000", "--target-macs", "100000"], "give one target"),
])
def test_impossible_targets_exit_2(cli_in_process, tmp_path, method, flags, message):
    result = cli_in_process("search", method, "--subset", "100", *flags, "--out", tmp_path / "run")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


# ------------------------------------------------------------------ DARTS
def test_darts_steps_compute_only_the_gradients_their_optimizer_uses():
    """The architecture step's alpha gradients equal those of a full backward (the weights' are
    skipped, not changed), and every parameter needs gradients again afterwards."""
    from budgetnas.methods.darts.method import no_grad_for
    from budgetnas.methods.darts.supernet import DartsSupernet

    torch.manual_seed(0)
    net = DartsSupernet(channels=2, layers=3, in_channels=1, num_classes=10)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    loss = lambda: torch.nn.functional.cross_entropy(net(x), y)  # noqa: E731
    loss().backward()
    full = [a.grad.clone() for a in net.arch_parameters()]
    net.zero_grad(set_to_none=True)
    with no_grad_for(net.weight_parameters()):
        loss().backward()
    assert all(torch.allclose(a.grad, g, rtol=1e-4, atol=1e-7) for a, g in zip(net.arch_parameters(), full))
    assert all(w.grad is None for w in net.weight_parameters())
    assert all(p.requires_grad for p in net.parameters())


def test_darts_search_writes_a_valid_scaled_architecture(tmp_path, capsys):
    out = tmp_path / "darts"
    run_darts(DartsOptions(**FAST, epochs=2, target_params=6000, out=out), progress=False)
    arch = check_arch(out / "arch.json", layers=3)
    assert arch["provenance"]["method"] == "darts"
    # DARTS shares one normal and one reduce cell; each cell holds its own copy.
    cells = arch["genotype"]["cells"]
    assert cells[1]["edges"] == cells[2]["edges"]  # both reduction cells
    summary = json.loads((out / "summary.json").read_text())
    for key in ("method", "dataset", "target", "params_dense", "params_nonzero", "macs", "val_acc",
                "search_seconds", "peak_memory_mb", "seed", "version", "channels", "target_error"):
        assert key in summary
    assert summary["target"] == {"params": 6000}
    assert summary["params_nonzero"] == summary["params_dense"]
    assert abs(summary["params_nonzero"] / 6000 - 1) <= 0.03 and abs(summary["target_error"]) <= 0.03
    assert summary["stage_widths"] == [c["channels"] for c in cells]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and 0.0 <= summary["val_acc"] <= 1.0
    printed = capsys.readouterr().out
    assert "off target" in printed and f"budgetnas train {out / 'arch.json'}" in printed
    # The search does not depend on the target: reuse it and scale to a larger one.
    bigger = tmp_path / "bigger"
    run_darts(DartsOptions(**FAST, scale_from=out, target_params=30000, out=bigger), progress=False)
    scaled = check_arch(bigger / "arch.json", layers=3)
    assert [c["edges"] for c in scaled["genotype"]["cells"]] == [c["edges"] for c in cells]
    assert scaled["genotype"]["cells"][0]["channels"] > cells[0]["channels"]
    again = json.loads((bigger / "summary.json").read_text())
    assert again["searched_in"] == str(out) and again["search_seconds"] == summary["search_seconds"]
    with pytest.raises(UserError, match="other data"):
        run_darts(DartsOptions(**{**FAST, "subset": 300}, scale_from=out, target_params=30000,
                               out=tmp_path / "other"), progress=False)


def test_darts_kill_and_resume_gives_the_same_arch(tmp_path):
    args = ["search", "darts", "--dataset", "digits", "--subset", "120", "--layers", "3",
            "--channels", "2", "--batch-size", "24", "--epochs", "2", "--target-params", "6000",
            "--no-report", "--threads", "1"]
    reference = reference_run(args, tmp_path, cwd=ROOT)
    # Writes: run_info.json (1), then checkpoint.pt and log.jsonl per epoch: 4 = epoch 2's checkpoint.
    outcome = kill_and_resume(args, tmp_path / "killed", "write:4", files=["arch.json"],
                              ignore={"provenance"}, reference=reference, cwd=ROOT)
    assert outcome.killed and outcome.resumes == 1
    assert outcome.equal, outcome.differences
    ref_log = (reference / "log.jsonl").read_text().splitlines()
    got_log = (tmp_path / "killed" / "write_4" / "log.jsonl").read_text().splitlines()
    strip = lambda rows: [{k: v for k, v in json.loads(r).items() if k not in ("seconds", "peak_memory_mb")}
                          for r in rows]  # noqa: E731
    assert strip(ref_log) == strip(got_log)


# ------------------------------------------------------------------ random
def test_random_candidates_are_distinct_and_repeatable():
    first = [candidate_cells(0, i, 3) for i in range(4)]
    assert [candidate_cells(0, i, 3) for i in range(4)] == first
    assert len({json.dumps(c) for c in first}) == 4
    assert candidate_cells(1, 0, 3) != first[0]
    for cells in first:  # each cell its own genotype
        assert len({json.dumps(c) for c in cells}) == 3


def test_random_search_same_seed_same_arch_other_seed_other_arch(tmp_path):
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        out = tmp_path / name
        run_random(RandomOptions(**{**FAST, "seed": seed}, candidates=3, epochs_per_candidate=0,
                                 target_params=5000, out=out), progress=False)
        runs[name] = check_arch(out / "arch.json", layers=3)["genotype"]
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["picked"] == 0 and summary["val_acc"] is None and summary["method"] == "random"
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["sample"] for r in log] == [0, 1, 2]
    assert all(abs(r["params_nonzero"] / 5000 - 1) < 0.5 for r in log)


def test_random_search_rates_candidates_and_resumes_identically(tmp_path):
    options = dict(**FAST, candidates=3, epochs_per_candidate=1, target_params=5000)
    run_random(RandomOptions(**options, out=tmp_path / "full"), progress=False)
    assert run_random(RandomOptions(**options, out=tmp_path / "cut", stop_after=2), progress=False) is None
    run_random(RandomOptions(**options, out=tmp_path / "cut", resume=True), progress=False)
    full, cut = (json.loads((tmp_path / d / "arch.json").read_text()) for d in ("full", "cut"))
    assert full["genotype"] == cut["genotype"] and full["config"] == cut["config"]
    summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    log = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    best = max(log, key=lambda r: (r["val_acc"], -r["sample"]))
    assert summary["picked"] == best["sample"] and summary["val_acc"] == best["val_acc"]
    with pytest.raises(UserError, match="options differ"):
        run_random(RandomOptions(**{**options, "candidates": 4}, out=tmp_path / "cut", resume=True),
                   progress=False)
