"""Presets of the baselines, matching MGAS's (`tiny` for CPUs, the two sizes the authors released).

`cells` and `C` describe the search network (DARTS) and the width a random network gets when no
target is given; with a target the width is chosen by width scaling instead. `epochs` is the
number of DARTS search epochs; `batch_size` applies to the search and to rating random candidates.
"""
from __future__ import annotations

PRESETS: dict[str, dict] = {
    "tiny": {"cells": 3, "C": 4, "epochs": 8, "batch_size": 64},
    "darts8_c24": {"cells": 8, "C": 24, "epochs": 50, "batch_size": 64},
    "darts14_c44": {"cells": 14, "C": 44, "epochs": 50, "batch_size": 64},
}
