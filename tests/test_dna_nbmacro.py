"""DNA over the NAS-Bench-Macro space: block supernets equal the standalone network, every string
of every block is rated, ratings.csv scores all 6,561 networks at the benchmark's exact counts, and
the command runs end to end on tiny settings."""
from __future__ import annotations

import csv
import json

import pytest
import torch

from budgetnas.arch import load_arch
from budgetnas.cost.nbmacro import nbmacro_costs
from budgetnas.methods.dna.nbmacro.block import (NBMacroBlockSupernet, block_paths, canonical_path,
                                                 copy_stage_weights, rate_block)
from budgetnas.methods.dna.nbmacro.teacher import train_nbmacro_block
from budgetnas.spaces.nbmacro import NBMacroNetwork

TINY = ["search", "dna", "--space", "nbmacro", "--dataset", "synthetic", "--subset", "200",
        "--nbmacro-channels", "4", "--teacher-epochs", "1", "--epochs", "1", "--recal-batches", "1",
        "--rate-batch-size", "16", "--rate-samples", "16", "--final-epochs", "0", "--no-report", "--threads", "1"]


def _randomize_bn(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)


@pytest.mark.parametrize("genotype", ["01201122", "20102210", "12021012"])
def test_block_supernet_equals_the_standalone_network_for_a_fixed_path(genotype):
    torch.manual_seed(0)
    net = NBMacroNetwork({"stem_channels": 4, "head_channels": 8, "input_size": 16}, genotype).eval()
    _randomize_bn(net)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        h, outs = net.stem(x), []
        for layer in net.layers:
            h = layer(h)
            outs.append(h)
    for index, (start, end) in enumerate([(0, 2), (2, 5), (5, 8)]):
        torch.manual_seed(index + 1)
        block = NBMacroBlockSupernet(index, 4, 3).eval()
        _randomize_bn(block)
        copy_stage_weights(block, net, genotype)
        with torch.no_grad():
            got = block(x if index == 0 else outs[start - 1], genotype[start:end])
        torch.testing.assert_close(got, outs[end - 1])


def test_every_string_of_every_block_is_rated_and_duplicates_share_ratings():
    assert [len(block_paths(i)) for i in range(3)] == [9, 27, 27]
    assert [len({canonical_path(i, p) for p in block_paths(i)}) for i in range(3)] == [9, 21, 21]
    assert canonical_path(1, "102") == "120" and canonical_path(0, "01") == "01"
    torch.manual_seed(0)
    block = NBMacroBlockSupernet(1, 4, 3)
    x, y = torch.randn(20, 8, 8, 8), torch.randn(20, 16, 4, 4)
    ratings = rate_block(block, x, y, 12)
    assert sorted(ratings) == block_paths(1)
    assert ratings["102"] == ratings["120"] and ratings["001"] == ratings["010"] != ratings["100"]
    assert ratings["120"] != ratings["210"]  # 12 and 21 are different networks
    assert all(v > 0 for v in ratings.values())
    assert block.training  # the mode is restored


def test_ratings_use_statistics_of_the_recalibration_rows_only():
    """Neither the order of the recalibration rows nor the scoring batch size changes a rating."""
    torch.manual_seed(1)
    block = NBMacroBlockSupernet(2, 4, 3)
    _randomize_bn(block)
    x, y = torch.randn(24, 16, 4, 4), torch.randn(24, 32, 2, 2)
    a = rate_block(block, x, y, 16)
    order = torch.cat([torch.randperm(16), torch.arange(16, 24)])
    b = rate_block(block, x[order], y[order], 16, batch_size=3)
    assert sorted(a) == sorted(b)
    for path in a:
        assert a[path] == pytest.approx(b[path], rel=1e-4)


def test_block_training_resumes_exactly(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(40, 8, 8, 8), torch.randn(40, 16, 4, 4)
    kw = dict(epochs=2, batch_size=16, lr=0.01, lr_decay=0.9, weight_decay=1e-4, seed=1, settings={"k": 1})

    def fresh():
        torch.manual_seed(2)
        return NBMacroBlockSupernet(1, 4, 3)

    straight = fresh()
    train_nbmacro_block(straight, x, y, tmp_path / "a", **kw)
    half = fresh()
    train_nbmacro_block(half, x, y, tmp_path / "b", **{**kw, "epochs": 1})
    import shutil

    resumed = fresh()
    shutil.copy(tmp_path / "b" / "checkpoint.pt", tmp_path / "a" / "checkpoint.pt")  # one epoch done
    train_nbmacro_block(resumed, x, y, tmp_path / "a", **{**kw, "settings": {"k": 1}})
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_search_dna_nbmacro_end_to_end_ratings_csv_and_resume(tmp_path, cli_in_process):
    out = tmp_path / "run"
    first = cli_in_process(*TINY, "--target-params", "600000", "--out", out)
    assert first.returncode == 0, first.stderr
    with open(out / "ratings.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6561 and len({r["arch"] for r in rows}) == 6561
    costs = nbmacro_costs([r["arch"] for r in rows])
    assert [int(r["params"]) for r in rows] == costs["params"].astype(int).tolist()
    assert [int(r["macs"]) for r in rows] == costs["macs"].astype(int).tolist()
    by_arch = {r["arch"]: r for r in rows}
    assert (by_arch["00000000"]["params"], by_arch["00000000"]["macs"]) == ("387882", "7713280")
    assert by_arch["22222222"]["params"] == "2932586"
    assert by_arch["01102000"]["score"] == by_arch["01120000"]["score"]  # same network
    summary = json.loads((out / "summary.json").read_text())
    arch = load_arch(out / "arch.json")
    assert summary["space"] == "nbmacro" and arch.space == "nbmacro"
    chosen = by_arch[arch.genotype]
    assert int(chosen["params"]) == summary["cost"] <= 600000
    fits = [float(r["score"]) for r in rows if int(r["params"]) <= 600000]
    assert float(chosen["score"]) == pytest.approx(min(fits))
    assert summary["teacher"]["genotype"] == "22222222" and "val_acc" in summary["teacher"]
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("round0/block*/*")}
    other = cli_in_process(*TINY, "--target-macs", "20000000", "--out", out, "--resume")
    assert other.returncode == 0, other.stderr
    assert {p: p.stat().st_mtime_ns for p in out.glob("round0/block*/*")} == stamps  # ratings reused
    summary = json.loads((out / "summary.json").read_text())
    assert int(by_arch[load_arch(out / "arch.json").genotype]["macs"]) == summary["cost"] <= 20000000


def test_nbmacro_bad_inputs_are_one_line_errors(tmp_path, cli_in_process):
    base = [*TINY[:-2]]  # without --threads: given again below
    results = [
        (cli_in_process(*base, "--target-latency-ms", "3", "--out", tmp_path / "a"), "--target-macs"),
        (cli_in_process(*base, "--target-params", "10", "--out", tmp_path / "b"), "--target-params"),
        (cli_in_process(*base, "--block", "3", "--out", tmp_path / "c"), "--block"),
        (cli_in_process(*base, "--nb201-channels", "4", "--target-params", "600000", "--out", tmp_path / "d"),
         "--nb201-channels does not apply to --space nbmacro"),
        (cli_in_process(*base, "--depths", "1,2", "--target-params", "600000", "--out", tmp_path / "e"),
         "--depths does not apply to --space nbmacro"),
        (cli_in_process("search", "dna", "--nbmacro-channels", "4", "--target-params", "5000", "--out", tmp_path / "f"),
         "--nbmacro-channels does not apply to --space mbconv"),
        (cli_in_process("search", "dna", "--space", "nb201", "--nbmacro-channels", "4", "--target-params", "5000",
             "--out", tmp_path / "g"), "--nbmacro-channels does not apply to --space nb201"),
        (cli_in_process(*base, "--teacher", "torchvision:resnet18", "--target-params", "600000", "--out", tmp_path / "h"),
         "--teacher"),
    ]
    for result, text in results:
        assert result.returncode == 2 and text in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr


def test_a_teacher_weaker_than_the_found_network_is_refused(tmp_path, cli_in_process):
    """A teacher directory whose network always answers class 0 is refused once the found network,
    retrained, beats it; the run then continues from its cached ratings with --allow-weak-teacher."""
    from budgetnas.arch import Arch, make_provenance, save_arch
    from budgetnas.io import save_safetensors

    teacher = tmp_path / "teacher"
    cfg = {"in_channels": 3, "num_classes": 4, "input_size": 8, "stem_channels": 4, "head_channels": 16}
    save_arch(Arch("nbmacro", cfg, "22222222", None, make_provenance("train", "synthetic", None, 0)),
              teacher, "arch.json")
    torch.manual_seed(0)
    net = NBMacroNetwork(cfg, "22222222")
    with torch.no_grad():
        net.classifier.weight.zero_()
        net.classifier.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
    save_safetensors(teacher / "model.safetensors", net.state_dict())
    out = tmp_path / "run"
    args = [*TINY, "--teacher", teacher, "--final-epochs", "3", "--target-params", "600000", "--out", out]
    refused = cli_in_process(*args)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "below the found network's" in refused.stderr and "--allow-weak-teacher" in refused.stderr
    assert not (out / "summary.json").exists() and (out / "ratings.csv").is_file()
    allowed = cli_in_process(*args, "--resume", "--allow-weak-teacher")
    assert allowed.returncode == 0, allowed.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["val_acc"] > summary["teacher"]["val_acc"]
