"""`budgetnas generate` end to end (tiny settings), exact resume, bad input, latency tables."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from budgetnas.errors import UserError
from budgetnas.arch import arch_from_genotype as arch_from_genotype_string
from budgetnas.cost.latency_table import collect_latency_table
from budgetnas.methods.nag.table import load_table

from test_nag import synthetic_rows

TINY = ["--iterations", "120", "--predictor-epochs", "10", "--evaluator-steps", "100",
        "--select-samples", "50", "--checkpoint-every", "60", "--samples-per-step", "8", "--no-report"]


@pytest.fixture(scope="module")
def table_csv(tmp_path_factory):
    rows, acc, cost = synthetic_rows()
    path = tmp_path_factory.mktemp("gen") / "table.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "arch", "acc", "latency_ms"])
        for n, (r, a, c) in enumerate(zip(rows, acc, cost)):
            w.writerow([n, "-".join(map(str, r)), f"{a:.4f}", f"{c:.4f}"])
    return path


def generate(cli, table, out, *extra, env=None):
    return cli("generate", "--table", table, "--accuracy", "acc", "--cost", "latency_ms", "--reveal", "300",
               "--budgets", "7,10", "--out", out, *TINY, *extra, env=env)


def test_generate_writes_picks_and_resumes_exactly(cli, table_csv, tmp_path):
    full = generate(cli, table_csv, tmp_path / "full")
    assert full.returncode == 0, full.stderr
    picks = json.loads((tmp_path / "full" / "picks.json").read_text())["picks"]
    assert [p["budget"] for p in picks] == [7.0, 10.0]
    assert all("test_acc" in p and "cost" in p and "predicted_acc" in p for p in picks)
    summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert summary["method"] == "nag" and summary["rows_used"] == 300
    # Kill during the second checkpoint (write 5 = its generator.safetensors), then resume.
    killed = generate(cli, table_csv, tmp_path / "part", env={"BUDGETNAS_KILL_AT_WRITE": "5"})
    assert killed.returncode != 0
    resumed = generate(cli, table_csv, tmp_path / "part", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "full" / "generator.safetensors").read_bytes() == \
        (tmp_path / "part" / "generator.safetensors").read_bytes()
    # Killed inside the training loop (iteration 90 of 120, after the checkpoint at 60): the
    # resumed run repeats iterations 60-90 and ends with the same generator.
    killed = generate(cli, table_csv, tmp_path / "mid", env={"BUDGETNAS_KILL_AT": "generator-step:90"})
    assert killed.returncode != 0 and not (tmp_path / "mid" / "picks.json").exists()
    resumed = generate(cli, table_csv, tmp_path / "mid", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "full" / "generator.safetensors").read_bytes() == \
        (tmp_path / "mid" / "generator.safetensors").read_bytes()
    # A trained generator answers new budgets without training.
    again = cli("generate", "--generator", tmp_path / "full" / "generator.json", "--table", table_csv,
                "--accuracy", "acc", "--cost", "latency_ms", "--budget", "8.5", "--out", tmp_path / "query")
    assert again.returncode == 0, again.stderr
    assert "8.5" in again.stdout


def test_generate_bad_input_exits_2(cli_in_process, table_csv, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("arch,acc\n0-1,1\n0-1-2,2\n")
    for args in (["--table", bad, "--accuracy", "acc", "--cost", "acc"],
                 ["--table", table_csv, "--accuracy", "acc", "--cost", "latency_gpu"],
                 ["--table", tmp_path / "missing.csv", "--accuracy", "a", "--cost", "b"]):
        result = cli_in_process("generate", *args, "--out", tmp_path / "x")
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr


def test_nb201_table_has_cost_model_columns(tmp_path):
    path = tmp_path / "nb.csv"
    path.write_text("arch,acc\n|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|,93.66\n")
    table = load_table(path)
    assert table.space_name == "nb201"
    assert table.column("params")[0] == 802_426 and table.column("macs")[0] == 113_951_360


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_collect_latency_table(tmp_path, backend):
    if backend == "onnxruntime":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnx")
    out = collect_latency_table("mbconv", 2, backend=backend, device="cpu", batch_size=1, warmup=1, runs=3,
                                threads=1, seed=0, out_path=tmp_path / "lat.csv", in_channels=1, input_size=8,
                                progress=False)
    table = load_table(out, space="mbconv", dataset_shape=(1, 8, 10))
    assert len(table) == 2 and (table.column("latency_ms") > 0).all() and (table.column("macs") > 0).all()
    meta = json.loads((tmp_path / "lat.json").read_text())
    assert meta["backend"] == backend and meta["runs"] == 3 and meta["statistic"] == "median"
    # The genotype column rebuilds the same architecture as the arch column.
    row = list(csv.DictReader(open(out)))[0]
    assert table.space.to_genotype(table.rows[0]) == json.loads(row["genotype"])


def test_arch_from_genotype_string_mbconv():
    arch = arch_from_genotype_string("mbconv", "-".join(["0"] * 27), in_channels=1, input_size=8)
    assert [len(s["layers"]) for s in arch.genotype["stages"]] == [2, 2, 2]
    with pytest.raises(UserError):
        arch_from_genotype_string("mbconv", "1-2")
    with pytest.raises(UserError):
        arch_from_genotype_string("mbconv", "{not json")


QUERY = ["--iterations", "120", "--predictor-epochs", "10", "--evaluator-steps", "60", "--select-samples", "30",
         "--checkpoint-every", "60", "--samples-per-step", "8", "--query-budget", "100", "--initial-rows", "40",
         "--query-rounds", "2", "--query-grid", "4", "--query-samples", "40", "--device", "cpu", "--no-report"]


def _query_run(cli, table_csv, out, *extra, env=None):
    return cli("generate", "--table", table_csv, "--accuracy", "acc", "--cost", "latency_ms",
               "--budgets", "7,10", "--out", out, *QUERY, *extra, env=env)


@pytest.fixture(scope="module")
def query_run(table_csv, tmp_path_factory):
    from conftest import run_cli

    root = tmp_path_factory.mktemp("query")
    trace = root / "trace.txt"
    result = _query_run(run_cli, table_csv, root / "full", env={"BUDGETNAS_TRACE": str(trace)})
    assert result.returncode == 0, result.stderr
    return root / "full", trace


def test_generate_query_budget_reveals_at_most_the_budget_on_cpu(query_run):
    out, _ = query_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_used"] == 100 and summary["query_budget"] == 100 and summary["device"] == "cpu"
    assert json.loads((out / "run_info.json").read_text())["device"]["type"] == "cpu"
    rounds = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["revealed"] for r in rounds if "query_round" in r] == [70, 100]
    assert len(json.loads((out / "generator.json").read_text())["known"]) == 100


def test_generate_query_budget_resumes_exactly(cli, table_csv, query_run, tmp_path):
    full, trace = query_run
    # Kill while writing the checkpoint taken just before the second query round (the 5th
    # generator.safetensors: phase ends at 40, query 1, 60, phase end at 80, query 2, 120), so the
    # resumed run redoes that query round from the files.
    writes = [int(line.split()[1]) for line in trace.read_text().splitlines()
              if line.startswith("write") and line.endswith("generator.safetensors")]
    killed = _query_run(cli, table_csv, tmp_path / "part", env={"BUDGETNAS_KILL_AT_WRITE": str(writes[4])})
    assert killed.returncode != 0
    resumed = _query_run(cli, table_csv, tmp_path / "part", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    for name in ("generator.safetensors", "generator.json", "picks.json"):
        a = (full / name).read_bytes()
        b = (tmp_path / "part" / name).read_bytes()
        if name == "picks.json":  # timings differ
            a, b = ([{k: v for k, v in p.items() if k != "generate_ms"} for p in json.loads(x)["picks"]]
                    for x in (a, b))
        assert a == b, name


def test_generate_query_options_and_device_errors_exit_2(cli_in_process, table_csv, tmp_path):
    import torch

    base = ["generate", "--table", table_csv, "--accuracy", "acc", "--cost", "latency_ms", "--out", tmp_path / "x"]
    cases = [(["--query-budget", "100", "--reveal", "50"], "--query-budget"),
             (["--query-budget", "50", "--initial-rows", "60"], "--initial-rows")]
    if not torch.cuda.is_available():
        cases.append((["--device", "cuda"], "--device"))
    for extra, field in cases:
        result = cli_in_process(*base, *extra)
        assert result.returncode == 2, (extra, result.stderr)
        assert field in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) <= 2, result.stderr


def test_generate_help_documents_query_budget(cli):
    result = cli("generate", "--help")
    assert result.returncode == 0
    for flag in ("--query-budget", "--initial-rows", "--query-rounds", "--device"):
        assert flag in result.stdout


@pytest.mark.parametrize("extra,shape", [(["--dataset", "digits"], (1, 8, 10)),
                                         (["--dataset", "digits", "--image-size", "12"], (1, 12, 10))])
def test_profile_sample_uses_the_dataset_input_shape(cli_in_process, tmp_path, extra, shape):
    out = tmp_path / "lat.csv"
    result = cli_in_process("profile", "--space", "mbconv", "--sample", "2", "--runs", "1", "--warmup", "0",
                 "--threads", "1", "--out", out, *extra)
    assert result.returncode == 0, result.stderr
    config = json.loads(out.with_suffix(".json").read_text())["config"]
    assert (config["in_channels"], config["input_size"], config["num_classes"]) == shape
    table = load_table(out, space="mbconv", dataset_shape=shape)
    assert len(table) == 2 and (table.column("macs") > 0).all()


def test_generate_resume_after_kill_between_weights_and_checkpoint(table_csv, tmp_path):
    """A kill after the new generator.safetensors but before the new checkpoint.pt must not pair the
    new weights with the old iteration: resume reads only checkpoint.pt."""
    from conftest import ROOT

    from budgetnas.testing import kill_and_resume, read_trace, reference_run

    args = ["generate", "--table", str(table_csv), "--accuracy", "acc", "--cost", "latency_ms",
            "--reveal", "300", "--budgets", "7,10", *TINY, "--iterations", "40", "--checkpoint-every", "20"]
    trace = tmp_path / "trace.txt"
    reference = reference_run(args, tmp_path, cwd=ROOT, trace=trace)
    writes, _ = read_trace(trace, reference)
    # The second checkpoint (iteration 40): its generator.json falls between its weights and checkpoint.pt.
    between = [i for i, w in enumerate(writes, 1) if w == "generator.json"][1]
    assert writes[between - 2] == "generator.safetensors" and writes[between] == "checkpoint.pt"
    outcome = kill_and_resume(args, tmp_path, f"write:{between}", cwd=ROOT, reference=reference,
                              files=["picks.json", "generator.safetensors", "generator.json", "summary.json"],
                              ignore={"generate_ms", "search_seconds", "peak_memory_mb"})
    assert outcome.killed and outcome.restarts == ["resume"]
    assert outcome.equal, outcome.differences


def test_generate_on_a_table_of_the_whole_space_answers_by_lookup(cli_in_process, tmp_path):
    """Every architecture measured and revealed: no generator, the best row within each budget,
    and the output and picks.json say so."""
    path = tmp_path / "full.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arch", "acc", "latency_ms"])
        for code in range(27):
            choice = [code // 9, (code // 3) % 3, code % 3]
            w.writerow(["-".join(map(str, choice)), 50 + 3.0 * sum(choice) - choice[0], 1 + sum(c * c for c in choice)])
    result = cli_in_process("generate", "--table", path, "--accuracy", "acc", "--cost", "latency_ms", "--budgets", "3,6",
                 "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert "answered by lookup" in result.stdout
    picks = json.loads((tmp_path / "run" / "picks.json").read_text())
    assert picks["answered_by"] == "table" and all(p["answered_by"] == "table" for p in picks["picks"])
    assert not (tmp_path / "run" / "generator.json").exists()
    rows = list(csv.DictReader(open(path)))
    for pick in picks["picks"]:
        fits = [float(r["acc"]) for r in rows if float(r["latency_ms"]) <= pick["budget"]]
        assert pick["test_acc"] == max(fits) and pick["regret"] == 0.0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["answered_by"] == "table"
    # with a query budget the generator is trained as before
    partial = cli_in_process("generate", "--table", path, "--accuracy", "acc", "--cost", "latency_ms", "--budgets", "3,6",
                  "--reveal", "20", "--out", tmp_path / "gen", *TINY)
    assert partial.returncode == 0, partial.stderr
    assert json.loads((tmp_path / "gen" / "picks.json").read_text())["answered_by"] == "generator"
