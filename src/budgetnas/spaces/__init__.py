"""Search spaces: a strict registry of named spaces (duplicates and unknown names refused).

A space knows how to validate a genotype for a macro `config` and how to build a plain
`torch.nn.Module` from an `Arch`. Importing this package registers the built-in spaces.
"""
from __future__ import annotations

from typing import Any, Protocol

import torch.nn as nn

from ..errors import UserError


class Space(Protocol):
    """What the architecture file needs from a space."""

    name: str

    def validate(self, config: dict, genotype: Any, *, where: str) -> None:
        """Raise `ArchError` naming the field on any inconsistency."""

    def build(self, arch: "Arch", masks: dict | None = None) -> nn.Module:  # noqa: F821
        """A plain module for the architecture (no search-time machinery)."""


_SPACES: dict[str, Space] = {}


def register_space(space: Space) -> Space:
    if space.name in _SPACES:
        raise ValueError(f"space {space.name!r} is already registered")
    _SPACES[space.name] = space
    return space


def get_space(name: str, *, where: str = "space") -> Space:
    _load_builtin()
    if name not in _SPACES:
        raise UserError(f"unknown space {name!r}", where=where,
                        fix=f"use one of: {', '.join(sorted(_SPACES))}")
    return _SPACES[name]


def space_names() -> list[str]:
    _load_builtin()
    return sorted(_SPACES)


def _load_builtin() -> None:
    # Imported lazily so that importing one space never imports the others' dependencies.
    import importlib
    import importlib.util

    for module in _BUILTIN:
        if importlib.util.find_spec(f"{__name__}.{module}") is not None:
            importlib.import_module(f"{__name__}.{module}")


# Modules defining the built-in spaces (each registers itself on import).
_BUILTIN = ["darts", "nb201", "mbconv"]
