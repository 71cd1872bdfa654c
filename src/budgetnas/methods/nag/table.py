"""Tabular benchmarks: (architecture, metrics) rows read from a CSV file.

The `arch` column holds either a fixed-length tuple of categorical choices (`0-2-1-1-0-2-0-1`;
`-`, `,`, `:` or spaces separate them) or, for NAS-Bench-201, the benchmark's architecture string.
Every other column whose values are all numbers is a metric. Choices per position are inferred from
the data (the distinct values, sorted) unless declared with `choices` (a count per position), or
taken from a named space (`space="mbconv"`: tuples are choice indices in its decision order).

For NAS-Bench-201 tables `params` and `macs` columns are added from our own cost model: the cost of
a cell is the network without any op plus, per edge, the cost of the op placed there (costs add up
because every op's weights and arithmetic are independent of the other edges). The 25 numbers are
measured once on built networks, checked against full builds of a few cells and cached.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import UserError
from ...cost.nb201 import nb201_costs
from ...spaces.decisions import Decision, DecisionSpace, compact

SEPARATORS = re.compile(r"[-,:\s]+")


@dataclass
class Table:
    """Rows of a benchmark: canonical choice indices (N, D) and numeric columns."""

    space: DecisionSpace
    rows: np.ndarray
    columns: dict[str, np.ndarray]
    source: str = "table"
    space_name: str | None = None  # a buildable space (nb201, mbconv) or None
    config: dict = field(default_factory=dict)
    _lookup: dict | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str, *, option: str = "--cost") -> np.ndarray:
        if name not in self.columns:
            raise UserError(f"no numeric column {name!r} in the table", where=f"{self.source}: {option}",
                            fix=f"numeric columns: {', '.join(self.columns) or '(none)'}")
        values = self.columns[name]
        if np.isnan(values).any():
            bad = int(np.flatnonzero(np.isnan(values))[0])
            raise UserError(f"column {name!r} has an empty or non-numeric value (data row {bad + 1})",
                            where=self.source, fix="fill in every value of the columns you use")
        return values

    def index_of(self, indices: Sequence[int]) -> int | None:
        """Row of an architecture (canonical choice indices), or None if the table lacks it."""
        if self._lookup is None:
            self._lookup = {tuple(int(v) for v in r): i for i, r in enumerate(self.rows)}
        return self._lookup.get(tuple(int(v) for v in indices))

    def subset(self, idx: np.ndarray) -> "Table":
        return Table(self.space, self.rows[idx], {k: v[idx] for k, v in self.columns.items()},
                     self.source, self.space_name, self.config)

    def genotype(self, i: int):
        return self.space.to_genotype(self.rows[i])


def _fail(message: str, path: Path, line: int | None = None, fix: str | None = None) -> UserError:
    where = f"{path}" + (f": line {line}" if line else "")
    return UserError(message, where=where, fix=fix)


def read_csv(path: str | Path, *, arch_column: str = "arch") -> tuple[list[str], dict[str, list[str]]]:
    """The arch column's texts and every other column's raw texts."""
    path = Path(path)
    if not path.is_file():
        raise UserError("table file not found", where=str(path), fix="check the path")
    try:
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            records = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise _fail(f"not a readable CSV file ({exc})", path, fix="give a comma-separated text file") from None
    if not header:
        raise _fail("the file is empty", path, fix="the first line must name the columns")
    header = [h.strip() for h in header]
    if arch_column not in header:
        raise _fail(f"no {arch_column!r} column", path, 1,
                    fix=f"name the architecture column {arch_column!r}; columns: {', '.join(header)}")
    if len(set(header)) != len(header):
        raise _fail("duplicate column names", path, 1)
    records = [r for r in records if any(c.strip() for c in r)]
    if not records:
        raise _fail("the table has no data rows", path)
    for n, r in enumerate(records, start=2):
        if len(r) != len(header):
            raise _fail(f"{len(r)} values but {len(header)} columns", path, n,
                        fix="every row needs one value per column")
    a = header.index(arch_column)
    arch = [r[a].strip() for r in records]
    columns = {h: [r[k].strip() for r in records] for k, h in enumerate(header) if k != a}
    return arch, columns


def _numeric(columns: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Columns where every non-empty value is a number (empty -> NaN)."""
    out = {}
    for name, texts in columns.items():
        try:
            out[name] = np.array([float(t) if t else np.nan for t in texts], dtype=np.float64)
        except ValueError:
            continue
        if np.isnan(out[name]).all():
            del out[name]
    return out


def _parse_tuples(arch: list[str], path: Path) -> np.ndarray:
    values = []
    for n, text in enumerate(arch, start=2):
        parts = [p for p in SEPARATORS.split(text) if p]
        try:
            values.append([int(p) for p in parts])
        except ValueError:
            raise _fail(f"arch {text!r} is not a tuple of integer choices", path, n,
                        fix="write choices like 0-2-1-1 (or give NAS-Bench-201 strings)") from None
        if len(values[-1]) != len(values[0]) or not values[-1]:
            raise _fail(f"arch {text!r} has {len(values[-1])} choices, the first row has {len(values[0])}",
                        path, n, fix="every architecture needs the same number of choices")
    return np.array(values, dtype=np.int64)


def load_table(path: str | Path, *, space: str | None = None, choices: Sequence[int] | None = None,
               arch_column: str = "arch", dataset_shape: tuple[int, int, int] = (3, 32, 10)) -> Table:
    """Read a benchmark table.

    space: interpret the arch column in a buildable space's decisions (nb201 strings are
        recognized without it). choices: number of choices per position (else inferred).
    dataset_shape: (in_channels, input_size, num_classes) for the cost model of buildable spaces.
    """
    path = Path(path)
    arch, raw = read_csv(path, arch_column=arch_column)
    columns = _numeric(raw)
    if arch[0].startswith("|"):  # NAS-Bench-201 strings
        return _nb201_table(arch, columns, path, dataset_shape)
    values = _parse_tuples(arch, path)
    if space is not None:
        from ...spaces import decision_view

        c, size, classes = dataset_shape
        dspace, config = decision_view(space, in_channels=c, input_size=size, num_classes=classes)
        if values.shape[1] != len(dspace):
            raise _fail(f"arch tuples have {values.shape[1]} choices; space {space!r} has "
                        f"{len(dspace)} decisions", path, 2)
        bad = np.argwhere((values < 0) | (values >= np.array(dspace.sizes)))
        if len(bad):
            n, i = bad[0]
            raise _fail(f"choice {values[n, i]} out of range for {dspace.decisions[i].name}", path, int(n) + 2)
        rows = np.where(dspace.active_batch(values), values, 0)
        return _finish(Table(dspace, rows, columns, str(path), space, config), path)
    if choices is not None:
        if len(choices) != values.shape[1]:
            raise _fail(f"{len(choices)} choice counts declared for {values.shape[1]} positions", path,
                        fix="give one count per position")
        bad = np.argwhere((values < 0) | (values >= np.array(choices)))
        if len(bad):
            n, i = bad[0]
            raise _fail(f"value {values[n, i]} at position {i} is outside 0..{choices[i] - 1}", path,
                        int(n) + 2, fix="fix the value or the declared choice counts")
        decisions = [Decision(f"x{i}", tuple(range(int(k)))) for i, k in enumerate(choices)]
        rows = values
    else:
        decisions, rows = [], np.empty_like(values)
        for i in range(values.shape[1]):
            uniq = np.unique(values[:, i])
            decisions.append(Decision(f"x{i}", tuple(int(u) for u in uniq)))
            rows[:, i] = np.searchsorted(uniq, values[:, i])
    dspace = DecisionSpace(decisions, name="table",
                           to_genotype=lambda v: "-".join(str(v[d.name]) for d in decisions),
                           from_genotype=lambda g: dict(zip([d.name for d in decisions],
                                                            [int(p) for p in SEPARATORS.split(g) if p])))
    return _finish(Table(dspace, rows, columns, str(path)), path)


def _finish(table: Table, path: Path) -> Table:
    keys = {}
    for n, r in enumerate(table.rows):
        key = tuple(int(v) for v in r)
        if key in keys:
            raise _fail(f"architecture {compact(key)} appears twice (data rows {keys[key] + 1} and {n + 1})",
                        path, n + 2, fix="keep one row per architecture (average repeated measurements)")
        keys[key] = n
    table._lookup = keys
    if not table.columns:
        raise _fail("no numeric metric columns", path, 1, fix="add accuracy and cost columns")
    return table


# --- NAS-Bench-201 ---------------------------------------------------------------------------------

def _nb201_table(arch: list[str], columns: dict, path: Path, shape: tuple[int, int, int]) -> Table:
    from ...spaces.nb201 import decision_space

    dspace = decision_space()
    rows = []
    for n, text in enumerate(arch, start=2):
        try:
            rows.append(dspace.from_genotype(text))
        except UserError as exc:
            raise _fail(f"bad NAS-Bench-201 string ({exc})", path, n) from None
    rows = np.array(rows, dtype=np.int64)
    c, size, classes = shape
    config = {"in_channels": c, "input_size": size, "num_classes": classes}
    costs = nb201_costs(rows, config)
    for key, values in costs.items():
        columns.setdefault(key, values)
    return _finish(Table(dspace, rows, columns, str(path), "nb201", config), path)
