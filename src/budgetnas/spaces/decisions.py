"""A search space seen as an ordered list of categorical decisions.

Generators and predictors do not need to know what a genotype looks like: they see a fixed list of
decisions, each with a name and a tuple of choices, and an architecture is one choice index per
decision. A decision may be *gated* by an earlier one (depth-dependent activity): layer 3 of a
stage only exists when the stage's depth is at least 3. Inactive decisions keep index 0 in the
canonical form, encode as all-zero one-hot slots and are ignored by `to_genotype`.

    space = DecisionSpace([Decision("depth", (2, 3, 4)),
                           Decision("kernel_3", (3, 5, 7), gate=("depth", 3))], ...)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..errors import UserError


@dataclass(frozen=True)
class Decision:
    """One categorical decision.

    gate: (name of an earlier decision, minimum value) — this decision is active only when the
    earlier decision's chosen *value* is >= the minimum (e.g. a depth).
    """

    name: str
    choices: tuple
    gate: tuple[str, Any] | None = None

    @property
    def size(self) -> int:
        return len(self.choices)


class DecisionSpace:
    """Ordered decisions plus the two maps to and from the space's genotype.

    to_genotype(values: dict name -> chosen value (active decisions only)) -> genotype
    from_genotype(genotype) -> dict name -> value (may omit inactive decisions)
    """

    def __init__(self, decisions: Sequence[Decision], *, name: str = "decisions",
                 to_genotype: Callable[[dict], Any] | None = None,
                 from_genotype: Callable[[Any], dict] | None = None):
        self.name = name
        self.decisions = list(decisions)
        self.index = {d.name: i for i, d in enumerate(self.decisions)}
        if len(self.index) != len(self.decisions):
            raise ValueError("decision names must be unique")
        for i, d in enumerate(self.decisions):
            if d.size < 1:
                raise ValueError(f"decision {d.name!r} has no choices")
            if d.gate is not None and self.index.get(d.gate[0], i) >= i:
                raise ValueError(f"decision {d.name!r} is gated by {d.gate[0]!r}, which must come earlier")
        self._to = to_genotype or (lambda values: [values.get(d.name) for d in self.decisions])
        self._from = from_genotype or (lambda g: dict(zip([d.name for d in self.decisions], g)))
        self.sizes = [d.size for d in self.decisions]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        self.encoding_size = int(self.offsets[-1])
        self.has_gates = any(d.gate is not None for d in self.decisions)

    def __len__(self) -> int:
        return len(self.decisions)

    # --- activity ---------------------------------------------------------------------------

    def is_active(self, i: int, indices: Sequence[int]) -> bool:
        """Whether decision i is active given the choices made so far (only earlier ones matter)."""
        gate = self.decisions[i].gate
        if gate is None:
            return True
        j = self.index[gate[0]]
        return self.is_active(j, indices) and self.decisions[j].choices[indices[j]] >= gate[1]

    def active(self, indices: Sequence[int]) -> list[bool]:
        return [self.is_active(i, indices) for i in range(len(self.decisions))]

    def canonical(self, indices: Sequence[int]) -> tuple[int, ...]:
        """Inactive slots set to 0, so two encodings of one network compare equal."""
        act = self.active(indices)
        return tuple(int(v) if a else 0 for v, a in zip(indices, act))

    # --- encodings ---------------------------------------------------------------------------

    def encode(self, indices: Sequence[int]) -> np.ndarray:
        """One-hot of every decision; inactive decisions are all-zero."""
        out = np.zeros(self.encoding_size, dtype=np.float32)
        for i, (v, a) in enumerate(zip(indices, self.active(indices))):
            if a:
                out[self.offsets[i] + int(v)] = 1.0
        return out

    def encode_batch(self, rows: np.ndarray) -> np.ndarray:
        """Vectorized `encode` for an (N, D) array of choice indices."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros((len(rows), self.encoding_size), dtype=np.float32)
        active = self.active_batch(rows)
        n = np.arange(len(rows))
        for i in range(len(self.decisions)):
            sel = active[:, i]
            out[n[sel], self.offsets[i] + rows[sel, i]] = 1.0
        return out

    def active_batch(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        active = np.ones(rows.shape, dtype=bool)
        for i, d in enumerate(self.decisions):
            if d.gate is not None:
                j = self.index[d.gate[0]]
                values = np.asarray(self.decisions[j].choices)[rows[:, j]]
                active[:, i] = active[:, j] & (values >= d.gate[1])
        return active

    # --- sampling and conversion -----------------------------------------------------------

    def sample(self, rng: np.random.Generator) -> tuple[int, ...]:
        """A uniformly random choice per decision (canonical form)."""
        return self.canonical([int(rng.integers(s)) for s in self.sizes])

    def sample_batch(self, rng: np.random.Generator, n: int) -> np.ndarray:
        rows = np.stack([rng.integers(0, s, size=n) for s in self.sizes], axis=1)
        return np.where(self.active_batch(rows), rows, 0)

    def enumerate(self) -> Iterator[tuple[int, ...]]:
        """Every distinct architecture (small spaces only)."""
        seen = set()
        for flat in np.ndindex(*self.sizes):
            key = self.canonical(flat)
            if key not in seen:
                seen.add(key)
                yield key

    def values(self, indices: Sequence[int]) -> dict:
        """name -> chosen value for the active decisions."""
        return {d.name: d.choices[int(v)] for d, v, a in
                zip(self.decisions, indices, self.active(indices)) if a}

    def to_genotype(self, indices: Sequence[int]) -> Any:
        if len(indices) != len(self.decisions):
            raise UserError(f"{len(indices)} choices given, the space has {len(self.decisions)} decisions",
                            where=self.name)
        for d, v in zip(self.decisions, indices):
            if not 0 <= int(v) < d.size:
                raise UserError(f"choice index {v} out of range for {d.name!r} ({d.size} choices)",
                                where=self.name)
        return self._to(self.values(indices))

    def from_genotype(self, genotype: Any) -> tuple[int, ...]:
        values = self._from(genotype)
        indices = []
        for i, d in enumerate(self.decisions):
            v = values.get(d.name)
            if v is None or (d.gate is not None and not self.is_active(i, indices + [0] * (len(self) - i))):
                indices.append(0)
                continue
            if v not in d.choices:
                raise UserError(f"value {v!r} is not a choice of {d.name!r} (choices: "
                                f"{', '.join(map(str, d.choices))})", where=self.name)
            indices.append(d.choices.index(v))
        return self.canonical(indices)

    def describe(self) -> list[dict]:
        """JSON-friendly description (stored with trained generators and tables)."""
        return [{"name": d.name, "choices": list(d.choices),
                 "gate": list(d.gate) if d.gate else None} for d in self.decisions]

    @staticmethod
    def from_description(items: list[dict], *, name: str = "decisions") -> "DecisionSpace":
        return DecisionSpace([Decision(it["name"], tuple(it["choices"]),
                                       tuple(it["gate"]) if it.get("gate") else None) for it in items],
                             name=name)


def compact(indices: Sequence[int]) -> str:
    """'0-2-1-1' form used in table files."""
    return "-".join(str(int(v)) for v in indices)


def parse_indices(text: str, n: int, *, where: str) -> list[int]:
    """'2-0-1' (or '2,0,1') -> [2, 0, 1], refusing anything but `n` integers."""
    try:
        values = [int(p) for p in text.replace(",", "-").split("-") if p.strip()]
    except ValueError:
        raise UserError(f"expected choice indices like 2-0-1, got {text!r}", where=where) from None
    if len(values) != n:
        raise UserError(f"{len(values)} choice indices given; the space has {n} decisions", where=where)
    return values
