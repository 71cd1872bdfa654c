"""DNA over the NAS-Bench-201 space: block supernets equal the standalone network, the three
raters agree, costs and search are exact, and the command runs end to end on tiny settings."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from budgetnas.arch import build_model, load_arch
from budgetnas.cost import count_params
from budgetnas.methods.dna.nb201.block import (NB201BlockSupernet, all_cells, cell_index, cell_of_string,
                                               copy_stage_weights, effective_cell, string_of_cell)
from budgetnas.methods.dna.nb201.linear import lstsq_error, rate_linear
from budgetnas.methods.dna.nb201.moments import rate_moments
from budgetnas.methods.dna.nb201.rating import forward_recal, rate_direct, rate_tree
from budgetnas.methods.dna.nb201.search import best_same_cell, cell_costs, stage_costs
from budgetnas.spaces.nb201 import NB201Network

CELL = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
TINY = ["search", "dna", "--space", "nb201", "--dataset", "synthetic", "--subset", "200",
        "--nb201-channels", "2", "--nb201-teacher-channels", "4", "--nb201-teacher-cells", "1",
        "--teacher-epochs", "1", "--epochs", "1", "--recal-batches", "1", "--rate-batch-size", "16",
        "--rate-samples", "16", "--final-epochs", "0", "--nb201-export-channels", "4",
        "--nb201-export-cells", "1", "--no-report", "--threads", "1"]


def _randomize_bn(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_block_supernet_equals_the_standalone_stage(stage):
    torch.manual_seed(stage)
    cfg = {"C": 4, "cells_per_stage": 2, "input_size": 8}
    net = NB201Network(cfg, CELL).eval()
    _randomize_bn(net)
    cell = cell_of_string(CELL)
    width = 4 * 2 ** stage
    block = NB201BlockSupernet(stage, 3 if stage == 0 else width // 2, width, 2, width).eval()
    copy_stage_weights(block, net, cell, 2)
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        h, outs = net.stem(x), []
        for k, module in enumerate(net.cells):
            h = module(h)
            outs.append(h)
        inputs = x if stage == 0 else outs[[1, 4][stage - 1]]  # stage ends: cells.1, cells.4, cells.7
        torch.testing.assert_close(block(inputs, cell), outs[[1, 4, 7][stage]])


def test_cell_enumeration_strings_and_dead_edges():
    cells = all_cells()
    assert len(cells) == 15625 and all(cell_index(cells[i]) == i for i in range(0, 15625, 977))
    assert string_of_cell(cell_of_string(CELL)) == CELL
    # edge 2-3 is none: node 2 is dead, so edges 0-2 and 1-2 do not matter; node 1 then only
    # feeds edge 1-3 (none here) -> edge 0-1 is dead too
    assert effective_cell((3, 3, 3, 1, 0, 0)) == (0, 0, 0, 1, 0, 0)
    assert effective_cell((3, 3, 3, 1, 2, 0)) == (3, 0, 0, 1, 2, 0)
    assert len({effective_cell(c) for c in cells}) == 12205


@pytest.mark.parametrize("adapter", [False, True])
def test_tree_moments_and_direct_ratings_agree(adapter):
    torch.manual_seed(3)
    width = 4
    block = NB201BlockSupernet(1, 3, width, 1, 6 if adapter else width)
    _randomize_bn(block)
    n_recal, n_score = 12, 10
    x = torch.randn(n_recal + n_score, 3, 8, 8)
    y = torch.randn(n_score, 6 if adapter else width, 4, 4)
    tree = rate_tree(block, x, y, n_recal)
    moments = rate_moments(block, x, y, n_recal)
    sample = random.Random(0).sample(all_cells(), 25) + [(0,) * 6, (3,) * 6, (2, 0, 0, 0, 0, 0)]
    direct = rate_direct(block, x, y, n_recal, sample)
    y_all = torch.cat([torch.randn(n_recal, *y.shape[1:]), y])
    linear = rate_linear(block, x, y_all, n_recal)
    for cell in sample:
        i = cell_index(cell)
        z = forward_recal(block, x, cell, n_recal, adapter=False)
        assert linear[i].item() == pytest.approx(lstsq_error(z, y_all, n_recal), rel=1e-6)
        assert tree[i, 0].item() == pytest.approx(direct[cell][0], rel=1e-5)
        assert tree[i, 1].item() == pytest.approx(direct[cell][1], rel=1e-5)
        assert moments[i].item() == pytest.approx(direct[cell][1], rel=1e-5)
    assert not torch.isnan(tree).any() and not torch.isnan(moments).any() and not torch.isnan(linear).any()


def test_recalibration_matches_batchnorm_reset_and_forward():
    """forward_recal's statistics equal PyTorch BN recalibrated on the R rows (reset, cumulative
    momentum, one train-mode pass), up to the biased/unbiased variance used inside that pass."""
    torch.manual_seed(4)
    block = NB201BlockSupernet(0, 3, 4, 1, 4)
    _randomize_bn(block)
    cell = cell_of_string(CELL)
    x = torch.randn(64 + 8, 3, 8, 8)
    ours = forward_recal(block.eval(), x, cell, 64)[64:]
    for mod in block.path_modules(cell):
        for m in mod.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
    with torch.no_grad():
        for mod in block.path_modules(cell):
            mod.train()
        block(x[:64], cell)
        block.eval()
        theirs = block(x[64:], cell)
    torch.testing.assert_close(ours, theirs, rtol=2e-2, atol=2e-2)


def test_stage_costs_add_up_to_whole_networks_and_builds():
    cfg = {"in_channels": 3, "num_classes": 10, "input_size": 8, "C": 4, "cells_per_stage": 2}
    whole = cell_costs(cfg)["params"]
    base, per_stage = stage_costs(cfg, "params")
    assert np.array_equal(base + per_stage[0] + per_stage[1] + per_stage[2], whole)
    i = cell_index(cell_of_string(CELL))
    assert whole[i] == count_params(NB201Network(cfg, CELL))
    mixed = [CELL, string_of_cell((3,) * 6), string_of_cell((0,) * 6)]  # one cell per stage
    expected = base + per_stage[0][i] + per_stage[1][cell_index((3,) * 6)] + per_stage[2][0]
    assert count_params(NB201Network(cfg, mixed)) == expected
    score = np.random.default_rng(0).random(15625)
    pick = best_same_cell(score, whole, 20000, unit="params", where="t")
    ok = np.flatnonzero(whole <= 20000)
    assert pick == ok[np.argmin(score[ok])]


def test_search_dna_nb201_end_to_end_resume_and_per_stage(tmp_path, cli_in_process):
    out = tmp_path / "run"
    first = cli_in_process(*TINY, "--target-params", "5000", "--out", out)
    assert first.returncode == 0, first.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["space"] == "nb201" and summary["candidates_per_block"] == 15625
    assert summary["params_dense"] == summary["cost"] <= 5000
    arch = load_arch(out / "arch.json")
    assert count_params(build_model(arch)) == summary["params_dense"]
    assert summary["teacher"]["C"] == 4 and "val_acc" in summary["teacher"]
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("round0/block*/*.json")}
    other = cli_in_process(*TINY, "--target-params", "20000", "--out", out, "--resume")
    assert other.returncode == 0, other.stderr
    assert {p: p.stat().st_mtime_ns for p in out.glob("round0/block*/*.json")} == stamps  # ratings reused
    per_stage = cli_in_process(*TINY, "--target-macs", "200000", "--nb201-per-stage", "--out", out, "--resume")
    assert per_stage.returncode == 0, per_stage.stderr
    summary = json.loads((out / "summary.json").read_text())
    genotype = load_arch(out / "arch.json").genotype
    assert isinstance(genotype, list) and len(genotype) == 3
    assert summary["macs"] == summary["cost"] <= 200000 and not summary["same_cell"]
    report = cli_in_process("report", out)
    assert report.returncode == 0, report.stderr
    assert "stage 2:" in (out / "report.html").read_text()  # one drawing per stage's cell


def test_zero_cost_rank_mean_picks_and_continues_a_killed_scoring(tmp_path, cli_in_process, monkeypatch):
    """--nb201-zero-cost naswot: every cell scored (a stand-in for NASWOT keeps the test fast; the
    score itself is tested in test_ranking), scoring continues from the saved part, and the pick is
    the best of -rank_mean(-DNA sum, NASWOT) under the budget."""
    from budgetnas.methods.dna.nb201 import zero_cost
    from budgetnas.methods.dna.nb201.search import combine_scores
    from budgetnas.ranking import rank_mean

    calls = []

    def stand_in(cell, config, x, seed):
        calls.append(cell)
        assert config["C"] == 2 and x.shape[0] == zero_cost.BATCH
        return float(cell.count("nor_conv_3x3") * 10 + cell.count("skip_connect"))

    monkeypatch.setattr(zero_cost, "score_cell", stand_in)
    out = tmp_path / "run"
    plain = cli_in_process(*TINY, "--target-params", "20000", "--out", out)
    assert plain.returncode == 0, plain.stderr
    assert not calls and json.loads((out / "summary.json").read_text())["zero_cost"] == "none"
    result = cli_in_process(*TINY, "--target-params", "20000", "--nb201-zero-cost", "naswot", "--out", out, "--resume")
    assert result.returncode == 0, result.stderr
    assert len(calls) == 15625
    state = json.loads((out / "round0" / zero_cost.FILE).read_text())
    partial_key = state["key"]
    state["scores"] = state["scores"][:1000]  # as if killed after 1,000 cells
    (out / "round0" / zero_cost.FILE).write_text(json.dumps(state))
    calls.clear()
    again = cli_in_process(*TINY, "--target-params", "20000", "--nb201-zero-cost", "naswot", "--out", out, "--resume")
    assert again.returncode == 0, again.stderr
    assert len(calls) == 15625 - 1000 and calls[0] == string_of_cell(all_cells()[1000])
    assert json.loads((out / "round0" / zero_cost.FILE).read_text())["key"] == partial_key
    blocks = [np.asarray(json.loads((out / "round0" / f"block{i}" / "ratings.json").read_text())["score"])
              for i in range(3)]
    naswot = np.array([stand_in(string_of_cell(c), {"C": 2}, torch.zeros(zero_cost.BATCH), 0) for c in all_cells()])
    combined = -rank_mean(-combine_scores(blocks), naswot)
    params = cell_costs(load_arch(out / "arch.json").config)["params"]
    ok = np.flatnonzero(params <= 20000)
    best = ok[np.lexsort((ok, params[ok], combined[ok]))[0]]
    assert load_arch(out / "arch.json").genotype == string_of_cell(all_cells()[best])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["zero_cost"] == "naswot" and summary["score"] == pytest.approx(combined[best])
    per_stage = cli_in_process(*TINY, "--target-params", "20000", "--nb201-zero-cost", "naswot",
                               "--nb201-per-stage", "--out", out, "--resume")
    assert per_stage.returncode == 2 and "--nb201-zero-cost" in per_stage.stderr


def test_nb201_bad_inputs_are_one_line_errors(tmp_path, cli_in_process):
    latency = cli_in_process(*TINY, "--target-latency-ms", "3", "--out", tmp_path / "a")
    assert latency.returncode == 2 and "--target-macs" in latency.stderr
    vision = cli_in_process(*TINY, "--teacher", "torchvision:resnet18", "--target-params", "5000", "--out", tmp_path / "b")
    assert vision.returncode == 2 and "--teacher" in vision.stderr
    tiny = cli_in_process(*TINY, "--target-params", "10", "--out", tmp_path / "c")
    assert tiny.returncode == 2 and "smallest costs" in tiny.stderr
    bad_cell = cli_in_process(*TINY, "--nb201-teacher-cell", "|conv~0|", "--target-params", "5000", "--out", tmp_path / "d")
    assert bad_cell.returncode == 2 and "Traceback" not in bad_cell.stderr
    block = cli_in_process(*TINY, "--block", "3", "--out", tmp_path / "g")
    assert block.returncode == 2 and "--block" in block.stderr
    mbconv_flag = cli_in_process(*TINY, "--depths", "1,2", "--target-params", "5000", "--out", tmp_path / "e")
    assert mbconv_flag.returncode == 2 and "--depths does not apply to --space nb201" in mbconv_flag.stderr
    nb201_flag = cli_in_process("search", "dna", "--nb201-channels", "4", "--target-params", "5000", "--out", tmp_path / "f")
    assert nb201_flag.returncode == 2 and "--nb201-channels does not apply to --space mbconv" in nb201_flag.stderr
    for result in (latency, vision, tiny, bad_cell, block, mbconv_flag, nb201_flag):
        assert result.stderr.count("\n") == 1, result.stderr


def test_block_training_resumes_exactly_and_survives_all_none_paths(tmp_path, monkeypatch):
    """Without an adapter an all-`none` cell outputs constant zeros (no gradient): the step is
    skipped, not an error. A block stopped after one epoch and resumed equals a straight run."""
    from budgetnas.methods.dna.nb201 import blockwise as nb201_blockwise
    from budgetnas.methods.dna.nb201.blockwise import sample_paths, train_nb201_block

    def paths(gen, steps, sampler):
        out = sample_paths(gen, steps, sampler)
        out[0] = 0  # the first step of every epoch: all edges `none`
        return out

    monkeypatch.setattr(nb201_blockwise, "sample_paths", paths)
    torch.manual_seed(0)
    x, y = torch.randn(40, 4, 8, 8), torch.randn(40, 4, 4, 4)
    kw = dict(epochs=2, batch_size=16, lr=0.01, lr_decay=0.9, weight_decay=1e-4, seed=1,
              settings={"k": 1}, sampler="fair")

    def fresh():
        torch.manual_seed(2)
        return NB201BlockSupernet(1, 4, 4, 1, 4)

    straight = fresh()
    log_a = train_nb201_block(straight, x, y, tmp_path / "a", **kw)
    train_nb201_block(fresh(), x, y, tmp_path / "b", stop_after=1, **kw)
    resumed = fresh()
    log_b = train_nb201_block(resumed, x, y, tmp_path / "b", **kw)
    assert [r["loss"] for r in log_a] == [r["loss"] for r in log_b] and len(log_a) == 2
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_fair_sampler_uses_every_op_once_per_edge_every_five_steps():
    from budgetnas.methods.dna.nb201.blockwise import sample_paths

    paths = sample_paths(torch.Generator().manual_seed(0), 12, "fair")
    assert paths.shape == (12, 6)
    for start in (0, 5):
        for edge in range(6):
            assert sorted(paths[start:start + 5, edge].tolist()) == [0, 1, 2, 3, 4]


def test_per_stage_genotypes_validate_build_and_draw():
    from budgetnas.errors import ArchError
    from budgetnas.spaces import get_space
    from budgetnas.spaces.nb201 import stage_genotypes

    cells = [CELL, string_of_cell((3,) * 6), string_of_cell((1,) * 6)]
    cfg = {"in_channels": 3, "num_classes": 10, "input_size": 8, "C": 4, "cells_per_stage": 1}
    space = get_space("nb201")
    space.validate(cfg, cells, where="arch")
    net = NB201Network(cfg, cells)
    kinds = [[type(e).__name__ for e in net.cells[k].edges] for k in (0, 2, 4)]  # cells.1, .3: reductions
    assert kinds[1] == ["ReLUConvBN"] * 6 and kinds[2] == ["Identity"] * 6 and kinds[0][1] == "Identity"
    images, notes = space.draw({"space": "nb201", "config": cfg, "genotype": cells}, use_dot=False)
    assert [caption.split(":")[0] for caption, _ in images] == ["stage 0", "stage 1", "stage 2"] and not notes
    with pytest.raises(ArchError, match="3 cell strings"):
        stage_genotypes([CELL, CELL])


def test_a_teacher_weaker_than_the_found_network_is_refused(tmp_path, cli_in_process):
    """A teacher directory whose network always answers class 0 (held-out accuracy 1/4 on the
    synthetic data) is refused once the found network, retrained, beats it; the run then
    continues from its cached ratings with --allow-weak-teacher."""
    from budgetnas.arch import Arch, make_provenance, save_arch
    from budgetnas.io import save_safetensors
    from budgetnas.methods.dna.options import NB201_TEACHER_CELL

    teacher = tmp_path / "teacher"
    cfg = {"in_channels": 3, "num_classes": 4, "input_size": 8, "C": 4, "cells_per_stage": 1}
    arch = Arch("nb201", cfg, NB201_TEACHER_CELL, None, make_provenance("train", "synthetic", None, 0))
    save_arch(arch, teacher, "arch.json")
    torch.manual_seed(0)
    net = NB201Network(cfg, NB201_TEACHER_CELL)
    with torch.no_grad():
        net.classifier.weight.zero_()
        net.classifier.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
    save_safetensors(teacher / "model.safetensors", net.state_dict())
    out = tmp_path / "run"
    args = [*TINY, "--teacher", teacher, "--final-epochs", "3", "--target-params", "5000", "--out", out]
    refused = cli_in_process(*args)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "below the found network's" in refused.stderr and "--allow-weak-teacher" in refused.stderr
    assert not (out / "summary.json").exists()
    allowed = cli_in_process(*args, "--resume", "--allow-weak-teacher")
    assert allowed.returncode == 0, allowed.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["teacher"]["val_acc"] == pytest.approx(0.25, abs=0.1)
    assert summary["val_acc"] > summary["teacher"]["val_acc"]


def test_zero_cost_scores_of_other_data_are_not_reused(tmp_path, monkeypatch):
    """naswot_cells keeps scores only for the same key (network, images, seed, dataset size), and
    loads no images when every cell is already scored."""
    from budgetnas.methods.dna.nb201 import zero_cost

    calls = []
    monkeypatch.setattr(zero_cost, "score_cell", lambda cell, config, x, seed: calls.append(cell) or 1.0)
    path, key = tmp_path / "naswot.json", {"train_images": 100}
    path.write_text(json.dumps({"key": {"train_images": 50}, "scores": [2.0] * 15625, "seconds": 1.0}))
    scores, _ = zero_cost.naswot_cells({"C": 2}, lambda: torch.zeros(1), 0, path, key)
    assert len(calls) == 15625 and (scores == 1.0).all()
    calls.clear()

    def no_images():
        raise AssertionError("images loaded although every cell is scored")

    again, _ = zero_cost.naswot_cells({"C": 2}, no_images, 0, path, key)
    assert not calls and (again == 1.0).all()
