"""Depthwise convolution with a faster backward pass on CPUs.

The searches spend most of a step in the backward pass of depthwise convs (sep_conv, dil_conv).
On CPUs, the library backward of a dilated or 5x5 depthwise conv is many times slower than the
forward, while a forward depthwise conv is fast. The same gradients can be had from fast
kernels, exactly (up to float summation order):

- input gradient, stride 1 and 'same' padding: the forward conv of the output gradient with the
  kernel flipped in both spatial axes;
- input gradient, stride 2, dilation 2: only the even rows and columns of the input are read
  (the padding d*(k-1)/2 is even), so it is the flipped-kernel conv written into those pixels;
- weight gradient, dilation d > 1: a dilated conv reads each of the d*d polyphase sub-images of
  the input separately, so it is the undilated conv of the sub-images stacked along the batch
  (stride 1, 3x3 kernels, whose undilated weight gradient has a fast kernel; sizes divisible by
  d) or of the even sub-image alone (stride 2, dilation 2: the library's strided dilated weight
  gradient is the slowest of all).

Everything else falls back to the library's own backward. `depthwise_conv2d` only takes this
path where it pays (CPU tensors that need gradients); elsewhere it is plain `F.conv2d`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_conv_backward = torch.ops.aten.convolution_backward


def _library_grads(g, x, w, stride, padding, dilation, need_x, need_w):
    return _conv_backward(g, x, w, None, [stride] * 2, [padding] * 2, [dilation] * 2, False, [0, 0],
                          w.shape[0], [need_x, need_w, False])[:2]


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last)


def _polyphase(t: torch.Tensor, d: int) -> torch.Tensor:
    """(N, C, H, W) -> (N*d*d, C, H/d, W/d): the d*d sub-images t[..., a::d, b::d] along the batch,
    in channels_last order."""
    n, c, h, w = t.shape
    t = t.permute(0, 2, 3, 1).reshape(n, h // d, d, w // d, d, c).permute(0, 2, 4, 1, 3, 5)
    return t.reshape(n * d * d, h // d, w // d, c).permute(0, 3, 1, 2)


def grad_input(g, x, w, stride: int, padding: int, dilation: int) -> torch.Tensor:
    k = w.shape[-1]
    same = padding == dilation * (k - 1) // 2 and k % 2 == 1 and w.shape[-2] == k
    flipped = w.flip(-2, -1)
    if same and stride == 1:
        return F.conv2d(g, flipped, None, 1, padding, dilation, w.shape[0])
    if same and stride == 2 and dilation == 2:
        sub = F.conv2d(g, flipped, None, 1, (k - 1) // 2, 1, w.shape[0])
        out = torch.zeros_like(x)
        out[:, :, ::2, ::2] = sub
        return out
    return _library_grads(g, x, w, stride, padding, dilation, True, False)[0]


def grad_weight(g, x, w, stride: int, padding: int, dilation: int) -> torch.Tensor:
    k = w.shape[-1]
    same = padding == dilation * (k - 1) // 2 and k % 2 == 1 and w.shape[-2] == k
    h, wd = x.shape[-2:]
    if same and k == 3 and dilation > 1 and stride == 1 and h % dilation == 0 and wd % dilation == 0:
        xs, gs = _polyphase(x, dilation), _polyphase(g, dilation)
        return _library_grads(gs, xs, w, 1, (k - 1) // 2, 1, False, True)[1]
    if same and dilation == 2 and stride == 2:
        xs = _channels_last(x[:, :, ::2, ::2])
        return _library_grads(_channels_last(g), xs, w, 1, (k - 1) // 2, 1, False, True)[1]
    return _library_grads(g, x, w, stride, padding, dilation, False, True)[1]


class _DepthwiseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, stride: int, padding: int, dilation: int):
        ctx.save_for_backward(x, w)
        ctx.conf = (stride, padding, dilation)
        return F.conv2d(x, w, None, stride, padding, dilation, w.shape[0])

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        g = g.contiguous(memory_format=torch.channels_last) \
            if x.is_contiguous(memory_format=torch.channels_last) else g.contiguous()
        gx = grad_input(g, x, w, *ctx.conf) if ctx.needs_input_grad[0] else None
        gw = grad_weight(g, x, w, *ctx.conf) if ctx.needs_input_grad[1] else None
        return gx, gw, None, None, None


def depthwise_conv2d(x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> torch.Tensor:
    """`F.conv2d(x, w, None, stride, padding, dilation, groups=channels)` with the fast backward
    above when it applies (CPU, gradients needed, not being traced or compiled)."""
    if (x.device.type == "cpu" and torch.is_grad_enabled() and (x.requires_grad or w.requires_grad)
            and not torch.jit.is_scripting() and not torch.jit.is_tracing()
            and not torch.compiler.is_compiling()):
        return _DepthwiseConv.apply(x, w, stride, padding, dilation)
    return F.conv2d(x, w, None, stride, padding, dilation, w.shape[0])
