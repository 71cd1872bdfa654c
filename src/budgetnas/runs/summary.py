"""summary.json of a search: the fields every method writes (product contract), typed, plus the
method's own extras; and the printed result table."""
from __future__ import annotations

import sys
from typing import Any

from pydantic import BaseModel, ConfigDict

from .. import __version__


class Summary(BaseModel):
    """The common fields of summary.json; `extras` holds the method's own (written beside them)."""

    model_config = ConfigDict(extra="forbid")

    method: str
    dataset: str
    target: dict
    params_dense: int | None
    params_nonzero: int | None
    macs: int | None
    val_acc: float | None  # held-out split of the training data, 0..1
    search_seconds: float
    peak_memory_mb: float
    seed: int
    version: str = __version__
    extras: dict = {}

    def to_json(self) -> dict:
        common = self.model_dump(exclude={"extras"})
        return {**common, **self.extras}

    def table_rows(self) -> dict:
        """The rows every search prints."""
        unit, goal = next(iter(self.target.items()), ("", None))
        rows: dict[str, Any] = {"target": f"{goal:g} {unit}" if goal is not None else "none",
                                "params (non-zero)": self.params_nonzero,
                                "params (dense)": self.params_dense, "MACs": self.macs}
        error = self.extras.get("target_error")
        if error is not None:
            rows["off target"] = f"{100 * error:+.1f} %"
        # The search's own weights, not a retrained network's: a rough signal, so not headlined.
        rows["held-out acc (search weights)"] = "-" if self.val_acc is None else f"{self.val_acc:.4f}"
        rows["search time"] = f"{self.search_seconds:.1f} s"
        rows["peak memory"] = f"{self.peak_memory_mb:.0f} MB"
        return rows


def print_table(title: str, rows: dict, file=None) -> None:
    """A title line and aligned `key  value` rows."""
    file = file or sys.stdout  # looked up at call time (tests capture it)
    width = max(map(len, rows)) if rows else 0
    print(title, file=file)
    for key, value in rows.items():
        print(f"  {key:<{width}}  {value}", file=file)
