"""DNA end to end on tiny CPU settings: teachers via hooks, block training and resume, cached
ratings, the search command, parallel blocks, DNA+ and the self-supervised teacher."""
from __future__ import annotations

import json

import pytest
import torch
import torchvision

from budgetnas.arch import load_arch
from budgetnas.data import load_dataset
from budgetnas.errors import UserError
from budgetnas.methods.dna.blockwise import train_block
from budgetnas.methods.dna.options import DNAOptions as Options
from budgetnas.methods.dna.setup import build_blocks, student_config
from budgetnas.methods.dna.supernet import BlockSupernet, CellSpec, parse_ops
from budgetnas.methods.dna.teacher import Teacher, default_taps
from budgetnas.spaces.mbconv import CONFIG_DEFAULTS
from budgetnas.testing import reference_run

# Tiny settings; no report (tests/test_report.py covers it).
SMALL = ["--dataset", "synthetic", "--teacher-epochs", "1", "--epochs", "2", "--depths", "1,2",
         "--ops", "e3k3,e6k3,e3k5", "--final-epochs", "1", "--recal-batches", "2", "--no-report"]


def test_hooks_capture_torchvision_stage_shapes():
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small()
    taps = ["features.1", "features.3", "features.8", "features.11"]
    teacher = Teacher(model, taps)
    x = torch.randn(2, 3, 64, 64)
    got = teacher.capture(x)
    expected, h = [], x
    with torch.no_grad():
        for i, layer in enumerate(model.features):
            h = layer(h)
            if f"features.{i}" in taps:
                expected.append(h)
    assert [tuple(g.shape) for g in got] == [(2, 16, 16, 16), (2, 24, 8, 8), (2, 48, 4, 4), (2, 96, 2, 2)]
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)
    assert [tuple(s) for s in teacher.shapes((3, 64, 64), torch.device("cpu"))][0] == (16, 16, 16)
    assert not model.training  # eval mode by default
    with pytest.raises(UserError, match="no module named features.99"):
        Teacher(model, ["features.99"])


def test_efficientnet_taps_match_the_student_blocks_and_bad_strides_are_explained():
    torch.manual_seed(0)
    model = torchvision.models.efficientnet_b0()
    taps = default_taps(model, "efficientnet_b0")
    assert taps == [f"features.{i}" for i in range(2, 8)]
    shapes = Teacher(model, taps).shapes((3, 64, 64), torch.device("cpu"))
    assert [s[0] for s in shapes] == [24, 40, 80, 112, 192, 320]
    dataset = load_dataset("synthetic")
    opts = Options(teacher="torchvision:efficientnet_b0")
    cfg = {**student_config(opts, None, dataset, 6), "in_channels": 3, "input_size": 64,
           "first_channels": 8, "stem_channels": 8}
    cells = [[CellSpec(1, s[0])] for s in shapes]
    ops = parse_ops(["e3k3"])
    blocks = build_blocks(cfg, cells, ops, shapes, opts, torch.device("cpu"), 0)
    assert len(blocks) == 6
    with pytest.raises(UserError, match=r"--strides 2,2,2,1,2,1"):
        build_blocks({**cfg, "strides": [2, 2, 1, 1, 2, 1]}, cells, ops, shapes, opts, torch.device("cpu"), 0)


def _teacher_and_block(tmp_path):
    torch.manual_seed(0)
    from budgetnas.arch import build_model
    from budgetnas.methods.dna.teacher import teacher_arch

    dataset = load_dataset("synthetic")
    arch = teacher_arch(dataset, 0)
    teacher = Teacher(build_model(arch), ["stages.0", "stages.1", "stages.2"])
    cfg = {**CONFIG_DEFAULTS, **arch.config}
    shapes = teacher.shapes(dataset.shape, torch.device("cpu"))
    torch.manual_seed(1)
    block = BlockSupernet(cfg, 1, shapes[0][0], 2, [CellSpec(1, shapes[1][0]), CellSpec(2, shapes[1][0])],
                          parse_ops(["e3k3", "e6k5"]), shapes[1][0])
    return dataset, teacher, block


def test_block_training_resumes_exactly(tmp_path):
    kw = dict(epochs=3, batch_size=64, lr=0.01, lr_decay=0.9, weight_decay=1e-4, seed=5,
              device=torch.device("cpu"), settings={"k": 1}, progress=False)
    dataset, teacher, straight = _teacher_and_block(tmp_path)
    log_a = train_block(straight, teacher, dataset, tmp_path / "a", **kw)
    _, _, interrupted = _teacher_and_block(tmp_path)
    train_block(interrupted, teacher, dataset, tmp_path / "b", stop_after=1, **kw)
    _, _, resumed = _teacher_and_block(tmp_path)  # a fresh process: weights come from the checkpoint
    log_b = train_block(resumed, teacher, dataset, tmp_path / "b", **kw)
    assert [r["loss"] for r in log_a] == [r["loss"] for r in log_b]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(UserError, match="other settings"):
        train_block(resumed, teacher, dataset, tmp_path / "b", **{**kw, "settings": {"k": 2}})


def test_search_end_to_end_cache_reuse_other_budget_and_train(tmp_path, cli_in_process):
    out = tmp_path / "run"
    first = cli_in_process("search", "dna", *SMALL, "--target-params", "40000", "--out", out)
    assert first.returncode == 0, first.stderr
    summary = json.loads((out / "summary.json").read_text())
    for key in ("method", "dataset", "target", "params_dense", "params_nonzero", "macs", "val_acc",
                "search_seconds", "peak_memory_mb", "seed", "version"):
        assert key in summary, key
    assert summary["target"] == {"params": 40000} and summary["params_dense"] <= 40000
    assert summary["cost"] == summary["params_dense"]  # the table's sum is the real count
    front = json.loads((out / "front.json").read_text())
    assert front["points"][front["chosen"]]["genotype"] == load_arch(out / "arch.json").genotype
    assert summary["candidates_per_block"] == [12, 12, 12]  # 3 ops: 3 + 9 per block

    stamps = {p: p.stat().st_mtime_ns for p in out.glob("round0/block*/*")}
    small = front["points"][0]["cost"]
    again = cli_in_process("search", "dna", *SMALL, "--target-params", str(int(small)), "--out", out, "--resume")
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in out.glob("round0/block*/*")} == stamps  # no retraining, no re-rating
    assert json.loads((out / "summary.json").read_text())["params_dense"] == small
    assert load_arch(out / "arch.json").genotype == front["points"][0]["genotype"]

    too_small = cli_in_process("search", "dna", *SMALL, "--target-params", str(int(small) - 1), "--out", out, "--resume")
    assert too_small.returncode == 2 and f"smallest costs {int(small)}" in too_small.stderr
    assert "Traceback" not in too_small.stderr

    trained = cli_in_process("train", out / "arch.json", "--dataset", "synthetic", "--epochs", "1", "--out", tmp_path / "t")
    assert trained.returncode == 0, trained.stderr
    assert json.loads((tmp_path / "t" / "metrics.json").read_text())["params_nonzero"] == small


def test_blocks_in_separate_processes_equal_one_process(tmp_path, cli):
    args = [*SMALL, "--final-epochs", "0", "--target-macs", "1000000000"]
    assert cli("search", "dna", *args, "--out", tmp_path / "one").returncode == 0
    split = tmp_path / "split"
    for k in (0, 1, 2):
        result = cli("search", "dna", *args, "--out", split, "--block", str(k))
        assert result.returncode == 0, result.stderr
    stamps = {p: p.stat().st_mtime_ns for p in split.glob("round0/block*/ratings.json")}
    final = cli("search", "dna", *args, "--out", split)
    assert final.returncode == 0, final.stderr
    assert {p: p.stat().st_mtime_ns for p in split.glob("round0/block*/ratings.json")} == stamps
    for k in (0, 1, 2):
        a = json.loads((tmp_path / "one" / f"round0/block{k}/ratings.json").read_text())
        b = json.loads((split / f"round0/block{k}/ratings.json").read_text())
        assert a == b
    assert (json.loads((tmp_path / "one" / "front.json").read_text())
            == json.loads((split / "front.json").read_text()))


def test_progressive_and_self_supervised_teacher(tmp_path, cli_in_process):
    result = cli_in_process("search", "dna", *SMALL, "--teacher", "none", "--progressive", "1",
                 "--target-latency-ms", "1000", "--latency-runs", "2", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["rounds"] == 2 and "round0" in summary["teacher"]  # round 1's teacher: round 0's net
    assert len(list((tmp_path / "round0" / "retrained").glob("*/model.safetensors"))) == 1
    assert (tmp_path / "round0" / "teacher" / "model.safetensors").is_file()
    assert (tmp_path / "round1" / "block2" / "ratings.json").is_file()
    assert json.loads((tmp_path / "round0" / "costs_latency.json").read_text())["metric"] == "latency"


def test_bad_inputs_are_one_line_errors(tmp_path, cli_in_process):
    no_budget = cli_in_process("search", "dna", "--dataset", "synthetic", "--out", tmp_path / "a")
    assert no_budget.returncode == 2 and "budget" in no_budget.stderr
    bad_op = cli_in_process("search", "dna", "--dataset", "synthetic", "--ops", "e3k4", "--target-params", "1",
                 "--out", tmp_path / "b")
    assert bad_op.returncode == 2 and "--ops" in bad_op.stderr
    no_weights = cli_in_process("search", "dna", "--dataset", "synthetic", "--teacher", "torchvision:efficientnet_b0",
                     "--target-params", "1", "--out", tmp_path / "c")
    assert no_weights.returncode == 2 and "--teacher-weights" in no_weights.stderr
    widths = cli_in_process("search", "dna", "--dataset", "synthetic", "--widths", "8", "--target-params", "1",
                 "--teacher-epochs", "1", "--out", tmp_path / "d")
    assert widths.returncode == 2 and "--adapters" in widths.stderr


def test_width_cells_with_adapters_cost_exactly_what_the_exported_network_counts(tmp_path, cli_in_process):
    # Cells of widths 8 and 16 in every block: a block's first-layer cost depends on the previous
    # block's width, so the search runs over width states; its sums must still be exact.
    # (Seed 1: with it a width-16 cell is on the front, which this check needs.)
    result = cli_in_process("search", "dna", *SMALL, "--adapters", "--widths", "8,16", "--depths", "1", "--seed", "1",
                 "--final-epochs", "0", "--target-macs", "300000", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["cells"] == [["d1w8", "d1w16"]] * 3 and summary["candidates_per_block"] == [6, 6, 6]
    assert summary["cost"] == summary["macs"] <= 300000
    front = json.loads((tmp_path / "front.json").read_text())["points"]
    widths = {tuple(s["channels"] for s in p["genotype"]["stages"]) for p in front}
    assert len(widths) > 1  # both widths reach the front


def test_killed_while_rating_resumes_to_the_same_result(tmp_path, cli):
    from conftest import ROOT

    from budgetnas.testing import compare_json

    args = ["search", "dna", *SMALL, "--final-epochs", "0", "--target-params", "40000"]
    reference = reference_run(args, tmp_path, cwd=ROOT)
    # Rating 20 of 36 is in block 1: block 0 is rated (ratings.json), block 1 trained, not rated.
    out = tmp_path / "killed"
    killed = cli(*args, "--out", out, env={"BUDGETNAS_KILL_AT": "rate:20"})
    assert killed.returncode == -9
    assert (out / "round0" / "block0" / "ratings.json").is_file()
    assert not (out / "round0" / "block1" / "ratings.json").exists()
    assert not (out / "checkpoint.pt").exists()  # the run's own checkpoint comes after round 0
    resumed = cli(*args, "--out", out, "--resume")  # continues from the blocks' checkpoints
    assert resumed.returncode == 0, resumed.stderr
    files = ["summary.json", "arch.json", "front.json", "round0/block1/ratings.json"]
    assert compare_json(reference, out, files, {"search_seconds", "peak_memory_mb"}) == []


def test_nan_loss_in_block_training_stops_with_exit_2(tmp_path, cli_in_process):
    result = cli_in_process("search", "dna", "--dataset", "synthetic", "--teacher-epochs", "1", "--epochs", "2",
                 "--depths", "1", "--ops", "e3k3", "--final-epochs", "0", "--target-params", "40000",
                 "--no-report", "--lr", "1e30", "--out", tmp_path)
    assert result.returncode == 2, result.stderr
    assert "block 0: loss became nan" in result.stderr and "step" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
