"""Property-based tests over command-line values, in process.

For every subcommand the options are read from its argument parser and its options model (types,
choices, bounds), and hypothesis draws values for them:
- malformed values (not a number, out of bounds, NaN/infinite, not one of the choices, unknown
  flags) must end with exit code 2 and one line on stderr naming the option;
- any value at all must end either with exit code 2 and one line on stderr, or be accepted.
"Accepted" means the command got past its option checks: the first thing a command does after
them (creating its run directory, profiling, loading weights) is replaced by a sentinel, so no
example trains anything or writes files. Never a traceback, never another exit code.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import io
import math
from unittest import mock

import annotated_types
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import budgetnas.data as data_module
from budgetnas.cli import build_parser, main

from conftest import EXAMPLES

ARCH = str(EXAMPLES / "small_digits.json")


class Accepted(Exception):
    """Raised where a command starts its work: its options were accepted."""


def _accept(*_args, **_kwargs):
    raise Accepted


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("fuzz") / "table.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arch", "acc", "latency_ms"])
        for code in range(27):
            choice = [code // 9, (code // 3) % 3, code % 3]
            w.writerow(["-".join(map(str, choice)), 50 + sum(choice) * 3.0, 1 + sum(c * c for c in choice)])
    _cached_load("digits")  # load the built-in data once, before the timed examples
    _cached_load("synthetic")
    return str(path)


# Every command that writes a run directory opens it through the run context.
CONTEXT = "budgetnas.runs.context"


# name -> (argv before the fuzzed option, module whose `attribute` is replaced by the sentinel)
def commands(table: str) -> dict[str, tuple[list[str], str, tuple[str, ...]]]:
    return {
        "train": (["train", ARCH], CONTEXT, ("prepare_run_dir",)),
        "search mgas": (["search", "mgas"], CONTEXT, ("prepare_run_dir",)),
        "search dna": (["search", "dna", "--target-params", "40000"], CONTEXT, ("prepare_run_dir",)),
        "search darts": (["search", "darts"], CONTEXT, ("prepare_run_dir",)),
        "search random": (["search", "random"], CONTEXT, ("prepare_run_dir",)),
        "generate": (["generate", "--table", table, "--accuracy", "acc", "--cost", "latency_ms"],
                     CONTEXT, ("prepare_run_dir",)),
        "profile": (["profile", ARCH], "budgetnas.cost.command", ("_profile", "_sample")),
        "export": (["export", ARCH, "--weights", "model.safetensors", "--format", "torchscript",
                    "--out", "model.pt"], "budgetnas.export", ("load_trained_model",)),
    }


def _subparser(parser: argparse.ArgumentParser, words: list[str]) -> argparse.ArgumentParser:
    for word in words:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[word]
    return parser


@functools.lru_cache(maxsize=None)
def _options(name: str) -> list[dict]:
    """The value-taking options of a subcommand: flag, type, choices and bounds."""
    words = name.split()
    parser = _subparser(build_parser(), words)
    model = _model(words)
    found = []
    for action in parser._actions:
        if not action.option_strings or action.nargs == 0 or action.dest in ("help", "config"):
            continue
        flag = max(action.option_strings, key=len)
        bounds = {}
        field = model.model_fields.get(action.dest) if model else None
        for meta in (field.metadata if field else []):
            for key in ("ge", "gt", "le", "lt"):
                if isinstance(meta, getattr(annotated_types, key.capitalize())):
                    bounds[key] = getattr(meta, key)
        if name in ("profile", "export") and action.dest in ("batch_size", "runs"):
            bounds["ge"] = 1  # checked by those commands themselves
        bounds.update(_own_bounds(name, action.dest))
        found.append({"flag": flag, "dest": action.dest, "type": action.type, "choices": action.choices,
                      "bounds": bounds})
    return found


def _own_bounds(name: str, dest: str) -> dict:
    """Upper/lower bounds that profile and export check themselves (they have no options model)."""
    from budgetnas import export
    from budgetnas.config import MAX_THREADS
    from budgetnas.cost import command as profile_command

    if name == "profile" and dest == "threads":
        return {"ge": 1, "le": MAX_THREADS}
    if name == "profile" and dest == "batch_size":
        return {"le": profile_command.MAX_BATCH_SIZE}
    if name == "export" and dest == "batch_size":
        return {"le": export.MAX_BATCH_SIZE}
    if name == "export" and dest == "opset":
        low, high = export.opset_range()
        return {"ge": low, "le": high}
    return {}


def _model(words: list[str]):
    import importlib

    parser = _subparser(build_parser(), words)
    if parser.get_default("_options") is not None:  # a method: its registered options class
        return parser.get_default("_options")
    run = parser.get_default("_run")
    module = importlib.import_module(run.__module__)
    return next((v for v in vars(module).values() if isinstance(v, type) and hasattr(v, "model_fields")
                 and v.__module__ == module.__name__ and "dataset" in getattr(v, "model_fields", {})),
                None)


_cache: dict = {}
_real_load = data_module.load_dataset


def _cached_load(name, data_dir=None, **kwargs):
    """The built-in datasets load once per test session (they ignore --data-dir)."""
    if name in ("digits", "synthetic"):
        key = (name, kwargs.get("subset"))
        if key not in _cache:
            _cache[key] = _real_load(name, None, **kwargs)
        return _cache[key]
    return _real_load(name, data_dir, **kwargs)


def invoke(argv: list[str], table: str, name: str) -> tuple[str, str]:
    """('accepted' or the exit code, stderr)."""
    import importlib

    _, module_name, sentinels = commands(table)[name]
    module = importlib.import_module(module_name)
    err = io.StringIO()
    with contextlib.ExitStack() as stack:
        for attr in sentinels:
            stack.enter_context(mock.patch.object(module, attr, _accept))
        if hasattr(module, "set_threads"):  # keep this process at its own thread count
            stack.enter_context(mock.patch.object(module, "set_threads", lambda n: None))
        stack.enter_context(mock.patch.object(data_module, "load_dataset", _cached_load))
        if hasattr(module, "load_dataset"):
            stack.enter_context(mock.patch.object(module, "load_dataset", _cached_load))
        stack.enter_context(contextlib.redirect_stderr(err))
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        try:
            code = main(argv)
        except Accepted:
            return "accepted", err.getvalue()
    return str(code), err.getvalue()


def assert_one_line_exit_2(outcome: str, stderr: str, *, naming: str | None = None) -> None:
    assert outcome == "2", f"expected exit code 2, got {outcome}; stderr: {stderr!r}"
    assert stderr.endswith("\n") and stderr.count("\n") == 1, f"not one line: {stderr!r}"
    assert "Traceback" not in stderr
    if naming:
        assert naming in stderr, f"{naming} not named in {stderr!r}"


# --- strategies ---------------------------------------------------------------------------------

NAMES = ["train", "search mgas", "search dna", "search darts", "search random", "generate", "profile", "export"]
# Real command lines cannot hold NUL characters; everything else can be typed.
TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12)
NUMBERS = st.one_of(st.integers(), st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True))


def _parses(option: dict, text: str) -> bool:
    try:
        value = option["type"](text) if option["type"] not in (None, str) else text
    except (ValueError, TypeError, argparse.ArgumentTypeError):
        return False
    return option["choices"] is None or value in option["choices"]


def _out_of_bounds(option: dict) -> st.SearchStrategy | None:
    """Numbers outside an option's bounds (and NaN/infinities for floats), as typed."""
    b, kind = option["bounds"], option["type"]
    if kind is int:
        parts = ([st.integers(max_value=math.ceil(b["ge"]) - 1)] if "ge" in b else []) + \
                ([st.integers(max_value=math.floor(b["gt"]))] if "gt" in b else []) + \
                ([st.integers(min_value=math.floor(b["le"]) + 1)] if "le" in b else []) + \
                ([st.integers(min_value=math.ceil(b["lt"]))] if "lt" in b else [])
    elif kind is float:
        parts = ([st.floats(max_value=b["ge"], exclude_max=True, allow_nan=False)] if "ge" in b else []) + \
                ([st.floats(max_value=b["gt"], allow_nan=False)] if "gt" in b else []) + \
                ([st.floats(min_value=b["le"], exclude_min=True, allow_nan=False)] if "le" in b else []) + \
                ([st.floats(min_value=b["lt"], allow_nan=False)] if "lt" in b else []) + \
                [st.sampled_from([math.nan, math.inf, -math.inf])]
    else:
        return None
    return st.one_of(parts).map(repr) if parts else None


@st.composite
def malformed(draw, table: str):
    name = draw(st.sampled_from(NAMES))
    argv, *_ = commands(table)[name]
    kind = draw(st.sampled_from(["type", "bounds", "unknown"]))
    if kind == "unknown":
        flags = {o for a in _subparser(build_parser(), name.split())._actions for o in a.option_strings}
        flag = "--" + draw(st.from_regex(r"[a-z][a-z0-9-]{0,14}", fullmatch=True))
        if any(f.startswith(flag) for f in flags):  # argparse accepts unique prefixes of real flags
            flag = "--zz-" + flag[2:]
        return name, [*argv, flag, "1"], flag
    options = [o for o in _options(name) if (o["type"] not in (None, str) or o["choices"])] \
        if kind == "type" else [o for o in _options(name) if _out_of_bounds(o) is not None]
    option = draw(st.sampled_from(options))
    if kind == "type":
        value = draw(st.one_of(TEXT, NUMBERS.map(repr)).filter(lambda v: not _parses(option, v)))
    else:
        value = draw(_out_of_bounds(option))
    return name, [*argv, f"{option['flag']}={value}"], option["flag"]


@st.composite
def anything(draw, table: str):
    name = draw(st.sampled_from(NAMES))
    argv, *_ = commands(table)[name]
    option = draw(st.sampled_from(_options(name)))
    value = draw(st.one_of(TEXT, NUMBERS.map(repr), NUMBERS.map(str),
                           st.sampled_from(option["choices"] or [""])))
    return name, [*argv, f"{option['flag']}={value}"]


# No deadline: an accepted value may build a large network, and a shared machine stalls at random.
FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(data=st.data())
def test_malformed_values_exit_2_with_one_line_naming_the_option(table, data):
    name, argv, flag = data.draw(malformed(table))
    outcome, stderr = invoke(argv, table, name)
    assert_one_line_exit_2(outcome, stderr, naming=flag)


@FUZZ
@given(data=st.data())
def test_any_value_is_accepted_or_refused_on_one_line(table, data):
    name, argv = data.draw(anything(table))
    outcome, stderr = invoke(argv, table, name)
    if outcome != "accepted":
        assert_one_line_exit_2(outcome, stderr)


@pytest.mark.parametrize("name", NAMES)
def test_every_subcommand_accepts_its_base_command_line(table, name):
    argv, *_ = commands(table)[name]
    assert invoke(argv, table, name)[0] == "accepted"


@pytest.mark.parametrize("argv, naming", [
    (["train", ARCH, "--lr", "nan"], "--lr"),
    (["train", ARCH, "--lr", "inf"], "--lr"),
    (["train", ARCH, "--seed", str(2**64)], "--seed"),
    (["train", ARCH, "--threads", str(10**6)], "--threads"),
    (["train", ARCH, "--epochs", "1e3"], "--epochs"),
    (["train", ARCH, "--epochs"], "--epochs"),
    (["search", "mgas", "--target-params", "-5"], "--target-params"),
    (["search", "dna", "--target-params", "1000", "--depths", "1,x"], "--depths"),
    (["search", "dna", "--target-params", "1000", "--depths", str(10**9)], "--depths"),
    (["search", "dna", "--target-params", "1000", "--ops", "e3k99999"], "--ops"),
    (["search", "dna", "--target-params", "1000", "--strides", "1,7"], "--strides"),
    (["generate", "--budgets", "4,nan"], "--budgets"),
    (["profile", ARCH, "--latency", "--threads", "-1"], "--threads"),
    (["profile", ARCH, "--latency", "--threads", "0"], "--threads"),
    (["profile", ARCH, "--latency", "--threads", "100000000"], "--threads"),
    (["export", ARCH, "--weights", "w", "--format", "onnx", "--out", "m", "--batch-size", str(10**12)],
     "--batch-size"),
    (["export", ARCH, "--weights", "w", "--format", "onnx", "--out", "m", "--opset", "1"], "--opset"),
    (["export", ARCH, "--weights", "w", "--format", "onnx", "--out", "m", "--opset", "10000"], "--opset"),
    (["train", ARCH, "--config", "no\nsuch.yaml"], "no\\nsuch.yaml"),
    (["search", "nope"], "nope"),
    (["train"], "arch"),
])
def test_examples_of_bad_values(table, argv, naming):
    name = " ".join(argv[:2]) if argv[0] == "search" and argv[1] in ("mgas", "dna") else argv[0]
    if argv[0] == "generate":
        argv = [*commands(table)["generate"][0], *argv[1:]]
    outcome, stderr = invoke(argv, table, name if name in NAMES else "train")
    assert_one_line_exit_2(outcome, stderr, naming=naming)


def test_help_and_version_exit_0():
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(["train", "--help"]) == 0
        assert main(["--version"]) == 0
        for method in ("mgas", "dna"):
            assert main(["search", method, "--help"]) == 0
    assert "usage" in out.getvalue()


def test_a_percent_sign_in_an_option_description_shows_in_help():
    import argparse

    from pydantic import BaseModel, Field

    from budgetnas.config import add_model_arguments

    class Opts(BaseModel):
        share: float = Field(0.5, description="keep 50 % of it")

    parser = argparse.ArgumentParser()
    add_model_arguments(parser, Opts)
    assert "keep 50 % of it" in parser.format_help()
