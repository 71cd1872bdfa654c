"""Options of `budgetnas search dna`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from ...config import TargetOptions
from ...errors import UserError
from ...runs.registry import PlotSpec, ReportSpec, register_method

DEFAULT_OPS = ("e3k3", "e3k5", "e3k7", "e6k3", "e6k5", "e6k7")
MAX_WIDTH = 4096  # sanity limit for typed widths (a mistyped extra digit must not allocate gigabytes)
# Options of the MBConv student that mean nothing in the NAS-Bench-201 space (and vice versa: nb201_*).
MBCONV_ONLY = ("ops", "depths", "widths", "adapters", "se", "stem_stride", "strides", "stem_channels",
               "first_channels", "head_channels", "teacher_stages", "teacher_weights", "latency_runs")
# The NB201 teacher's cell: the largest cell with an identity shortcut (docs/dna.md).
NB201_TEACHER_CELL = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
                      "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")


REPORT = ReportSpec(plots=(
    PlotSpec("over_time", "block-wise distillation loss per block and epoch",
             "block training curves omitted: no log.jsonl (or no numeric rows in it)",
             {"title": "DNA block training", "only": ["loss", "learning rate"], "x_key": "epoch",
              "rows_where": {"stage": "block"}}),
    PlotSpec("front", "merged front of whole networks with the chosen one", "DNA front omitted: no front.json")))


@register_method("dna", method="budgetnas.methods.dna.method:DNAMethod", report=REPORT,
                 help="block-wise distillation: rate every candidate, read the best network for the budget")
class DNAOptions(TargetOptions):
    """Options of `budgetnas search dna`."""

    teacher: str = Field("train", description="torchvision:NAME, a budgetnas run directory "
                         "(arch.json + model.safetensors), 'train' (an MBConv teacher larger than "
                         "every candidate, trained first) or 'none' (self-supervised EMA target)")
    teacher_weights: Path | None = Field(None, description="state dict (.safetensors) for a torchvision teacher")
    teacher_stages: list[str] | None = Field(None, description="teacher modules whose outputs are "
                                             "the block targets (default: mbconv stages.i; "
                                             "EfficientNet features.2..7)")
    teacher_bn: Literal["eval", "train"] = Field("eval", description="teacher BN mode")
    teacher_epochs: int = Field(15, ge=1, description="epochs to train a 'train'/'none' teacher")
    ops: list[str] = Field(list(DEFAULT_OPS), description="candidate ops eEkK (MBConv expansion E, kernel K)")
    depths: str | None = Field(None, description="cell depths per block, e.g. '1,2' (all blocks) or "
                               "'2;3,4;4' (default: 1,2 per block; 2,4,4,4,4,1 for six blocks)")
    widths: str | None = Field(None, description="cell widths per block like --depths (needs --adapters)")
    adapters: bool = Field(False, description="1x1 adapters to the teacher width (cells may have "
                           "their own widths); default: the last layer has the teacher's width")
    se: bool = Field(True, description="squeeze-excitation in every candidate op")
    stem_stride: int | None = Field(None, ge=1, le=2, description="student stem stride (default: teacher's or 2)")
    strides: list[Annotated[int, Field(ge=1, le=2)]] | None = Field(
        None, description="student stage strides, each 1 or 2 (default: teacher's)")
    stem_channels: int | None = Field(None, ge=1, le=MAX_WIDTH, description="student stem width")
    first_channels: int | None = Field(None, ge=1, le=MAX_WIDTH, description="student MB1 layer width")
    head_channels: int | None = Field(None, ge=1, le=MAX_WIDTH, description="student head width")
    epochs: int = Field(10, ge=1, description="training epochs per block")
    batch_size: int = Field(64, ge=1, description="block training batch size")
    lr: float = Field(0.005, gt=0, description="Adam learning rate")
    lr_decay: float = Field(0.9, gt=0, le=1, description="learning-rate factor per epoch")
    weight_decay: float = Field(1e-4, ge=0, description="weight decay (not on 1-D parameters)")
    block: int | None = Field(None, ge=0, description="train and rate only this block (needs --out)")
    recal_batches: int = Field(4, ge=1, description="BN recalibration batches per candidate")
    rate_batch_size: int = Field(128, ge=1, description="batch size for recalibration and rating")
    rate_samples: int | None = Field(None, ge=1, description="rate on at most this many held-out images")
    target_latency_ms: float | None = Field(None, gt=0, description="latency budget in ms (per-layer "
                                            "table measured on --device, batch 1)")
    latency_runs: int = Field(20, ge=1, description="timed runs per layer for the latency table")
    progressive: int = Field(0, ge=0, description="DNA+: rounds where the found network, retrained, "
                             "becomes the next teacher")
    final_epochs: int = Field(5, ge=0, description="retraining epochs for val_acc (and DNA+ teachers); 0 = skip")
    # --space nb201 (methods/dna/nb201/): a block is a stage, a candidate is a cell genotype
    space: Literal["mbconv", "nb201", "nbmacro"] = Field(
        "mbconv", description="search space: MBConv blocks, the NAS-Bench-201 cell space or the "
        "NAS-Bench-Macro space (one block per stage)")
    nb201_channels: int = Field(8, ge=1, le=512, description="nb201: proxy student width C (stages C, 2C, 4C)")
    nb201_cells: int = Field(1, ge=1, le=8, description="nb201: proxy student cells per stage (1 rates "
                             "all 15,625 cells fast and exactly; more rates cell by cell)")
    nb201_teacher_channels: int | None = Field(None, ge=1, le=512, description="nb201: teacher width "
                                               "(default: twice --nb201-channels)")
    nb201_teacher_cells: int | None = Field(None, ge=1, le=8, description="nb201: teacher cells per "
                                            "stage (default: twice --nb201-cells)")
    nb201_teacher_cell: str = Field(NB201_TEACHER_CELL, description="nb201: the teacher's cell")
    nb201_teacher_lr: float = Field(0.1, gt=0, description="nb201: teacher SGD learning rate")
    nb201_sampler: Literal["uniform", "fair"] = Field("uniform", description="nb201: path sampling in "
                                                      "block training (fair: every op once per edge every 5 steps)")
    nb201_target_norm: bool = Field(False, description="nb201: divide teacher targets by their "
                                    "per-channel std (every channel weighs the same)")
    nb201_rating: Literal["lstsq", "adapter", "rel-l1"] = Field(
        "lstsq", description="nb201: block score: held-out MSE with a least-squares adapter fitted per "
        "cell (lstsq), MSE through the trained adapter (adapter), or relative L1 through it (rel-l1, slow)")
    nb201_per_stage: bool = Field(False, description="nb201: allow a different cell in every stage "
                                  "(default: the same cell everywhere, the benchmark's space)")
    nb201_zero_cost: Literal["none", "naswot"] = Field(
        "none", description="nb201: rank cells by the mean of the ranks of DNA's ratings and of a training-free "
        "score (naswot: tau 0.59 -> 0.72 on NAS-Bench-201, docs/bench_dna.md; same-cell search only)")
    nb201_export_channels: int = Field(16, ge=1, le=512, description="nb201: width C of the returned network")
    nb201_export_cells: int = Field(5, ge=1, le=32, description="nb201: cells per stage of the returned network")
    allow_weak_teacher: bool = Field(False, description="keep a teacher whose held-out accuracy is below that "
                                     "of the best network retrained in the run (--final-epochs, DNA+ rounds)")

    # --space nbmacro (methods/dna/nbmacro/): a block is a stage of 2, 3, 3 layers
    nbmacro_channels: int = Field(32, ge=1, le=512, description="nbmacro: stem width of the students and "
                                  "the teacher (stages 2x, 4x, 8x; 32 = the benchmark's widths)")

    def check_space_options(self) -> None:
        """Refuse an option given for the other space (it would be silently ignored)."""
        own = {"mbconv": (), "nb201": ("nb201_",), "nbmacro": ("nbmacro_",)}[self.space]
        foreign = sorted(k for k in self.model_fields_set
                         if (k.startswith(("nb201_", "nbmacro_")) and not k.startswith(own))
                         or (self.space != "mbconv" and k in MBCONV_ONLY))
        if foreign:
            flag = "--" + foreign[0].replace("_", "-")
            raise UserError(f"{flag} does not apply to --space {self.space}", where=flag,
                            fix="remove it, or choose the space it belongs to with --space")
