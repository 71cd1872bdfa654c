"""Folding a trained network for inference: every BatchNorm that follows a convolution becomes the
convolution's scale and bias (eval-mode BN is an affine map per channel), and weight masks become
plain zeros in dense weights (no mask buffers, no gradient hooks).

Used through each space's `deploy` hook by `budgetnas export` and `budgetnas profile --latency`;
the folded network computes the same logits (up to float rounding) with fewer layers.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from .layers import FactorizedReduce


@torch.no_grad()
def folded_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d | None, channels: slice = slice(None)) -> nn.Conv2d:
    """A copy of `conv` (same class, so its forward stays) with `bn` (the `channels` slice of it)
    folded into its weight and bias; without a BN, only the mask buffer and hooks are dropped."""
    new = copy.copy(conv)
    new._forward_hooks, new._backward_hooks = type(conv._forward_hooks)(), type(conv._backward_hooks)()
    new._parameters = dict(conv._parameters)
    new._buffers = {k: v for k, v in conv._buffers.items() if k != "weight_mask"}
    weight = conv.weight.detach().clone()
    bias = conv.bias.detach().clone() if conv.bias is not None else weight.new_zeros(weight.shape[0])
    if bn is not None:
        mean, var = bn.running_mean[channels], bn.running_var[channels]
        gamma = bn.weight[channels] if bn.weight is not None else torch.ones_like(mean)
        beta = bn.bias[channels] if bn.bias is not None else torch.zeros_like(mean)
        scale = gamma / torch.sqrt(var + bn.eps)
        weight = weight * scale.view(-1, 1, 1, 1)
        bias = (bias - mean) * scale + beta
    new.weight = nn.Parameter(weight, requires_grad=False)
    new.bias = nn.Parameter(bias, requires_grad=False)
    return new


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of `model` in eval mode with every conv -> BN pair of a Sequential folded (the BN
    becomes an Identity), factorized reduces folded per half, and masks made plain weights."""
    model = copy.deepcopy(model).eval()
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            _fold_sequential(module)
        elif isinstance(module, FactorizedReduce):
            half = module.conv_1.weight.shape[0]
            module.conv_1 = folded_conv(module.conv_1, module.bn, slice(0, half))
            module.conv_2 = folded_conv(module.conv_2, module.bn, slice(half, None))
            module.bn = nn.Identity()
    for module in model.modules():  # convs outside a conv -> BN pair: drop masks and hooks only
        if isinstance(module, nn.Conv2d) and hasattr(module, "weight_mask"):
            del module._buffers["weight_mask"]
            module._backward_hooks.clear()
            module.weight = nn.Parameter(module.weight.detach().clone(), requires_grad=False)
    return model


def _fold_sequential(seq: nn.Sequential) -> None:
    names = list(seq._modules)
    for a, b in zip(names, names[1:]):
        conv, bn = seq._modules[a], seq._modules[b]
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and conv.out_channels == bn.num_features:
            seq._modules[a] = folded_conv(conv, bn)
            seq._modules[b] = nn.Identity()
