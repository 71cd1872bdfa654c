"""Search presets: `tiny` for CPUs (the default run), and the two sizes the authors released.

**Decision (tiny):** a 3-cell supernet at C=8 (widths 8, 16, 32 on 8x8 digits; 219,410 params
as exported) searched in a single stage of 4 warm-up and 10 search epochs, weights at lr 0.05 and
filter scores (beta) at lr 10. With 2 warm-up epochs the gates closed on a weakly trained
supernet that kept 5-6 separable convolutions of little use: at equal params the found networks
were 1.3-2.0x slower than DARTS V2 at batch 1; with 4 they keep almost none and run at 1.02-1.14x
(docs/mgas.md §10.7). Measured (docs/mgas.md §10): at C=4 the supernet cannot hold a
DARTS-like network of a few wide ops at any useful target, so the search kept ~50 ops per cell
and was 3-9x slower at batch 1; the stage heads of a 3-stage search on 8x8 digits never learn in
a short search (their CE stays at ln 10), so stages 1-2 prune without information and cost 50 %
more time for the same accuracy; at lr 0.01 the supernet hardly learns in 12 epochs of 9 steps;
at beta lr 1 the filter scores of an op stay within 0.01 of each other, so all its filters
close at once. `n_thr`, `lambda_delta` and `lambda_cap` serve `--lambda-schedule paper`: a larger
first lambda step and no CE cap (digits' CE falls near 0, which would freeze lambda for good).
The large presets keep the published settings.

**Decision (tiny with `--stages 3`: 4 warm-up epochs per stage, as in the final phase; 1 before
2026-12-03):** each stage brings new cells and a new head, random until its warm-up trains them.
After 1 warm-up epoch (digits, 16k, seed 0) stage 2 pruned at 0.15-0.29 held-out accuracy and
stage 3 cut 180k to 50k params at 0.31-0.45; with 4 they pruned at 0.52-0.92 and 0.90-0.93.
3 seeds x 3 retrainings (docs/mgas.md 10.15): with 1, 3 stages retrained 0.96 / 0.43 / 0.19 pp
below 1 stage at 8k / 16k / 32k; with 4, +0.09 / -0.31 / +0.19 pp, at 12-29 % less peak memory
than 1 stage, for about 1.6x the 1-warm-up search time. (The published value is 5.)

**Decision (budget controller, every preset):** with `--lambda-schedule budget` (the default) the
thresholds step without momentum, so that lambda sets how far they move in an epoch (the
controller's model, controller.py), and the filter and weight thresholds learn 5x and 20x slower
than the op thresholds (0.02 and 0.005 against 0.1; published: 0.1 and 0.001). In a short search
the thresholds of all levels move almost in step (CE's push back is small), so these rates set
the balance between the levels: equal rates pruned filters as much as ops and left narrow cells
of ~30 ops each; weight thresholds at 0.02 pruned three quarters of the weights and kept 98 ops.

**Decision (in-epoch brake, every 8 steps; docs/mgas.md 10.12):** the controller checks the gated
size every 8 steps of a search epoch and stops pushing once it is on the plan. Without it, the
first search epoch of the CIFAR-10 supernet crossed the whole cliff of tied scores (413k -> 132k
params against a plan of 373k); at a 150k target that is below the target, the landing
fallback sized the network and the search ended after 2 of its 10 search epochs.
"""
from __future__ import annotations

PRESETS: dict[str, dict] = {
    "tiny": {"channels": 8, "layers": 3, "batch_size": 128, "stages": 1, "warmup_epochs": 4,
             "max_stage_epochs": 4, "final_warmup_epochs": 4, "max_final_epochs": 10,
             "lr_weights": 0.05, "lr_beta": 10.0, "mu": 0.1,
             "n_thr": 4, "lambda_delta": 0.01, "lambda_cap": False},
    # 8 cells at C=24 (authors' 0.70M-parameter network) and 14 cells at C=44 (2.29M).
    "darts8_c24": {"channels": 24, "layers": 8, "batch_size": 96, "warmup_epochs": 5,
                   "max_stage_epochs": 30, "final_warmup_epochs": 5, "max_final_epochs": 60,
                   "n_thr": 12, "lambda_delta": 1e-5},
    "darts14_c44": {"channels": 44, "layers": 14, "batch_size": 96, "warmup_epochs": 5,
                    "max_stage_epochs": 30, "final_warmup_epochs": 5, "max_final_epochs": 60,
                    "n_thr": 12, "lambda_delta": 1e-5},
}

BUDGET: dict = {"threshold_momentum": 0.0, "lr_filter_threshold": 0.02, "lr_weight_threshold": 0.005,
                "brake_every": 8}
