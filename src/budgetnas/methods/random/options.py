"""Options of `budgetnas search random`."""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ...config import CellNetworkOptions
from ...runs.registry import ReportSpec, register_method

# Size presets: cells and width C of a network without a target, batch size for rating.
PRESETS: dict[str, dict] = {
    "tiny": {"cells": 3, "C": 4, "batch_size": 64},
    "darts8_c24": {"cells": 8, "C": 24, "batch_size": 64},
    "darts14_c44": {"cells": 14, "C": 44, "batch_size": 64},
}


@register_method("random", method="budgetnas.methods.random.method:RandomMethod",
                 report=ReportSpec(baseline=True, sampled_points=True),
                 help="random cell networks scaled to the target (a baseline)")
class RandomOptions(CellNetworkOptions):
    candidates: int = Field(8, ge=1, description="random networks to sample")
    epochs_per_candidate: int = Field(1, ge=0, description="training epochs to rate each candidate "
                                                           "(0 = keep the first candidate)")

    PRESETS: ClassVar[dict[str, dict]] = PRESETS
