"""`budgetnas report`: pages for every kind of run directory, their images, bad input, the browser.

Train and DNA run directories come from the real commands (tiny settings); MGAS, NAG and baseline
directories are written here in the formats their commands write (summary.json, log.jsonl,
arch.json, front/picks files), so the report is checked against every method.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from budgetnas.cli import main
from budgetnas.errors import UserError
from budgetnas.report import write_report
from budgetnas.runs.provenance import write_run_info
from budgetnas import drawing
from budgetnas.report import drawings, plots
from budgetnas.spaces import drawings as space_drawings
from budgetnas.spaces.nb201 import EDGES, parse_arch_string
from budgetnas.report.rundir import load_run

ROOT = Path(__file__).resolve().parents[1]
SMALL_ARCH = ROOT / "examples" / "small_digits.json"
PNG = b"\x89PNG\r\n\x1a\n"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
DNA_SMALL = ["--dataset", "synthetic", "--teacher-epochs", "1", "--epochs", "1", "--depths", "1,2",
             "--ops", "e3k3,e3k5", "--final-epochs", "1", "--recal-batches", "1", "--threads", "1"]


# --- checking a page ----------------------------------------------------------------------------

class PageParser(HTMLParser):
    """Collects image sources and checks that every non-void tag is closed in order."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs).get("src", ""))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def check_page(path: Path) -> tuple[PageParser, str]:
    """Parse the page, check it is balanced HTML and every image is a real, non-empty PNG."""
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    parser = PageParser()
    parser.feed(text)
    parser.close()
    assert not parser.errors, parser.errors[:3]
    assert parser.stack == [], parser.stack
    assert parser.images, "the page has no images"
    for src in parser.images:
        if src.startswith("data:"):
            header, _, data = src.partition(",")
            assert header == "data:image/png;base64"
            png = base64.b64decode(data, validate=True)
        else:
            target = path.parent / src
            assert target.is_file(), src
            png = target.read_bytes()
        assert png.startswith(PNG) and len(png) > 1000
    assert "http://" not in text and "https://" not in text  # nothing to fetch: no CDN, no fonts
    return parser, " ".join(parser.text)


# --- run directories --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def train_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train") / "train-run"
    assert main(["train", str(SMALL_ARCH), "--epochs", "2", "--subset", "300", "--threads", "1",
                 "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def dna_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dna") / "dna-run"
    assert main(["search", "dna", *DNA_SMALL, "--target-params", "40000", "--out", str(out)]) == 0
    return out


def write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def write_lines(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def arch_json(space: str, config: dict, genotype, method: str, target: dict) -> dict:
    return {"format": "budgetnas.arch", "version": 1, "space": space, "config": config, "genotype": genotype,
            "masks": None, "provenance": {"method": method, "dataset": "digits", "target": target, "seed": 0,
                                          "version": "0.1.0", "created": "2025-01-01T00:00:00+00:00"}}


def make_mgas_run(directory: Path, *, target: int = 20000, acc: float = 0.91) -> Path:
    """An MGAS run directory as `budgetnas search mgas` writes it (search.py: log_row, finish)."""
    small = json.loads(SMALL_ARCH.read_text())
    write(directory / "arch.json", arch_json("darts", small["config"], small["genotype"], "mgas",
                                             {"params": target}))
    rows, size = [], 60000.0
    for epoch in range(1, 19):
        stage = "stage1" if epoch <= 6 else ("stage2" if epoch <= 12 else "final")
        kind = "warmup" if epoch % 6 in (1, 2) else "search"
        size *= 0.93 if kind == "search" else 1.0
        rows.append({"epoch": epoch, "stage": stage, "kind": kind, "event": "commit: 3 ops pruned",
                     "lambda": 1e-5 * epoch, "ce": 2.0 / epoch, "r_size": 5.0 - epoch / 5, "r_thr": 3.0,
                     "train_acc": 0.5 + epoch / 40, "size": size, "size_unit": "params", "target": target,
                     "op_ratio": 1 - epoch / 30, "filter_ratio": 1 - epoch / 50, "weight_ratio": 1 - epoch / 90,
                     "val_acc": 0.5 + epoch / 40, "seconds": 1.5, "peak_memory_mb": 900 - 10 * epoch})
    write_lines(directory / "log.jsonl", rows)
    write(directory / "summary.json", {
        "method": "mgas", "dataset": "digits", "target": {"params": target}, "params_dense": 21000,
        "params_nonzero": 20100, "macs": 400000, "val_acc": acc, "search_seconds": 27.0,
        "peak_memory_mb": 890.0, "seed": 0, "version": "0.1.0", "epochs": 18, "stages": 3, "ops_kept": 40,
        "cells": 5, "world_size": 1, "options": {"preset": "small", "target_params": target},
        "target_error": 0.005, "rank_arch_checksums": ["abc"]})
    return directory


def make_random_run(directory: Path) -> Path:
    """A random-search baseline: sampled candidates in the log, the best one in summary.json."""
    small = json.loads(SMALL_ARCH.read_text())
    write(directory / "arch.json", arch_json("darts", small["config"], small["genotype"], "random",
                                             {"params": 20000}))
    write_lines(directory / "log.jsonl", [{"sample": i, "params_nonzero": 15000 + 900 * i,
                                           "val_acc": 0.6 + 0.02 * (i % 7)} for i in range(12)])
    write(directory / "summary.json", {
        "method": "random", "dataset": "digits", "target": {"params": 20000}, "params_dense": 19500,
        "params_nonzero": 19500, "macs": 380000, "val_acc": 0.72, "search_seconds": 40.0,
        "peak_memory_mb": 700.0, "seed": 0, "version": "0.1.0"})
    return directory


NB201 = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"


def make_nag_run(directory: Path) -> Path:
    """A NAG run in the NAS-Bench-201 space: picks per budget and the table's true front."""
    write(directory / "arch.json", arch_json("nb201", {"num_classes": 10}, NB201, "nag", {"latency": 12.0}))
    picks = [{"budget": b, "cost": b * 0.9 if b < 14 else b * 1.05, "predicted_cost": b * 0.95,
              "test_acc": 88.0 + b / 4, "arch": NB201} for b in (8.0, 10.0, 12.0, 14.0)]
    write(directory / "picks.json", {"metric": "latency", "unit": "ms", "picks": picks})
    write(directory / "true_front.json", {"points": [{"latency_ms": c, "acc": 87.0 + c / 3} for c in (6, 9, 12, 15)]})
    write_lines(directory / "log.jsonl", [{"iteration": 100 * i, "loss": 1.0 / (i + 1), "reward": 0.1 * i}
                                          for i in range(10)])
    write(directory / "summary.json", {
        "method": "nag", "dataset": "cifar10", "target": {"latency": 12.0}, "unit": "ms",
        "params_dense": 400000, "params_nonzero": 400000, "macs": 50000000, "latency_ms": 11.0,
        "test_acc": 0.91, "search_seconds": 60.0, "peak_memory_mb": 1000.0, "seed": 0, "version": "0.1.0"})
    return directory


# --- pages for each kind of run ------------------------------------------------------------------

def test_train_run_report(train_run):
    path = write_report([train_run])
    assert path == train_run / "report.html"
    parser, text = check_page(path)
    assert "Training curves" in path.read_text() or "training curves" in text
    metrics = json.loads((train_run / "metrics.json").read_text())
    assert f"{100 * metrics['test_acc']:.2f} % (test)" in text
    assert f"{metrics['params_nonzero']:,}" in text
    # pareto + training curves + overview + one graph per cell
    cells = len(json.loads(SMALL_ARCH.read_text())["genotype"]["cells"])
    assert len(parser.images) == 3 + cells
    assert "no run_info.json" not in text  # train records its command line and environment


def test_dna_run_report(dna_run):
    path = write_report([dna_run])
    parser, text = check_page(path)
    front = json.loads((dna_run / "front.json").read_text())
    assert "merged front of whole networks" in text
    assert front["points"][front["chosen"]]["compact"] in text
    assert "stages and layers" in text  # the MBConv diagram
    assert len(parser.images) == 4  # pareto, block training, merged front, MBConv diagram


def test_mgas_report_with_run_info(tmp_path):
    run = make_mgas_run(tmp_path / "mgas-run")
    write_run_info(run, ["search", "mgas", "--target-params", "20000", "--out", str(run)],
                   {"target_params": 20000, "device": "auto", "out": run})
    path = write_report([run])
    _, text = check_page(path)
    assert "MGAS search over time" in text and "peak memory and time per stage" in text
    assert f"budgetnas search mgas --target-params 20000 --out {run}" in text
    assert "torch" in text and "platform" in text  # the environment table
    assert "the command line was not recorded" not in text


def test_nag_nb201_report(tmp_path):
    path = write_report([make_nag_run(tmp_path / "nag-run")])
    parser, text = check_page(path)
    assert "NAG: each budget against the cost" in text
    assert "NAS-Bench-201 cell" in text
    assert "latency" in text and "11 ms" in text


def test_several_runs_side_by_side(tmp_path, train_run, dna_run, capsys):
    mgas = make_mgas_run(tmp_path / "mgas")
    other = make_mgas_run(tmp_path / "second" / "mgas", target=30000, acc=0.93)  # same name: made unique
    baseline = make_random_run(tmp_path / "random")
    out = tmp_path / "compare"
    assert main(["report", str(mgas), str(other), str(baseline), str(train_run), str(dna_run),
                 "--out", str(out), "--no-graphviz"]) == 0
    assert "report:" in capsys.readouterr().out
    path = out / "report.html"
    parser, text = check_page(path)
    for name in ("second/mgas", "random", "train-run", "dna-run"):
        assert name in text
    page = path.read_text()
    assert page.count('<section class="run"') == 5
    assert not (mgas / "report.html").exists()  # several runs: only --out is written
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_missing_files_still_give_a_page(tmp_path, train_run):
    run = tmp_path / "bare"
    run.mkdir()
    shutil.copy(train_run / "metrics.json", run / "metrics.json")
    (run / "log.jsonl").write_text('{"epoch": 1, "train_loss": 2.0}\n{"epoch": 2, "train_lo')  # killed mid-line
    path = write_report([run])
    _, text = check_page(path)
    assert "1 unreadable line(s) skipped" in text
    assert "architecture drawings omitted: no arch.json" in text


def test_unknown_method_gets_the_generic_table(tmp_path):
    run = tmp_path / "custom"
    write(run / "summary.json", {"method": "my-method", "val_acc": 0.5, "params_nonzero": 1000,
                                 "special_number": 42, "target": {"params": 1200}})
    write(run / "arch.json", {"space": "something-else", "genotype": {}})
    path = write_report([run], tmp_path / "page.html")
    assert path == tmp_path / "page.html"
    _, text = check_page(path)
    assert "special_number" in text and "no dedicated layout" in text
    assert "no drawing for space 'something-else'" in text


def test_bad_input_exits_2(tmp_path, capsys):
    file = tmp_path / "file.txt"
    file.write_text("x")
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "summary.json").write_text("{not json")
    listed = tmp_path / "listed"
    write(listed / "summary.json", [1, 2])
    for bad, words in ((file, "not a directory"), (empty, "no summary.json or metrics.json"),
                       (tmp_path / "missing", "not found"), (broken, "not valid JSON"),
                       (listed, "must be a JSON object")):
        assert main(["report", str(bad)]) == 2
        err = capsys.readouterr().err
        assert words in err and str(bad) in err and "Traceback" not in err
    with pytest.raises(UserError, match="no run directory"):
        write_report([])


# --- parts --------------------------------------------------------------------------------------

def test_pareto_front_and_cost_axis(tmp_path):
    assert plots.pareto_front([(3, 0.5), (1, 0.4), (2, 0.3), (4, 0.9), (5, 0.8)]) == [(1, 0.4), (3, 0.5), (4, 0.9)]
    run = load_run(make_nag_run(tmp_path / "nag"))
    assert plots.cost_metric([run]) == "latency"
    assert plots.true_front(run, "latency")[0] == (6.0, 0.89)


def test_cell_graphs_without_graphviz(monkeypatch):
    small = json.loads(SMALL_ARCH.read_text())
    monkeypatch.setattr(drawing.shutil, "which", lambda name: None)  # as on a machine without dot
    images, notes = drawings.draw_arch(small)
    assert not notes and len(images) == 1 + len(small["genotype"]["cells"])
    assert all(png.startswith(PNG) for _, png in images)
    assert list(zip(EDGES, parse_arch_string(NB201)))[-1] == ((2, 3), "nor_conv_3x3")
    with pytest.raises(UserError):
        parse_arch_string("|conv~3|")
    bad, notes = drawings.draw_arch({"space": "nb201", "genotype": "nonsense"})
    assert not bad and "could not be read" in notes[0]


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz (dot) is not installed")
def test_cell_graphs_with_graphviz():
    small = json.loads(SMALL_ARCH.read_text())
    graph = space_drawings.darts_cell_graph(small["genotype"]["cells"][0], 0, 4)
    assert drawing.draw_with_dot(graph).startswith(PNG)


def test_run_info_has_no_host_name(tmp_path):
    path = write_run_info(tmp_path, ["train", "a b.json", "--epochs", "2"], {"epochs": 2, "device": "cpu"})
    info = json.loads(path.read_text())
    assert info["command"] == "budgetnas train 'a b.json' --epochs 2"
    assert info["options"] == {"epochs": 2, "device": "cpu"} and info["device"]["type"] == "cpu"
    assert {"python", "torch", "budgetnas"} <= info["versions"].keys()
    host = socket.gethostname()
    assert len(host) < 4 or host not in path.read_text()


# --- the page in a browser --------------------------------------------------------------------

BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; installed with apt-get when missing (root only), else the test skips."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("chromium is not installed and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(["apt-get", "install", "-y", "chromium"], env=env, capture_output=True,
                              text=True, timeout=900)
        if done.returncode != 0:  # stale package lists
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=300)
            done = subprocess.run(["apt-get", "install", "-y", "chromium"], env=env, capture_output=True,
                                  text=True, timeout=900)
    except subprocess.TimeoutExpired:
        pytest.skip("installing chromium with apt-get timed out")
    found = shutil.which("chromium")
    if not found:
        pytest.skip(f"chromium could not be installed: {done.stderr.strip()[-300:]}")
    return found


def screenshot(browser: str, page: Path, png: Path, profile: Path) -> None:
    subprocess.run([browser, *BROWSER_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
                    "--window-size=1200,1600", page.resolve().as_uri()],
                   capture_output=True, timeout=120, check=False)


def test_page_renders_in_chromium(chromium, tmp_path, train_run):
    from PIL import Image, ImageStat

    mgas = make_mgas_run(tmp_path / "mgas")
    page = write_report([mgas, train_run], tmp_path / "side-by-side")
    png = tmp_path / "shot.png"
    screenshot(chromium, page, png, tmp_path / "profile")
    assert png.is_file() and png.stat().st_size > 0, "chromium wrote no screenshot"
    image = Image.open(png).convert("L")
    assert image.size == (1200, 1600)
    assert ImageStat.Stat(image).stddev[0] > 15  # text, tables and plots, not a blank page
    dark = sum(image.histogram()[:128]) / (image.size[0] * image.size[1])
    assert dark > 0.005
