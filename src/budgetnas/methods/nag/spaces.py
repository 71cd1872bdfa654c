"""Decision views of the buildable spaces (what the generator and encoders see) and their macro
templates.

- nb201: six edges x five ops; genotype = the NAS-Bench-201 string.
- mbconv: per stage a depth (2, 3, 4), per layer a kernel (3, 5, 7) and an expansion (3, 4, 6),
  as in the OFA MobileNetV3 space of the NAG paper; layers beyond the stage's depth are inactive.
  Stage widths and strides are fixed by the template (`mbconv_template`).
"""
from __future__ import annotations

from typing import Any

from ...errors import UserError
from ...spaces.decisions import Decision, DecisionSpace

MBCONV_DEPTHS = (2, 3, 4)
MBCONV_KERNELS = (3, 5, 7)
MBCONV_EXPANSIONS = (3, 4, 6)
BUILDABLE = ("nb201", "mbconv")


def mbconv_template(*, in_channels: int = 3, num_classes: int = 10, input_size: int = 32) -> tuple[dict, list[int]]:
    """(config, stage widths): three small stages for <=16 px inputs, the five OFA-style stages
    (24, 40, 80, 112, 160) otherwise."""
    from ...spaces.mbconv import CONFIG_DEFAULTS, tiny_config

    if input_size <= 16:
        return tiny_config(in_channels, num_classes, input_size), [16, 24, 32]
    config = {**CONFIG_DEFAULTS, "in_channels": in_channels, "num_classes": num_classes,
              "input_size": input_size, "stem_stride": 1 if input_size <= 64 else 2,
              "strides": [2, 2, 2, 1, 2]}
    return config, [24, 40, 80, 112, 160]


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


def decision_space_for(space: str, *, in_channels: int = 3, num_classes: int = 10,
                       input_size: int = 32) -> tuple[DecisionSpace, dict]:
    """(decision space, macro config) of a buildable space."""
    if space == "nb201":
        from ...spaces.nb201 import decision_space

        return decision_space(), {"in_channels": in_channels, "num_classes": num_classes,
                                  "input_size": input_size}
    if space == "mbconv":
        config, widths = mbconv_template(in_channels=in_channels, num_classes=num_classes,
                                         input_size=input_size)
        return mbconv_decisions(widths), config
    raise UserError(f"space {space!r} has no decision view", where="--space",
                    fix=f"use one of: {', '.join(BUILDABLE)}")
