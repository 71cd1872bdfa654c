"""Hard gates with a straight-through estimator (docs/mgas.md §3).

forward  step(u) = 1[u > 0]
backward g(u) = 2 - 4|u| for |u| <= 0.4, 0.4 for 0.4 < |u| <= 1, else 0

`score_gate` and `gated_weight` are fused autograd functions: each is one node in the graph
instead of the five or six elementwise ops it stands for (the search runs hundreds of gates per
step, so Python and autograd overhead matter), and they compute exactly the gradient that
autograd would give for the unfused formula with the STE in place of the step's derivative.
"""
from __future__ import annotations

import torch


def surrogate(u: torch.Tensor) -> torch.Tensor:
    """The STE's stand-in derivative of the step: (|u| <= 1) * max(2 - 4|u|, 0.4)."""
    a = u.abs()
    return torch.rsub(a, 2.0, alpha=4.0).clamp_min_(0.4).mul_(a <= 1.0)


class _StepSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(u)
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (u,) = ctx.saved_tensors
        return grad * surrogate(u)


def step(u: torch.Tensor) -> torch.Tensor:
    """1[u > 0] forward, `surrogate(u)` backward."""
    return _StepSTE.apply(u)


class _ScoreGate(torch.autograd.Function):
    """gate = alive * sigmoid(score) * step(sigmoid(score) - threshold)."""

    @staticmethod
    def forward(ctx, score, threshold, alive):
        s = torch.sigmoid(score)
        u = s - threshold
        open_ = (u > 0).to(s.dtype) * alive
        ctx.save_for_backward(s, u, open_, alive)
        ctx.threshold_shape = threshold.shape
        return s * open_

    @staticmethod
    def backward(ctx, grad):
        s, u, open_, alive = ctx.saved_tensors
        g = surrogate(u) * alive
        # d gate / d s = step + s * g(u);  d gate / d t = -s * g(u)
        d_s = grad * (open_ + s * g)
        d_score = d_s * s * (1 - s)
        d_t = -(grad * s * g)
        d_t = _reduce_to(d_t, ctx.threshold_shape)
        return d_score, d_t, None


class _GatedWeight(torch.autograd.Function):
    """W * mask * step(|W| - t): the committed mask and the dynamic magnitude gate together.

    Units outside the mask get u = -2, where both the step and its surrogate are 0, so the mask
    costs one `where` and nothing in the backward pass."""

    @staticmethod
    def forward(ctx, weight, threshold, mask):
        u = torch.where(mask, weight.abs() - threshold, -2.0)
        keep = u > 0
        ctx.save_for_backward(weight, u, keep)
        ctx.threshold_shape = threshold.shape
        return torch.where(keep, weight, 0.0)

    @staticmethod
    def backward(ctx, grad):
        weight, u, keep = ctx.saved_tensors
        # d out / d W = step + W * g(u) * sign(W);  d out / d t = -W * g(u)   (inside the mask)
        wg = grad * weight * surrogate(u)
        d_w = torch.where(keep, grad, 0.0).addcmul_(wg, weight.sign())
        d_t = _reduce_to(-wg, ctx.threshold_shape)
        return d_w, d_t, None


def _reduce_to(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return grad.sum().reshape(shape) if len(shape) == 0 or grad.shape != shape else grad


def score_gate(score: torch.Tensor, threshold: torch.Tensor,
               alive: torch.Tensor | None = None) -> torch.Tensor:
    """sigmoid(score) * step(sigmoid(score) - threshold) [* alive]: the op and filter gates.

    `threshold` is a scalar or has the score's shape; `alive` (bool) zeroes committed-dead units."""
    alive_f = (torch.ones_like(score) if alive is None else alive.to(score.dtype))
    return _ScoreGate.apply(score, threshold, alive_f)


def gated_weight(weight: torch.Tensor, threshold: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """W * mask * step(|W| - threshold): the weight level (scalar threshold, bool mask)."""
    return _GatedWeight.apply(weight, threshold, mask)


def magnitude_mask(weight: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """step(|W| - t_w) (unfused; the reference the fused gate is tested against)."""
    return step(weight.abs() - threshold)
