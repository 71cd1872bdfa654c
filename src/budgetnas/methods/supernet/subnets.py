"""Subnets of the elastic supernet as plain networks: conversion from genotypes and decision rows,
extraction with inherited weights, BatchNorm recalibration and held-out evaluation.

    net, meta = load_supernet(run_dir)
    model = extract(net, genotype)                 # an MBConvNetwork with the supernet's weights
    calibrate_bn(model, calibration_batches(dataset, meta["calibration"]))
    acc = evaluate(model, dataset, dataset.val, device)

Running the supernet with `set_active(subnet)` and running the extracted network compute the
same function (tests/test_supernet.py checks the logits after the same recalibration).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ...data import Dataset
from ...errors import UserError
from ...spaces.mbconv import MBConvNetwork
from .elastic import Choices, ElasticNetwork, Subnet

CALIBRATION_SEED = 20240601  # fixed: every subnet is recalibrated on the same images


# ---------------------------------------------------------------- genotypes and subnets
def subnet_of(genotype: Any, net: ElasticNetwork, *, where: str = "genotype") -> Subnet:
    """The supernet's view of an `mbconv` genotype; refuses a network that is not part of it."""
    c = net.choices
    stages = genotype.get("stages") if isinstance(genotype, dict) else None
    if not isinstance(stages, list) or len(stages) != len(net.widths):
        raise UserError(f"expected {len(net.widths)} stages", where=where,
                        fix="give an architecture of the supernet's space (e.g. a pick of generate --supernet)")
    out = []
    for s, stage in enumerate(stages):
        layers = stage.get("layers") or []
        if stage.get("channels") != net.widths[s] or len(layers) not in c.depths:
            raise UserError(f"stage {s}: {stage.get('channels')} channels, {len(layers)} layers; the supernet "
                            f"has {net.widths[s]} channels and depths {list(c.depths)}", where=where)
        for j, layer in enumerate(layers):
            if layer.get("kernel") not in c.kernels or layer.get("expansion") not in c.expansions \
                    or layer.get("se", True) is not True:
                raise UserError(f"stage {s} layer {j} ({layer}) is not in the supernet (kernels "
                                f"{list(c.kernels)}, expansions {list(c.expansions)}, SE on)", where=where)
        out.append(tuple((int(l["kernel"]), int(l["expansion"])) for l in layers))
    return tuple(out)


def genotype_of(subnet: Subnet, widths: list[int]) -> dict:
    return {"stages": [{"channels": w, "layers": [{"expansion": e, "kernel": k} for k, e in layers]}
                       for w, layers in zip(widths, subnet)]}


def random_subnet(rng: np.random.Generator, widths: list[int], choices: Choices) -> Subnet:
    """A uniformly random subnet (depth per stage, then kernel and expansion per layer)."""
    out = []
    for _ in widths:
        depth = int(rng.choice(choices.depths))
        out.append(tuple((int(rng.choice(choices.kernels)), int(rng.choice(choices.expansions)))
                         for _ in range(depth)))
    return tuple(out)


# ---------------------------------------------------------------- extraction
@torch.no_grad()
def extract(net: ElasticNetwork, genotype: dict) -> MBConvNetwork:
    """A plain `MBConvNetwork` of `genotype` holding the supernet's weights for it: leading slices
    of every tensor (the most important channels first) and, for depthwise kernels, the
    transformed centre the supernet itself uses. BN statistics are copied as they are (call
    `calibrate_bn` for the subnet's own)."""
    subnet_of(genotype, net)
    model = MBConvNetwork(net.config, genotype)
    source = net.state_dict()
    state = {}
    for key, target in model.state_dict().items():
        parts = key.split(".")
        if parts[0] == "stages" and parts[3:] == ["depthwise", "0", "weight"]:
            layer = net.stages[int(parts[1])][int(parts[2])]
            value = layer.kernel(target.shape[-1], target.shape[0])
        else:
            value = source[key][tuple(slice(0, n) for n in target.shape)]
        state[key] = value.detach().clone().to(target.dtype)
    model.load_state_dict(state)
    return model.to(next(net.parameters()).device)


# ---------------------------------------------------------------- BatchNorm recalibration
def calibration_batches(dataset: Dataset, images: int, batch_size: int = 256,
                        device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """A fixed sample of the training split (the same for every subnet and run), normalized,
    without augmentation, in batches."""
    n = min(images, len(dataset.train))
    order = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(CALIBRATION_SEED))[:n]
    idx = order.sort().values
    x = dataset.normalize(dataset.train.x[idx])
    return [x[i:i + batch_size].to(device) for i in range(0, n, batch_size)]


@torch.no_grad()
def calibrate_bn(model: nn.Module, batches: list[torch.Tensor]) -> nn.Module:
    """Replace every BatchNorm's running statistics by their average over `batches` (a forward
    pass in training mode with cumulative averaging); the model is left in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    try:
        for x in batches:
            model(x)
    finally:
        for bn, momentum in zip(bns, saved):
            bn.momentum = momentum
        model.eval()
    return model
