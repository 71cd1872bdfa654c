"""Search spaces: a strict registry of named spaces (duplicates and unknown names refused).

A space (`spaces.base.Space`) validates a genotype for a macro `config`, builds a plain
`torch.nn.Module` from an `Arch`, and answers what the rest of budgetnas asks of it: its
auxiliary head, its decision view, how to read a genotype from the command line, how to draw it.
Importing a space module registers it; `get_space` loads the built-in ones on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    from .base import Space

_SPACES: dict[str, "Space"] = {}


def register_space(space: "Space") -> "Space":
    if space.name in _SPACES:
        raise ValueError(f"space {space.name!r} is already registered")
    _SPACES[space.name] = space
    return space


def get_space(name: str, *, where: str = "space") -> "Space":
    _load_builtin()
    if name not in _SPACES:
        raise UserError(f"unknown space {name!r}", where=where,
                        fix=f"use one of: {', '.join(sorted(_SPACES))}")
    return _SPACES[name]


def _load_builtin() -> None:
    # Imported lazily so that importing one space never imports the others' dependencies.
    import importlib

    for module in _BUILTIN:
        importlib.import_module(f"{__name__}.{module}")


# Modules defining the built-in spaces (each registers itself on import).
_BUILTIN = ["darts", "nb201", "mbconv", "nbmacro"]


def decision_view(name: str, *, in_channels: int = 3, num_classes: int = 10, input_size: int = 32):
    """(decision space, macro config) of space `name` for a dataset's shape: what generators,
    predictors and latency tables work with."""
    space = get_space(name, where="--space")
    config = space.template(in_channels=in_channels, num_classes=num_classes, input_size=input_size)
    return space.decisions(config), config
