"""What every space has in common: config checks, building with weight masks, and the hooks
through which the rest of budgetnas asks a space what it knows (so `train/`, `report/` and the
methods never test a space's name).
"""
from __future__ import annotations

import json
from typing import Any

import torch.nn as nn

from ..errors import ArchError, UserError


class Space:
    """A search space: subclasses set `name` and `CONFIG_DEFAULTS` and fill in the hooks."""

    name: str = ""
    CONFIG_DEFAULTS: dict[str, Any] = {}
    INT_SETTINGS: tuple[str, ...] = ()  # config keys that must be integers >= 1
    MIN_INPUT_SIZE = 1  # the smallest image the network's reductions leave at least a pixel of

    # ---------------------------------------------------------------- the architecture file
    def validate(self, config: dict, genotype: Any, *, where: str) -> None:
        """Raise `ArchError` naming the field on any inconsistency."""
        self.check_genotype(genotype, self.check_config(config, where), where)

    def check_config(self, config: Any, where: str) -> dict:
        """The config with defaults filled in; unknown settings refused; integer settings and
        the input size checked."""
        cfg = config_with_defaults(config, self.CONFIG_DEFAULTS, where)
        for key in self.INT_SETTINGS:
            require_int(cfg[key], f"{where}: config.{key}")
        if "input_size" in self.INT_SETTINGS and cfg["input_size"] < self.MIN_INPUT_SIZE:
            raise ArchError(f"input_size must be >= {self.MIN_INPUT_SIZE} for this network's reductions",
                            where=f"{where}: config.input_size")
        return cfg

    def check_genotype(self, genotype: Any, cfg: dict, where: str) -> None:
        raise NotImplementedError

    def network(self, config: dict, genotype: Any) -> nn.Module:
        """A plain module for a validated config and genotype."""
        raise NotImplementedError

    def build(self, arch, masks: dict | None = None) -> nn.Module:
        """A plain module for the architecture, its weight masks applied."""
        from .masks import apply_weight_masks

        model = self.network(arch.config, arch.genotype)
        masks = arch.masks if masks is None else masks
        if masks:
            apply_weight_masks(model, masks, where=str(arch.path or "arch") + ": masks")
        return model

    # ---------------------------------------------------------------- what others ask a space
    def auxiliary_config(self) -> dict:
        """Config overrides that add an auxiliary head for training ({} = the space has none)."""
        return {}

    def template(self, *, in_channels: int, num_classes: int, input_size: int) -> dict:
        """The macro config of this space's default network for a dataset's shape."""
        return {"in_channels": in_channels, "num_classes": num_classes, "input_size": input_size}

    def decisions(self, config: dict):
        """The space as categorical decisions (`spaces.decisions.DecisionSpace`), for generators
        and predictors."""
        raise UserError(f"space {self.name!r} has no decision view", where="--space",
                        fix="use nb201 or mbconv")

    def parse_genotype(self, text: str, config: dict) -> Any:
        """A genotype written on the command line (`profile --genotype`): JSON by default."""
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"not valid JSON ({exc})", where="--genotype",
                            fix="quote the genotype JSON in single quotes") from None

    def deploy(self, model: nn.Module) -> nn.Module:
        """The network for inference (export, latency): the same function in fewer layers. By
        default BatchNorms are folded into the convolutions before them."""
        from ..folding import fold_batchnorm

        return fold_batchnorm(model)

    def draw(self, arch: dict, *, use_dot: bool | None = None) -> tuple[list[tuple[str, bytes]], list[str]]:
        """Drawings of an arch.json object: (caption, PNG) pairs and notes."""
        return [], [f"no drawing for space {self.name!r}"]


def config_with_defaults(config: Any, defaults: dict, where: str) -> dict:
    if not isinstance(config, dict):
        raise ArchError("'config' must be an object", where=f"{where}: config")
    unknown = config.keys() - defaults.keys()
    if unknown:
        raise ArchError(f"unknown setting(s) {', '.join(sorted(unknown))}", where=f"{where}: config",
                        fix=f"allowed: {', '.join(defaults)}")
    return {**defaults, **config}


def require_int(value: Any, where: str, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ArchError(f"must be an integer >= {minimum}, got {value!r}", where=where)
    return value


def require_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ArchError(f"must be true or false, got {value!r}", where=where)
    return value
