"""Reading a run directory for the report, tolerating whatever is missing.

A run directory is recognised by `summary.json` (search / generate) or `metrics.json` (train).
Everything else (log.jsonl, arch.json, front.json, run_info.json, method-specific files) is
optional: a missing or unreadable file becomes a note on the page instead of an error, because a
report of an interrupted or older run is still worth having.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..io import read_json

# Optional JSON files a method may leave beside summary.json; read when present.
OPTIONAL_JSON = ("front.json", "run_info.json", "picks.json", "true_front.json", "baselines.json")


@dataclass
class Run:
    """Everything the report uses from one run directory."""

    path: Path
    summary: dict | None = None
    metrics: dict | None = None
    log: list[dict] = field(default_factory=list)
    arch: dict | None = None
    files: dict[str, Any] = field(default_factory=dict)  # optional JSON files by name
    notes: list[str] = field(default_factory=list)  # what could not be read, for the page
    label: str = ""  # unique name on a page of several runs (default: the directory name)

    @property
    def name(self) -> str:
        return self.path.name or str(self.path)

    @property
    def display(self) -> str:
        return self.label or self.name

    @property
    def method(self) -> str:
        if self.summary and isinstance(self.summary.get("method"), str):
            return self.summary["method"]
        if self.metrics is not None:
            return "train"
        return "unknown"

    @property
    def spec(self):
        """How the method that wrote this run wants it shown (None: train or an unknown method)."""
        from ..runs.registry import find_method

        entry = find_method(self.method)
        return entry.report if entry else None

    @property
    def kind(self) -> str:
        """train, search, generate or other (an unknown method gets the generic page)."""
        if self.method == "train":
            return "train"
        return self.spec.kind if self.spec else "other"

    @property
    def is_baseline(self) -> bool:
        return bool(self.spec and self.spec.baseline)

    @property
    def info(self) -> dict:
        """summary.json over metrics.json (a search run may hold a retraining's metrics too)."""
        return {**(self.metrics or {}), **(self.summary or {})}

    @property
    def run_info(self) -> dict | None:
        value = self.files.get("run_info.json")
        return value if isinstance(value, dict) else None

    @property
    def front(self) -> dict | None:
        value = self.files.get("front.json")
        return value if isinstance(value, dict) and isinstance(value.get("points"), list) else None

    @property
    def target(self) -> dict:
        target = self.info.get("target")
        if isinstance(target, dict):
            return {k: v for k, v in target.items() if number(v) is not None}
        provenance = (self.arch or {}).get("provenance") or {}
        target = provenance.get("target")
        return {k: v for k, v in target.items() if number(v) is not None} if isinstance(target, dict) else {}

    def accuracy(self) -> tuple[float | None, str]:
        """(accuracy as a fraction, which split): test accuracy of a retraining, else held-out."""
        info = self.info
        for key, split in (("test_acc", "test"), ("val_acc", "val"), ("accuracy", "val")):
            value = number(info.get(key))
            if value is not None:
                return (value / 100 if value > 1 else value), split
        return None, ""

    def cost(self, metric: str) -> float | None:
        info = self.info
        keys = {"params": ("params_nonzero", "params_dense", "params"),
                "macs": ("macs",),
                "latency": ("latency_ms", "latency_ms_measured", "latency_ms_table")}.get(metric, (metric,))
        for key in keys:
            value = number(info.get(key))
            if value is not None:
                return value
        return None


def number(value: Any) -> float | None:
    """A finite float, or None for anything else (strings, NaN, booleans, missing)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def load_run(path: str | Path) -> Run:
    """Read a run directory; raises UserError when it is not one."""
    path = Path(path)
    if not path.exists():
        raise UserError("run directory not found", where=str(path), fix="check the path")
    if not path.is_dir():
        raise UserError("not a directory", where=str(path),
                        fix="give the run directory (the one holding summary.json or metrics.json)")
    summary_path, metrics_path = path / "summary.json", path / "metrics.json"
    if not summary_path.is_file() and not metrics_path.is_file():
        raise UserError("not a budgetnas run directory (no summary.json or metrics.json)",
                        where=str(path), fix="give the directory a search, generate or train command wrote")
    run = Run(path)
    if summary_path.is_file():
        run.summary = _object(read_json(summary_path, what="summary file"), summary_path)
    if metrics_path.is_file():
        run.metrics = _object(read_json(metrics_path, what="metrics file"), metrics_path)
    run.log = read_log(path / "log.jsonl", run.notes)
    run.arch = _optional_json(path / "arch.json", run.notes)
    if run.arch is not None and not isinstance(run.arch, dict):
        run.notes.append("arch.json is not a JSON object; architecture drawings omitted")
        run.arch = None
    for name in OPTIONAL_JSON:
        if (path / name).is_file():
            value = _optional_json(path / name, run.notes)
            if value is not None:
                run.files[name] = value
    return run


def _object(value: Any, path: Path) -> dict:
    if not isinstance(value, dict):
        raise UserError("the top level must be a JSON object", where=str(path),
                        fix="give a file written by budgetnas")
    return value


def _optional_json(path: Path, notes: list[str]) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        notes.append(f"{path.name} could not be read ({type(exc).__name__}); left out")
        return None


def read_log(path: Path, notes: list[str]) -> list[dict]:
    """log.jsonl rows that are JSON objects; bad lines (a run killed mid-line) are skipped."""
    if not path.is_file():
        return []
    rows, bad = [], 0
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        notes.append("log.jsonl could not be read; plots over time omitted")
        return []
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad += 1
    if bad:
        notes.append(f"log.jsonl: {bad} unreadable line(s) skipped")
    return rows
