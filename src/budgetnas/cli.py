"""`budgetnas` command line: `search <method>` and `generate` come from the method registry, the
other commands from their own modules.

A command module exposes `add_arguments(parser)` and `run(args) -> int | None`; a method is run by
`budgetnas.runs.run_method`. Building the parser imports no torch (option classes and command
modules import heavy libraries only inside `run`), so `--help` and bad options answer at once.
Errors: a `UserError` prints one line and exits 2; anything unexpected exits 1.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import typing

from . import __version__
from .errors import UserError, one_line

COMMANDS = {
    "train": ("budgetnas.train.command", "retrain an architecture from scratch"),
    "profile": ("budgetnas.cost.command", "params (dense, non-zero), MACs, latency on a device"),
    "export": ("budgetnas.export", "export an architecture with weights to ONNX or TorchScript"),
    "report": ("budgetnas.report.command", "plots + HTML summary of runs"),
}


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit 2), naming the option
    and pointing at --help, instead of argparse's multi-line usage block."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} — fix: see '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    from .config import add_model_arguments
    from .runs.registry import method_entries

    parser = OneLineParser(
        prog="budgetnas", description="Find the most accurate neural network for a budget.")
    parser.add_argument("--version", action="version", version=f"budgetnas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    search = sub.add_parser("search", help="search an architecture; writes a run directory")
    methods = search.add_subparsers(dest="method", metavar="METHOD", required=True)
    for entry in method_entries():
        parent = methods if entry.command[0] == "search" else sub
        p = parent.add_parser(entry.command[-1], help=entry.help, description=entry.help)
        add_model_arguments(p, entry.options)
        p.set_defaults(_run=_method_runner(entry.name, entry.options), _options=entry.options)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _method_runner(name: str, options: type):
    def run(args: argparse.Namespace) -> int:
        from .config import resolve_options
        from .runs import run_method

        run_method(name, resolve_options(options, args))
        return 0
    return run


def wait_policy(load: float, user_policy: str | None) -> str | None:
    """The OpenMP wait policy to set, or None to leave the runtime's own (threads spin a while).

    **Decision:** passive only when other work already holds at least one core (1-minute load
    average >= 1). Measured on 2 cores (docs/benchmarks.md, 2 threads, small digits network):
    beside a busy neighbour passive trains 2.3x faster than the default (9.9 s vs 23.3 s), but on
    an idle machine it is 2.2x slower (7.7 s vs 3.6 s): threads that sleep at once wake up late
    for the many short parallel regions of a small network. A shorter spin (GOMP_SPINCOUNT) did
    not give both (3,000: 4.2 s idle, 18 s busy; 30,000: 3.6 s idle, 80 s busy)."""
    if user_policy is not None:
        return None
    return "PASSIVE" if load >= 1.0 else None


def quiet_openmp() -> None:
    """Make OpenMP threads sleep instead of spin while they wait when the machine is busy, unless
    the user chose a policy (`wait_policy`). It must be set before torch (and its OpenMP runtime)
    is loaded."""
    import os

    if "torch" in sys.modules:
        return
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    policy = wait_policy(load, os.environ.get("OMP_WAIT_POLICY"))
    if policy is not None:
        os.environ["OMP_WAIT_POLICY"] = policy


def main(argv: list[str] | None = None) -> int:
    quiet_openmp()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed a one-line usage error (exit 2)
        return int(exc.code or 0)
    try:
        code = args._run(args)
    except UserError as exc:
        print(f"budgetnas: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("budgetnas: interrupted; resume with --resume", file=sys.stderr)
        return 130
    finally:
        rundir = sys.modules.get("budgetnas.runs.rundir")  # loaded only by commands that lock
        if rundir is not None:
            rundir.release_locks()
    return int(code or 0)


if __name__ == "__main__":
    raise SystemExit(main())
