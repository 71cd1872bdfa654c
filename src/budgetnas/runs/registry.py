"""The strict registry of methods: every `budgetnas search <name>` (and `generate`) is one entry.

A method is one folder under `budgetnas/methods/` whose `__init__` imports its `options.py`,
where the options class is decorated with `@register_method`. Registering never imports the
method itself (torch and friends): the CLI builds its flags and `--help` from the options class
alone, and `MethodEntry.method_class()` imports the method when a run starts.

    @register_method("mgas", method="budgetnas.methods.mgas.method:MGASMethod",
                     help="multi-granularity search for a target size")
    class MGASOptions(SearchOptions): ...

Duplicates and unknown names are refused, as in `budgetnas.spaces`.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import UserError


@dataclass(frozen=True)
class PlotSpec:
    """A plot of a run's files the report knows how to draw (`report.page.PLOTS`)."""

    kind: str  # "over_time", "per_stage", "front" or "picks"
    caption: str
    missing: str  # the note shown when the run lacks the data
    options: dict = field(default_factory=dict)  # e.g. title, only, x_key, rows_where


@dataclass(frozen=True)
class ReportSpec:
    """How the report shows a method's runs (data only: the report draws them)."""

    kind: str = "search"  # "search" or "generate"
    baseline: bool = False  # drawn as a baseline beside the searches
    sampled_points: bool = False  # log rows are sampled candidates with a cost and an accuracy
    plots: tuple[PlotSpec, ...] = ()


@dataclass(frozen=True)
class MethodEntry:
    name: str
    options: type  # a pydantic options class (its module must not import torch)
    method: Any  # the Method class, or "module:Class" imported on first use
    help: str
    command: tuple[str, ...]  # CLI words, e.g. ("search", "mgas") or ("generate",)
    report: ReportSpec = ReportSpec()

    def method_class(self) -> type:
        if isinstance(self.method, str):
            module, _, name = self.method.partition(":")
            return getattr(importlib.import_module(module), name)
        return self.method


_METHODS: dict[str, MethodEntry] = {}


def register_method(name: str, *, method: Any, help: str, command: tuple[str, ...] | None = None,
                    report: ReportSpec | None = None) -> Callable[[type], type]:
    """Class decorator for a method's options class; refuses a name registered twice."""
    def add(options: type) -> type:
        if name in _METHODS:
            raise ValueError(f"method {name!r} is already registered")
        _METHODS[name] = MethodEntry(name, options, method, help, command or ("search", name),
                                     report or ReportSpec())
        return options
    return add


def find_method(name: str) -> MethodEntry | None:
    """The entry of `name`, or None (a run directory written by an unknown method)."""
    _load_builtin()
    return _METHODS.get(name)


def unregister_method(name: str) -> None:
    """Remove a method (tests that register a throw-away method clean up with this)."""
    _METHODS.pop(name, None)


def get_method(name: str) -> MethodEntry:
    _load_builtin()
    if name not in _METHODS:
        raise UserError(f"unknown method {name!r}", where="method",
                        fix=f"use one of: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]


def method_entries() -> list[MethodEntry]:
    """Every registered method, built-in ones first in folder order."""
    _load_builtin()
    return list(_METHODS.values())


_loaded = False


def _load_builtin() -> None:
    """Import every folder of `budgetnas.methods` once; each registers itself."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import budgetnas.methods as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.ispkg:
            importlib.import_module(f"{package.__name__}.{info.name}")
