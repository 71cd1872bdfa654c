"""BatchNorm statistics that fit the network being evaluated.

A network whose structure changed since its BatchNorm statistics were gathered (a search that has
just removed ops, a subnet taken out of a supernet) is judged with statistics of another network;
its held-out accuracy can then sit at chance although the network is good. `recalibrated_bn`
replaces the statistics by their plain average over a fixed set of inputs for the duration of a
`with` block and puts everything back afterwards, so the caller's training is untouched.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

import torch
import torch.nn as nn


def batchnorms(model: nn.Module) -> list[nn.Module]:
    """Every module that keeps running statistics with an update momentum (nn.BatchNorm*, and
    BatchNorm-like modules that expose `running_mean`, `running_var` and `momentum`)."""
    return [m for m in model.modules() if isinstance(getattr(m, "running_mean", None), torch.Tensor)
            and isinstance(getattr(m, "running_var", None), torch.Tensor) and hasattr(m, "momentum")]


@contextmanager
def recalibrated_bn(model: nn.Module, forward: Callable[[torch.Tensor], object],
                    inputs: Iterable[torch.Tensor]) -> Iterator[nn.Module]:
    """Inside the block, every BatchNorm of `model` holds the mean over `inputs` of its batch
    statistics (`forward(x)` run in training mode without gradients; batch k updates with momentum
    1/(k+1), which is the cumulative average) and the model is in eval mode. On exit the running
    statistics, the batch counts, the momenta and the training flag are restored exactly."""
    bns = batchnorms(model)
    saved = [(bn.running_mean.clone(), bn.running_var.clone(), bn.momentum, _count(bn)) for bn in bns]
    was_training = model.training
    try:
        for bn in bns:
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0)
        model.train()
        with torch.no_grad():
            for k, x in enumerate(inputs):
                for bn in bns:
                    bn.momentum = 1.0 / (k + 1)
                forward(x)
        model.eval()
        yield model
    finally:
        for bn, (mean, var, momentum, count) in zip(bns, saved):
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.momentum = momentum
            if count is not None:
                bn.num_batches_tracked.copy_(count)
        model.train(was_training)


def _count(bn: nn.Module) -> torch.Tensor | None:
    tracked = getattr(bn, "num_batches_tracked", None)
    return tracked.clone() if isinstance(tracked, torch.Tensor) else None
