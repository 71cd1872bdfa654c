"""A network as ONNX bytes, through the exporter torch keeps (`torch.onnx.export(dynamo=True)`):
the graph comes from `torch.export`, the batch dimension stays dynamic. Used by
`budgetnas export` and by ONNX Runtime latency measurements.
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

MIN_OPSET = 18  # the dynamo exporter's own opsets (older ones need a lossy version conversion)
DEFAULT_OPSET = 18
MAX_BATCH = 4096  # the dynamic batch dimension's upper bound


def opset_range() -> tuple[int, int]:
    """Opsets the installed exporter writes."""
    try:
        from torch.onnx import _constants

        return MIN_OPSET, int(_constants.ONNX_MAX_OPSET)
    except (ImportError, AttributeError):  # pragma: no cover - other torch layouts
        return MIN_OPSET, 20


def to_onnx(model: "torch.nn.Module", example: "torch.Tensor", *, opset: int = DEFAULT_OPSET) -> bytes:
    """The model (eval mode, no gradients) as an ONNX file's bytes, input `input`, output `logits`,
    batch dimension dynamic. The exporter's progress chatter is kept off the terminal."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    fd, tmp = tempfile.mkstemp(suffix=".onnx")
    os.close(fd)
    try:
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            torch.onnx.export(model.eval(), (example,), tmp, input_names=["input"], output_names=["logits"],
                              dynamic_shapes=({0: batch},), opset_version=opset, dynamo=True,
                              external_data=False)
        with open(tmp, "rb") as fh:
            return fh.read()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
