"""The NAS-Bench-Macro space (Su et al., CVPR 2021: "Prioritized Architecture Sampling with
Monte-Carlo Tree Search"): 8 searchable layers, 3 choices each, 3^8 = 6,561 networks.

Genotype: the benchmark's 8-character string over {0, 1, 2}, left = input side, e.g. "01201122".
`0` = identity (a true no-op where a layer keeps shape; at the first layer of a stage a 1x1
stride-2 projection to twice the width + BN), `1` = MobileNetV2 inverted residual with
expansion 3 and a 3x3 depthwise kernel, `2` = expansion 6, kernel 5 (hidden width = expansion x
the layer's input width; residual only at stride 1 with equal widths).

Network: stem conv3x3 (-> 32) + BN + ReLU; three stages of 2, 3 and 3 layers, each starting with a
stride-2 layer that doubles the width (32 -> 64 -> 128 -> 256); head conv1x1 (-> 1280) + BN +
ReLU, global average pooling, linear classifier. Plain ReLU, no SE, no dropout, no conv bias, BN
with PyTorch defaults. Params (all parameters: BN affine and the classifier bias included) and
MACs (convs and the linear layer, one image) equal the benchmark's own counts for every string
(tests check all 6,561 against the closed form).

Config: in_channels [3], num_classes [10], input_size [32], stem_channels [32],
head_channels [1280]. Strings that differ only in where a stage's non-first zeros sit describe
the same network; `canonical` puts those zeros at the end of their stage (the benchmark trained
only canonical strings).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ..errors import ArchError
from ..layers import StridedPointwise
from . import register_space
from .base import Space
from .decisions import Decision, DecisionSpace

STAGES = (2, 3, 3)  # searchable layers per stage
LAYERS = sum(STAGES)
CHOICES = ("0", "1", "2")
MBCONV = {"1": (3, 3), "2": (6, 5)}  # choice -> (expansion, kernel)
CONFIG_DEFAULTS: dict[str, Any] = {"in_channels": 3, "num_classes": 10, "input_size": 32,
                                   "stem_channels": 32, "head_channels": 1280}


def layer_plan(stem_channels: int = 32) -> list[tuple[int, int, int]]:
    """(input width, output width, stride) of each searchable layer."""
    plan, c = [], stem_channels
    for layers in STAGES:
        for j in range(layers):
            plan.append((c, 2 * c if j == 0 else c, 2 if j == 0 else 1))
            c = 2 * c if j == 0 else c
    return plan


def parse_genotype(text: Any, *, where: str = "genotype") -> str:
    if not isinstance(text, str) or len(text) != LAYERS or any(ch not in CHOICES for ch in text):
        raise ArchError(f"must be an {LAYERS}-character string of 0, 1 and 2, got {text!r}", where=where,
                        fix="e.g. 01201122 (layer 1 first)")
    return text


def canonical(text: str) -> str:
    """The benchmark's canonical form: per stage, the first layer as it is, then the non-zero
    choices in order, then the zeros (a non-first zero is a no-op wherever it sits)."""
    out, start = [], 0
    for layers in STAGES:
        stage = text[start:start + layers]
        rest = [ch for ch in stage[1:] if ch != "0"]
        out.append(stage[0] + "".join(rest) + "0" * (layers - 1 - len(rest)))
        start += layers
    return "".join(out)


class InvertedResidual(nn.Module):
    """1x1 expand + BN + ReLU, kxk depthwise (stride s) + BN + ReLU, 1x1 project + BN (+ input)."""

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int, kernel: int):
        super().__init__()
        hidden = expansion * c_in
        self.body = nn.Sequential(
            nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


def make_layer(choice: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    if choice == "0":
        if stride == 1 and c_in == c_out:
            return nn.Identity()
        return nn.Sequential(StridedPointwise(c_in, c_out, stride), nn.BatchNorm2d(c_out))
    expansion, kernel = MBCONV[choice]
    return InvertedResidual(c_in, c_out, stride, expansion, kernel)


class NBMacroNetwork(nn.Module):
    def __init__(self, config: dict, genotype: str):
        super().__init__()
        cfg = {**CONFIG_DEFAULTS, **config}
        c = cfg["stem_channels"]
        self.stem = nn.Sequential(nn.Conv2d(cfg["in_channels"], c, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*(make_layer(ch, c_in, c_out, s)
                                      for ch, (c_in, c_out, s) in zip(genotype, layer_plan(c))))
        last = layer_plan(c)[-1][1]
        self.head = nn.Sequential(nn.Conv2d(last, cfg["head_channels"], 1, bias=False),
                                  nn.BatchNorm2d(cfg["head_channels"]), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cfg["head_channels"], cfg["num_classes"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.head(self.layers(self.stem(x)))).flatten(1))


def decision_space() -> DecisionSpace:
    """Eight decisions (one per layer, named 'layer_1'..'layer_8'), three choices each."""
    names = [f"layer_{i + 1}" for i in range(LAYERS)]
    return DecisionSpace([Decision(n, CHOICES) for n in names], name="nbmacro",
                         to_genotype=lambda v: "".join(v[n] for n in names),
                         from_genotype=lambda g: dict(zip(names, parse_genotype(g))))


class NBMacroSpace(Space):
    name = "nbmacro"
    CONFIG_DEFAULTS = CONFIG_DEFAULTS
    INT_SETTINGS = tuple(CONFIG_DEFAULTS)
    MIN_INPUT_SIZE = 8

    def check_genotype(self, genotype: Any, cfg: dict, where: str) -> None:
        parse_genotype(genotype, where=f"{where}: genotype")

    def network(self, config: dict, genotype: Any) -> nn.Module:
        return NBMacroNetwork(config, genotype)

    def decisions(self, config: dict) -> DecisionSpace:
        return decision_space()

    def parse_genotype(self, text: str, config: dict) -> str:
        return parse_genotype(text, where="--genotype")


register_space(NBMacroSpace())
