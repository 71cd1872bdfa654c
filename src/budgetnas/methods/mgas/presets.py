"""Search presets: `tiny` for CPUs (the default run), and the two sizes the authors released.

**Decision (tiny):** a 3-cell supernet (widths 4, 8, 16 on 8x8 digits) with one warm-up epoch per
stage and a larger first lambda step (`lambda_delta` 0.01 instead of 1e-5, `n_thr` 4 instead of
12), and no CE cap on lambda (digits' training CE falls near 0, which would freeze lambda for
good), so that the schedule of docs/mgas.md §4 prunes within the few epochs a 2-core demo can afford.
The other rules of the schedule are unchanged; the large presets keep the published settings.
"""
from __future__ import annotations

PRESETS: dict[str, dict] = {
    "tiny": {"channels": 4, "layers": 3, "batch_size": 128, "warmup_epochs": 1,
             "max_stage_epochs": 4, "final_warmup_epochs": 1, "max_final_epochs": 6, "n_thr": 4,
             "lambda_delta": 0.01, "lambda_cap": False},
    # 8 cells at C=24 (authors' 0.70M-parameter network) and 14 cells at C=44 (2.29M).
    "darts8_c24": {"channels": 24, "layers": 8, "batch_size": 96, "warmup_epochs": 5,
                   "max_stage_epochs": 30, "final_warmup_epochs": 5, "max_final_epochs": 60,
                   "n_thr": 12, "lambda_delta": 1e-5},
    "darts14_c44": {"channels": 44, "layers": 14, "batch_size": 96, "warmup_epochs": 5,
                    "max_stage_epochs": 30, "final_warmup_epochs": 5, "max_final_epochs": 60,
                    "n_thr": 12, "lambda_delta": 1e-5},
}
