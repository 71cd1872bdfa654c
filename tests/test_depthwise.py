"""The fast depthwise backward gives autograd's gradients for every case the searches use."""
import pytest
import torch
import torch.nn.functional as F

from budgetnas.depthwise import depthwise_conv2d


def _grads(conv, x, w, g):
    x = x.detach().requires_grad_()
    w = w.detach().requires_grad_()
    return conv(x, w), *torch.autograd.grad(conv(x, w), (x, w), g)


@pytest.mark.parametrize("kernel,dilation,stride,size", [
    (3, 1, 1, 8), (5, 1, 1, 8),          # sep_conv, normal cells
    (3, 2, 1, 8), (5, 2, 1, 8),          # dil_conv, normal cells (polyphase path for 3x3)
    (3, 2, 1, 7), (5, 2, 1, 5),          # odd sizes: the library's weight gradient
    (3, 1, 2, 8), (5, 1, 2, 7),          # sep_conv in reduction cells
    (3, 2, 2, 8), (5, 2, 2, 7), (3, 2, 2, 1),  # dil_conv in reduction cells (even sub-image)
])
@pytest.mark.parametrize("channels_last", [False, True])
def test_gradients_match_autograd(kernel, dilation, stride, size, channels_last):
    torch.manual_seed(kernel * 100 + dilation * 10 + stride + size)
    x = torch.randn(3, 5, size, size, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(5, 1, kernel, kernel, dtype=torch.float64)
    pad = dilation * (kernel - 1) // 2
    reference = lambda a, b: F.conv2d(a, b, None, stride, pad, dilation, 5)  # noqa: E731
    fast = lambda a, b: depthwise_conv2d(a, b, stride, pad, dilation)  # noqa: E731
    g = torch.randn_like(reference(x, w))
    out_ref, gx_ref, gw_ref = _grads(reference, x, w, g)
    out, gx, gw = _grads(fast, x, w, g)
    torch.testing.assert_close(out, out_ref)
    torch.testing.assert_close(gx, gx_ref)
    torch.testing.assert_close(gw, gw_ref)
    assert gx.shape == x.shape and gw.shape == w.shape


def test_weight_only_and_input_only_gradients():
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    w = torch.randn(4, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    (gw,) = torch.autograd.grad(depthwise_conv2d(x, w, 1, 2, 2).sum(), (w,))
    (gw_ref,) = torch.autograd.grad(F.conv2d(x, w, None, 1, 2, 2, 4).sum(), (w,))
    torch.testing.assert_close(gw, gw_ref)
    xg = x.clone().requires_grad_()
    (gx,) = torch.autograd.grad(depthwise_conv2d(xg, w.detach(), 2, 2, 2).sum(), (xg,))
    (gx_ref,) = torch.autograd.grad(F.conv2d(xg, w.detach(), None, 2, 2, 2, 4).sum(), (xg,))
    torch.testing.assert_close(gx, gx_ref)


def test_gradcheck_through_the_custom_backward():
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: depthwise_conv2d(a, b, 1, 2, 2), (x, w))


def test_without_gradients_it_is_the_plain_conv():
    x, w = torch.randn(1, 3, 5, 5), torch.randn(3, 1, 3, 3)
    with torch.no_grad():
        out = depthwise_conv2d(x, w, 1, 1, 1)
    assert out.grad_fn is None
    torch.testing.assert_close(out, F.conv2d(x, w, None, 1, 1, 1, 3))
