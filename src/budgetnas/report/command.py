"""`budgetnas report RUN_DIR [RUN_DIR ...]`: plots + HTML summary of one run or several side by side."""
from __future__ import annotations

import argparse
from pathlib import Path

from . import write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run directories (search, generate or train); several are shown side by side")
    parser.add_argument("--out", default=None,
                        help="where to write: a directory (report.html inside) or a .html file "
                             "(default: RUN_DIR/report.html for one run, runs/report-<timestamp>/ for several)")
    parser.add_argument("--graphviz", default=None, action=argparse.BooleanOptionalAction,
                        help="draw cell graphs with graphviz (default: when `dot` is installed)")


def run(args: argparse.Namespace) -> int:
    path = write_report([Path(d) for d in args.run_dirs], args.out, use_dot=args.graphviz)
    print(f"report: {path}")
    print(f"open it: file://{path.resolve()}")
    return 0
