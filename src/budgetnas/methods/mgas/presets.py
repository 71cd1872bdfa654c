"""Search presets: `tiny` for CPUs (the default run), and the two sizes the authors released."""
from __future__ import annotations

PRESETS: dict[str, dict] = {
    # Small enough for a 2-core CPU in about a minute on the built-in digits data.
    "tiny": {"channels": 4, "layers": 4, "batch_size": 128, "warmup_epochs": 1,
             "max_stage_epochs": 4, "final_warmup_epochs": 1, "max_final_epochs": 8, "n_thr": 2},
    # 8 cells at C=24 (authors' 0.70M-parameter network) and 14 cells at C=44 (2.29M).
    "darts8_c24": {"channels": 24, "layers": 8, "batch_size": 96, "warmup_epochs": 5,
                   "max_stage_epochs": 30, "final_warmup_epochs": 5, "max_final_epochs": 60, "n_thr": 12},
    "darts14_c44": {"channels": 44, "layers": 14, "batch_size": 96, "warmup_epochs": 5,
                    "max_stage_epochs": 30, "final_warmup_epochs": 5, "max_final_epochs": 60, "n_thr": 12},
}
