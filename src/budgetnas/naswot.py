"""NASWOT: a training-free score from the activation patterns of an untrained network
(Mellor et al., "Neural Architecture Search without Training", ICML 2021), written from the
paper's definition.

For a minibatch of N images, every ReLU unit of the network gives a binary code per image
(1 where its input is positive). With c_i the concatenated code of image i over all N_A units,
K_ij = N_A - Hamming(c_i, c_j) = c_i . c_j + (1 - c_i) . (1 - c_j), and the score is log|det K|:
networks whose units separate the images into more distinct linear regions score higher.

K is accumulated ReLU by ReLU inside forward hooks, so the codes are never stored whole
(a full-size NAS-Bench-201 network has about a million units per image). Determinants are
taken in float64.
"""
from __future__ import annotations

import torch
import torch.nn as nn


@torch.no_grad()
def naswot_score(model: nn.Module, x: torch.Tensor) -> float:
    """log|det K| of `model` (kept in train mode, as at initialisation) on the batch `x`."""
    n = x.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64)

    def hook(_module, _inputs, output):
        # with signs s = 2c - 1 in {-1, +1}: c.c' + (1-c).(1-c)' = (units + s.s') / 2 (one product)
        signs = (output.detach().reshape(n, -1) > 0).to(torch.float32) * 2 - 1
        kernel.add_(((signs @ signs.T).double() + signs.shape[1]) / 2)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        model.train()
        model(x)
    finally:
        for h in handles:
            h.remove()
    if not handles:
        return float("-inf")
    _sign, logabsdet = torch.linalg.slogdet(kernel)
    return float(logabsdet)
