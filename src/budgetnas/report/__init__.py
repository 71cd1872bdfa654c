"""Run reports: `budgetnas report RUN_DIR [RUN_DIR ...]` -> one self-contained report.html.

`write_report(run_dirs, out)` is what the command (and the end of search/generate) calls. The
report only reads run directories (run_info.json is written by `budgetnas.runs.provenance`).
"""
from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Sequence

from ..errors import UserError
from ..io import atomic_write
from .rundir import Run, load_run

REPORT_NAME = "report.html"

__all__ = ["write_report", "report_at_end", "load_run", "Run", "report_path"]


def report_path(run_dirs: Sequence[Path], out: Path | None) -> Path:
    """Where the page goes: --out (a directory, or a file ending in .html); else inside the run
    directory for one run, else runs/report-<timestamp>/ for several."""
    if out is not None:
        out = Path(out)
        return out if out.suffix.lower() in (".html", ".htm") else out / REPORT_NAME
    if len(run_dirs) == 1:
        return Path(run_dirs[0]) / REPORT_NAME
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"report-{stamp}" / REPORT_NAME


def write_report(run_dirs: Sequence[str | Path], out: str | Path | None = None, *,
                 use_dot: bool | None = None) -> Path:
    """Build the report of one or more run directories and write it atomically; returns its path.

    use_dot: draw cell graphs with graphviz (True), matplotlib (False) or graphviz if installed
    (None). Raises UserError for a path that is not a run directory."""
    if not run_dirs:
        raise UserError("no run directory given", where="report", fix="give at least one RUN_DIR")
    from .page import build_page

    runs = [load_run(d) for d in run_dirs]
    path = report_path([Path(d) for d in run_dirs], Path(out) if out is not None else None)
    if path.exists() and path.is_dir():
        raise UserError("is a directory", where=str(path), fix="give a file name ending in .html")
    text = build_page(runs, use_dot=use_dot)
    with atomic_write(path) as fh:
        os.fchmod(fh.fileno(), 0o644)  # a page to share, not a secret (temp files start as 0600)
        fh.write(text.encode("utf-8"))
    return path


def report_at_end(run_dir: str | Path, enabled: bool = True) -> Path | None:
    """Write a finished search's report (rank 0); a page that fails never fails the search."""
    from ..runs.rundir import is_main_process

    if not enabled or not is_main_process():
        return None
    try:
        path = write_report([run_dir])
    except Exception as exc:  # noqa: BLE001 - the search's results are already safely written
        import sys

        print(f"budgetnas: warning: report not written ({exc})", file=sys.stderr)
        return None
    print(f"report: {path}")
    return path
