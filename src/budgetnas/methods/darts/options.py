"""Options of `budgetnas search darts`."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from ...config import CellNetworkOptions
from ...runs.registry import ReportSpec, register_method

# Size presets: the search supernet (cells, C), its search epochs and batch size; with a target
# the found cells are width-scaled instead of keeping C.
PRESETS: dict[str, dict] = {
    "tiny": {"cells": 3, "C": 4, "epochs": 8, "batch_size": 64},
    "darts8_c24": {"cells": 8, "C": 24, "epochs": 50, "batch_size": 64},
    "darts14_c44": {"cells": 14, "C": 44, "epochs": 50, "batch_size": 64},
}


@register_method("darts", method="budgetnas.methods.darts.method:DartsMethod",
                 report=ReportSpec(baseline=True),
                 help="first-order DARTS, then width scaling to the target (a baseline)")
class DartsOptions(CellNetworkOptions):
    epochs: int | None = Field(None, ge=1, description="search epochs (overrides the preset)")
    scale_from: Path | None = Field(None, description="finished DARTS run to reuse: skip the search, "
                                                      "scale its cells to this target")

    PRESETS: ClassVar[dict[str, dict]] = PRESETS
