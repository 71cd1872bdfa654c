"""`budgetnas` command line: one subcommand per task, each implemented in its own module.

A command module exposes `add_arguments(parser)` and `run(args) -> int | None`. Errors: a
`UserError` prints one line and exits 2; anything unexpected exits 1.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import typing

from . import __version__
from .errors import UserError

SEARCH_METHODS = {
    "mgas": "budgetnas.methods.mgas.command",
    "dna": "budgetnas.methods.dna.command",
    "darts": "budgetnas.methods.baselines.darts_command",
    "random": "budgetnas.methods.baselines.random_command",
}
COMMANDS = {
    "generate": ("budgetnas.methods.nag.command", "NAG: train a budget-conditioned generator / query it"),
    "train": ("budgetnas.train.command", "retrain an architecture from scratch"),
    "profile": ("budgetnas.cost.command", "params (dense, non-zero), MACs, latency on a device"),
    "export": ("budgetnas.export", "export an architecture with weights to ONNX or TorchScript"),
    "report": ("budgetnas.report.command", "plots + HTML summary of runs"),
}


def _load(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return None
        raise


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit 2), naming the option
    and pointing at --help, instead of argparse's multi-line usage block."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} — fix: see '{self.prog} --help'\n")


def one_line(text: str) -> str:
    """Messages stay on one line whatever the user typed (a file name with a newline, say)."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="budgetnas", description="Find the most accurate neural network for a budget.")
    parser.add_argument("--version", action="version", version=f"budgetnas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    search = sub.add_parser("search", help="search an architecture; writes a run directory")
    methods = search.add_subparsers(dest="method", metavar="METHOD", required=True)
    for method, module_name in SEARCH_METHODS.items():
        _add(methods, method, module_name, f"search with {method}")
    for name, (module_name, help_text) in COMMANDS.items():
        _add(sub, name, module_name, help_text)
    return parser


def _add(sub, name: str, module_name: str, help_text: str) -> None:
    module = _load(module_name)
    p = sub.add_parser(name, help=help_text if module else f"{help_text} (not available yet)",
                       description=help_text)
    if module is not None:
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    else:
        p.set_defaults(_run=None, _missing=name)




def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed a one-line usage error (exit 2)
        return int(exc.code or 0)
    if args._run is None:
        print(f"budgetnas: '{args._missing}' is not available in this version", file=sys.stderr)
        return 2
    try:
        code = args._run(args)
    except UserError as exc:
        print(f"budgetnas: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("budgetnas: interrupted; resume with --resume", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    raise SystemExit(main())
