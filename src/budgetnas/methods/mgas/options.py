"""Options of `budgetnas search mgas`."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ...config import TargetOptions
from ...runs.registry import PlotSpec, ReportSpec, register_method

NO_LOG = "no log.jsonl (or no numeric rows in it)"
REPORT = ReportSpec(plots=(
    PlotSpec("over_time", "MGAS search over time: size against the target (and the controller's "
             "plan), remaining ratio per level, lambda, size removed by each mechanism, accuracy, "
             "memory, loss and regularizers; dotted lines mark stage changes",
             f"search over time omitted: {NO_LOG}",
             {"title": "MGAS search over time", "only": ["size", "remaining ratio per level", "lambda",
                                                         "size removed per epoch, by mechanism",
                                                         "accuracy", "memory (MB)", "loss", "regularizers"]}),
    PlotSpec("per_stage", "MGAS: peak memory and time per stage",
             "memory per stage omitted: the log has no stage and peak_memory_mb fields")))


@register_method("mgas", method="budgetnas.methods.mgas.method:MGASMethod", report=REPORT,
                 help="multi-granularity search (ops, filters, weights) for a target size")
class MGASOptions(TargetOptions):
    preset: Literal["tiny", "darts8_c24", "darts14_c44"] = Field("tiny", description="search preset")
    stages: Literal[1, 3] | None = Field(None, description="3 = multi-stage search, 1 = single stage "
                                                          "(preset: tiny 1, the others 3); 3 needs less "
                                                          "memory, 1 found the better networks on CIFAR-10 "
                                                          "at 150k (docs/mgas.md 10.15)")
    first_stage: Literal["search", "train"] | None = Field(
        None, description="with --stages 3: search = stage 1 prunes its cells (as published); train = "
                          "stage 1 only warms them up and stage 2 prunes them first (CIFAR-10, 150k: "
                          "as accurate as search; docs/mgas.md 10.16)")
    bilevel: bool = Field(False, description="architecture steps on the held-out split")
    channels: int | None = Field(None, ge=2, le=4096, description="initial cell width C (default: the preset's; "
                                "on tiny widened to 8x a params/MACs target, docs/mgas.md 10.13)")
    layers: int | None = Field(None, ge=1, le=64, description="number of cells (overrides preset)")
    lr_weights: float | None = Field(None, gt=0, description="learning rate of the weights (0.01; tiny: 0.05)")
    batch_size: int | None = Field(None, ge=1, description="batch size (overrides preset)")
    warmup_epochs: int | None = Field(None, ge=0, description="warm-up epochs of each stage of a multi-stage "
                                 "search (tiny: 4)")
    max_stage_epochs: int | None = Field(None, ge=1, description="search epochs per stage at most")
    final_warmup_epochs: int | None = Field(None, ge=0, description="warm-up of the final phase")
    max_final_epochs: int | None = Field(None, ge=1, description="search epochs of the final phase at most")
    commit_every: int | None = Field(None, ge=1, description="epochs between mask commits (2)")
    n_thr: int | None = Field(None, ge=1, description="lambda schedule's op-count unit (12)")
    lambda_delta: float | None = Field(None, gt=0, description="lambda schedule's first step")
    lambda_cap: bool | None = Field(None, description="freeze lambda while CE < lambda*R_size")
    lambda_schedule: Literal["budget", "paper"] = Field(
        "budget", description="budget = plan the size to the target and steer lambda to it; "
                              "paper = the published schedule (docs/mgas.md §4)")
    plan: Literal["geometric", "cubic"] | None = Field(
        None, description="shape of the budget controller's size plan: geometric = equal steps in "
                          "log size; cubic = large cuts first, small ones at the end")
    stage_plan: Literal["even", "late", "equal"] | None = Field(
        None, description="with --stages 3, how much each stage cuts of the cells it searches: even = "
                          "equal steps in log size over the phases that search a cell; late = small "
                          "cuts in the stages, most in the final phase (docs/mgas.md 10.17); equal = "
                          "every cell at the same share of its start after each stage, no cell cut "
                          "below it, so the final phase alone splits the target (the default; docs/mgas.md 10.19)")
    brake_every: int | None = Field(None, ge=0, description="budget controller: every this many steps, "
                                    "stop pushing for the rest of the epoch once the gated size is on the "
                                    "plan (0 = never; budget controller default 8; docs/mgas.md 10.12)")
    brake: Literal["stop", "rewind", "hold"] | None = Field(
        None, description="what the in-epoch brake does once the gated size is on the plan: stop = "
                          "lambda 0 for the rest of the epoch; rewind = also put the scores and "
                          "thresholds back where the gated size crossed the plan (between the last "
                          "two checks) and clear the scores' momentum; hold = rewind, then no "
                          "architecture steps for the rest of the epoch (docs/mgas.md 10.18)")
    mu: float | None = Field(None, ge=0, description="weight of the ops' latency cost in R_size "
                                                     "(0 = as published; tiny: 0.1)")
    lr_alpha: float | None = Field(None, gt=0, description="learning rate of alpha (1)")
    lr_beta: float | None = Field(None, gt=0, description="learning rate of beta (1; tiny: 10)")
    lr_threshold: float | None = Field(None, gt=0, description="learning rate of t_op (and t_fil) (0.1)")
    lr_filter_threshold: float | None = Field(None, gt=0, description="learning rate of t_fil "
                                              "(budget: 0.02; paper: as t_op's)")
    lr_weight_threshold: float | None = Field(None, gt=0, description="learning rate of t_w "
                                              "(budget: 0.005; paper: 0.001)")
    threshold_momentum: float | None = Field(None, ge=0, lt=1, description="SGD momentum of the "
                                             "thresholds (budget: 0; paper: 0.9)")
    augment: bool | None = Field(None, description="crop/flip/Cutout during search, as in retraining")
    cutout: int | None = Field(None, ge=0, description="Cutout size during search (default: the dataset's)")
    stage_ratio: float = Field(0.3, gt=0, lt=1, description="end a stage at this share of its size")
    regrow_ratio: float = Field(0.2, ge=0, le=1, description="share of a stage's pruned ops regrown")
    tolerance: float = Field(0.03, gt=0, lt=0.5, description="accepted relative distance to the target")
    target_latency_ms: float | None = Field(None, gt=0, description="latency of the found network at batch 1, "
                                            "from a per-op table measured on --device (cached)")
    latency_threads: int = Field(1, ge=1, le=1024, description="threads the latency target is measured with")
    stop_after: int | None = Field(None, ge=1, description="stop after this many epochs (resumable)")
