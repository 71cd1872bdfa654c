"""Options of `budgetnas search supernet` (the elastic MBConv supernet NAG's --supernet reads)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ...config import SearchOptions
from ...runs.registry import PlotSpec, ReportSpec, register_method

REPORT = ReportSpec(plots=(
    PlotSpec("over_time", "supernet training: losses of the largest and smallest subnets, held-out "
             "accuracy of the largest (its running statistics) and the smallest (recalibrated)",
             "training curves omitted: no log.jsonl (or no numeric rows in it)",
             {"title": "Supernet training"}),))


@register_method("supernet", method="budgetnas.methods.supernet.method:SupernetMethod", report=REPORT,
                 help="train an elastic (once-for-all) supernet over a space; "
                      "budgetnas generate --supernet then picks networks with their weights")
class SupernetOptions(SearchOptions):
    """Options of `budgetnas search supernet`."""

    space: Literal["mbconv"] = Field("mbconv", description="the space (depth, kernel, expansion per stage)")
    epochs: int = Field(40, ge=1, le=100000, description="training epochs")
    batch_size: int = Field(64, ge=2, description="batch size (per process under torchrun)")
    lr: float = Field(0.05, gt=0, le=10, description="initial learning rate (SGD-Nesterov, cosine)")
    weight_decay: float = Field(5e-5, ge=0, le=1, description="weight decay (not on BatchNorm, biases, "
                                "kernel transforms)")
    random_subnets: int = Field(2, ge=0, le=64, description="random subnets per step besides the largest "
                                "and the smallest (sandwich rule)")
    distill: bool = Field(True, description="in-place distillation: smaller subnets learn the largest's "
                          "predictions (else the labels)")
    progressive: bool = Field(False, description="progressive shrinking: largest only, then elastic kernel, "
                              "+ depth, + expansion (a quarter of the epochs each); on a CIFAR-10 subset its "
                              "subnets were 4 points better and ranked closer to retrained accuracy "
                              "(docs/bench_nag.md)")
    sort_every: int = Field(1, ge=0, description="epochs between sorting middle channels by importance "
                            "(0 = never)")
    augment: bool = Field(True, description="random crop (and flip where labels allow)")
    calibration_images: int = Field(2000, ge=16, description="training images BatchNorm statistics are "
                                    "recalibrated on (a fixed sample)")
    stop_after: int | None = Field(None, ge=1, description="stop after this many epochs (resumable)")
