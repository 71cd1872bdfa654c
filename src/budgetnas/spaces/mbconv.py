"""The MobileNet/EfficientNet-style MBConv space (DNA searches it; NAG generates in it).

Config (every field has a default; unknown fields are refused):

    {"in_channels": 3, "num_classes": 10, "input_size": 32, "stem_channels": 32, "stem_stride": 2,
     "first_channels": 16, "head_channels": 1280, "se_ratio": 0.25, "activation": "swish",
     "strides": [2, 2, 2, 1, 2, 1]}

Genotype: one entry per stage (as many stages as strides); a stage has an output width and a
non-empty list of layers; a layer may switch its squeeze-excitation off with "se": false:

    {"stages": [{"channels": 24, "layers": [{"expansion": 6, "kernel": 3}, ...]}, ...]}

Network: stem conv3x3 (stride `stem_stride`) + BN + act; a fixed MB1 layer (depthwise k3 with SE,
`stem_channels` -> `first_channels`); the stages (the first layer of a stage carries its stride);
head conv1x1 -> `head_channels` + BN + act; global average pooling; linear classifier.

MBConv layer: expand 1x1 + BN + act (skipped at expansion 1); depthwise kxk + BN + act; SE whose
squeeze width is `se_ratio` x the layer's input channels; project 1x1 + BN; a residual connection
iff stride 1 and the input and output widths agree. `se_ratio` 0 switches SE off everywhere.

Small inputs: `tiny_config` / `tiny_genotype` give a three-stage network for 8x8 or 32x32 images.

Decision view (what generators and predictors see): per stage a depth (2, 3, 4), per layer a
kernel (3, 5, 7) and an expansion (3, 4, 6), as in the OFA MobileNetV3 space of the NAG paper;
layers beyond the stage's depth are inactive; stage widths and strides come from the template.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ..errors import ArchError, UserError
from ..layers import drop_path
from . import register_space
from .base import Space, config_with_defaults, require_int
from .decisions import Decision, DecisionSpace, parse_indices

CONFIG_DEFAULTS: dict[str, Any] = {
    "in_channels": 3, "num_classes": 10, "input_size": 32, "stem_channels": 32, "stem_stride": 2,
    "first_channels": 16, "head_channels": 1280, "se_ratio": 0.25, "activation": "swish",
    "strides": [2, 2, 2, 1, 2, 1]}
ACTIVATIONS = {"swish": nn.SiLU, "relu": nn.ReLU}
LAYER_KEYS = {"expansion", "kernel", "se"}


def make_activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


class SqueezeExcite(nn.Module):
    """Channel gating: GAP -> 1x1 (squeeze) -> act -> 1x1 -> sigmoid -> scale the input."""

    def __init__(self, channels: int, squeeze: int, activation: str = "swish"):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = make_activation(activation)
        self.expand = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.expand(self.act(self.reduce(self.pool(x)))))


def se_width(c_in: int, se_ratio: float) -> int:
    """Squeeze width: a fraction of the layer's *input* channels (as in EfficientNet)."""
    return max(1, int(c_in * se_ratio))


class MBConv(nn.Module):
    """Inverted residual: [expand 1x1] -> depthwise kxk -> [SE] -> project 1x1 (+ residual)."""

    def __init__(self, c_in: int, c_out: int, *, expansion: int, kernel: int, stride: int = 1,
                 se_ratio: float = 0.25, se: bool = True, activation: str = "swish"):
        super().__init__()
        mid = c_in * expansion
        self.expand = None
        if expansion != 1:
            self.expand = nn.Sequential(nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid),
                                        make_activation(activation))
        self.depthwise = nn.Sequential(
            nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False),
            nn.BatchNorm2d(mid), make_activation(activation))
        self.se = (SqueezeExcite(mid, se_width(c_in, se_ratio), activation)
                   if se and se_ratio > 0 else None)
        self.project = nn.Sequential(nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.residual = stride == 1 and c_in == c_out
        self.drop_path_prob = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand(x) if self.expand is not None else x
        h = self.depthwise(h)
        if self.se is not None:
            h = self.se(h)
        h = self.project(h)
        if self.residual:
            return x + drop_path(h, self.drop_path_prob, self.training)
        return h


def make_stem(cfg: dict) -> nn.Sequential:
    c = cfg["stem_channels"]
    return nn.Sequential(nn.Conv2d(cfg["in_channels"], c, 3, cfg["stem_stride"], 1, bias=False),
                         nn.BatchNorm2d(c), make_activation(cfg["activation"]))


def make_first(cfg: dict) -> MBConv:
    return MBConv(cfg["stem_channels"], cfg["first_channels"], expansion=1, kernel=3,
                  se_ratio=cfg["se_ratio"], activation=cfg["activation"])


def make_head(cfg: dict, c_in: int) -> nn.Sequential:
    c = cfg["head_channels"]
    return nn.Sequential(nn.Conv2d(c_in, c, 1, bias=False), nn.BatchNorm2d(c),
                         make_activation(cfg["activation"]))


def make_layer(cfg: dict, c_in: int, c_out: int, stride: int, layer: dict) -> MBConv:
    return MBConv(c_in, c_out, expansion=layer["expansion"], kernel=layer["kernel"], stride=stride,
                  se_ratio=cfg["se_ratio"], se=layer.get("se", True), activation=cfg["activation"])


class MBConvNetwork(nn.Module):
    """Named parts `stem`, `first`, `stages` (stages.i = stage i), `head`, `pool`, `classifier`,
    so a teacher's stage outputs can be tapped with forward hooks on `stages.i`."""

    def __init__(self, config: dict, genotype: dict):
        super().__init__()
        cfg = {**CONFIG_DEFAULTS, **config}
        self.stem = make_stem(cfg)
        self.first = make_first(cfg)
        c = cfg["first_channels"]
        self.stages = nn.ModuleList()
        for stage, stride in zip(genotype["stages"], cfg["strides"]):
            layers = []
            for j, layer in enumerate(stage["layers"]):
                layers.append(make_layer(cfg, c, stage["channels"], stride if j == 0 else 1, layer))
                c = stage["channels"]
            self.stages.append(nn.Sequential(*layers))
        self.head = make_head(cfg, c)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cfg["head_channels"], cfg["num_classes"])

    def set_drop_path(self, prob: float) -> None:
        for module in self.modules():
            if isinstance(module, MBConv):
                module.drop_path_prob = prob

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


# --- validation --------------------------------------------------------------------------------

def validate_config(config: Any, where: str) -> dict:
    cfg = config_with_defaults(config, CONFIG_DEFAULTS, where)
    for key in ("in_channels", "num_classes", "input_size", "stem_channels", "first_channels",
                "head_channels"):
        require_int(cfg[key], f"{where}: config.{key}")
    if cfg["stem_stride"] not in (1, 2) or isinstance(cfg["stem_stride"], bool):
        raise ArchError(f"must be 1 or 2, got {cfg['stem_stride']!r}", where=f"{where}: config.stem_stride")
    ratio = cfg["se_ratio"]
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
        raise ArchError(f"must be a number in [0, 1], got {ratio!r}", where=f"{where}: config.se_ratio")
    if cfg["activation"] not in ACTIVATIONS:
        raise ArchError(f"unknown activation {cfg['activation']!r}", where=f"{where}: config.activation",
                        fix=f"use one of: {', '.join(ACTIVATIONS)}")
    strides = cfg["strides"]
    if (not isinstance(strides, list) or not strides
            or any(s not in (1, 2) or isinstance(s, bool) for s in strides)):
        raise ArchError(f"must be a non-empty list of 1s and 2s, got {strides!r}",
                        where=f"{where}: config.strides")
    return cfg


def validate_layer(layer: Any, where: str) -> None:
    if not isinstance(layer, dict):
        raise ArchError("a layer is {\"expansion\": E, \"kernel\": K[, \"se\": false]}", where=where)
    unknown = layer.keys() - LAYER_KEYS
    if unknown:
        raise ArchError(f"unknown field(s) {', '.join(sorted(unknown))}", where=where,
                        fix="a layer has expansion, kernel and optionally se")
    require_int(layer.get("expansion"), f"{where}.expansion")
    kernel = require_int(layer.get("kernel"), f"{where}.kernel")
    if kernel % 2 == 0:
        raise ArchError(f"kernel must be odd (same padding), got {kernel}", where=f"{where}.kernel")
    if "se" in layer and not isinstance(layer["se"], bool):
        raise ArchError(f"'se' must be true or false, got {layer['se']!r}", where=f"{where}.se")


def validate_genotype(genotype: Any, cfg: dict, where: str) -> None:
    if not isinstance(genotype, dict) or not isinstance(genotype.get("stages"), list):
        raise ArchError("genotype must be {\"stages\": [...]}", where=f"{where}: genotype")
    if genotype.keys() - {"stages"}:
        raise ArchError(f"unknown field(s) {', '.join(sorted(genotype.keys() - {'stages'}))}",
                        where=f"{where}: genotype")
    stages = genotype["stages"]
    if len(stages) != len(cfg["strides"]):
        raise ArchError(f"{len(stages)} stages but config.strides has {len(cfg['strides'])} entries",
                        where=f"{where}: genotype.stages",
                        fix="give one stage per stride (or change config.strides)")
    for i, stage in enumerate(stages):
        sw = f"{where}: genotype.stages[{i}]"
        if not isinstance(stage, dict) or stage.keys() - {"channels", "layers"}:
            raise ArchError("a stage is {\"channels\": C, \"layers\": [...]}", where=sw)
        require_int(stage.get("channels"), f"{sw}.channels")
        layers = stage.get("layers")
        if not isinstance(layers, list) or not layers:
            raise ArchError("'layers' must be a non-empty list", where=f"{sw}.layers")
        for j, layer in enumerate(layers):
            validate_layer(layer, f"{sw}.layers[{j}]")


class MBConvSpace(Space):
    name = "mbconv"
    CONFIG_DEFAULTS = CONFIG_DEFAULTS

    def check_config(self, config: Any, where: str) -> dict:
        return validate_config(config, where)

    def check_genotype(self, genotype: Any, cfg: dict, where: str) -> None:
        validate_genotype(genotype, cfg, where)

    def network(self, config: dict, genotype: Any) -> nn.Module:
        return MBConvNetwork(config, genotype)

    def template(self, *, in_channels: int, num_classes: int, input_size: int) -> dict:
        return mbconv_template(in_channels=in_channels, num_classes=num_classes, input_size=input_size)[0]

    def decisions(self, config: dict):
        return decisions_for(config)

    def parse_genotype(self, text: str, config: dict) -> Any:
        """A JSON genotype, or choice indices (`2-0-1-...`) in the decision order."""
        if text.startswith("{"):
            return super().parse_genotype(text, config)
        decisions = self.decisions(config)
        return decisions.to_genotype(parse_indices(text, len(decisions), where="--genotype"))

    def draw(self, arch: dict, *, use_dot: bool | None = None):
        from .drawings import mbconv_drawings

        return mbconv_drawings(arch)


def tiny_config(in_channels: int = 1, num_classes: int = 10, input_size: int = 8) -> dict:
    """A small macro setting for 8x8 (digits) or 32x32 (CIFAR) inputs: three stages."""
    return {"in_channels": in_channels, "num_classes": num_classes, "input_size": input_size,
            "stem_channels": 16, "stem_stride": 1, "first_channels": 8, "head_channels": 128,
            "se_ratio": 0.25, "activation": "swish",
            "strides": [1, 2, 2] if input_size <= 16 else [2, 2, 2]}


def tiny_genotype() -> dict:
    """A small teacher-sized genotype matching `tiny_config` (three stages)."""
    return {"stages": [
        {"channels": 16, "layers": [{"expansion": 3, "kernel": 3}]},
        {"channels": 24, "layers": [{"expansion": 6, "kernel": 3}, {"expansion": 3, "kernel": 3}]},
        {"channels": 32, "layers": [{"expansion": 6, "kernel": 3}, {"expansion": 3, "kernel": 5}]}]}


# --- the decision view (generators and predictors) ---------------------------------------------

MBCONV_DEPTHS = (2, 3, 4)
MBCONV_KERNELS = (3, 5, 7)
MBCONV_EXPANSIONS = (3, 4, 6)


def mbconv_template(*, in_channels: int = 3, num_classes: int = 10, input_size: int = 32) -> tuple[dict, list[int]]:
    """(config, stage widths): three small stages for <=16 px inputs, the five OFA-style stages
    (24, 40, 80, 112, 160) otherwise."""
    if input_size <= 16:
        return tiny_config(in_channels, num_classes, input_size), template_widths(input_size)
    config = {**CONFIG_DEFAULTS, "in_channels": in_channels, "num_classes": num_classes,
              "input_size": input_size, "stem_stride": 1 if input_size <= 64 else 2,
              "strides": [2, 2, 2, 1, 2]}
    return config, template_widths(input_size)


def template_widths(input_size: int) -> list[int]:
    return [16, 24, 32] if input_size <= 16 else [24, 40, 80, 112, 160]


def mbconv_decisions(widths: list[int], *, depths: tuple = MBCONV_DEPTHS,
                     kernels: tuple = MBCONV_KERNELS, expansions: tuple = MBCONV_EXPANSIONS) -> DecisionSpace:
    decisions = []
    for s in range(len(widths)):
        decisions.append(Decision(f"depth_{s}", tuple(depths)))
        for layer in range(max(depths)):
            gate = (f"depth_{s}", layer + 1) if layer + 1 > min(depths) else None
            decisions.append(Decision(f"kernel_{s}_{layer}", tuple(kernels), gate))
            decisions.append(Decision(f"expansion_{s}_{layer}", tuple(expansions), gate))

    def to_genotype(values: dict) -> dict:
        return {"stages": [{"channels": widths[s], "layers": [
            {"expansion": values[f"expansion_{s}_{j}"], "kernel": values[f"kernel_{s}_{j}"]}
            for j in range(values[f"depth_{s}"])]} for s in range(len(widths))]}

    def from_genotype(genotype: Any) -> dict:
        stages = genotype.get("stages") if isinstance(genotype, dict) else None
        if not isinstance(stages, list) or len(stages) != len(widths):
            raise UserError(f"expected {len(widths)} stages", where="mbconv genotype")
        values: dict = {}
        for s, stage in enumerate(stages):
            if stage.get("channels") != widths[s]:
                raise UserError(f"stage {s} has {stage.get('channels')} channels; this template "
                                f"uses {widths[s]}", where="mbconv genotype")
            layers = stage.get("layers") or []
            values[f"depth_{s}"] = len(layers)
            for j, layer in enumerate(layers):
                values[f"kernel_{s}_{j}"] = layer.get("kernel")
                values[f"expansion_{s}_{j}"] = layer.get("expansion")
        return values

    return DecisionSpace(decisions, name="mbconv", to_genotype=to_genotype, from_genotype=from_genotype)




def decisions_for(config: dict) -> DecisionSpace:
    """The decision view for a template config (its input size fixes the stage widths)."""
    return mbconv_decisions(template_widths(config["input_size"]))


register_space(MBConvSpace())
