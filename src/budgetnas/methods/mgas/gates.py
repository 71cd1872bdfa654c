"""Hard gates with a straight-through estimator (mgas.md §3).

forward  step(u) = 1[u > 0]
backward g(u) = 2 - 4|u| for |u| <= 0.4, 0.4 for 0.4 < |u| <= 1, else 0
"""
from __future__ import annotations

import torch


class _StepSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(u)
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (u,) = ctx.saved_tensors
        return grad * surrogate(u)


def surrogate(u: torch.Tensor) -> torch.Tensor:
    """The STE's stand-in derivative of the step."""
    a = u.abs()
    return torch.where(a <= 0.4, 2 - 4 * a, torch.where(a <= 1.0, torch.full_like(a, 0.4),
                                                         torch.zeros_like(a)))


def step(u: torch.Tensor) -> torch.Tensor:
    return _StepSTE.apply(u)


def score_gate(score: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """sigmoid(score) * step(sigmoid(score) - threshold): the op and filter gates."""
    s = torch.sigmoid(score)
    return s * step(s - threshold)


def magnitude_mask(weight: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """step(|W| - t_w): the weight gate (applied as W * mask)."""
    return step(weight.abs() - threshold)
