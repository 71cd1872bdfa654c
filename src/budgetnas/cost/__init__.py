"""Cost model: parameters (dense and non-zero), MACs and measured latency.

MACs convention: multiply-accumulates of convolutions and matrix products (linear layers,
bmm/addmm), counted by `torch.utils.flop_counter.FlopCounterMode` (which reports 2 FLOPs per MAC)
for one input sample. BatchNorm, activations, pooling and additions are not counted, as in the
DARTS and MobileNet literature. Weight masks do not lower MACs (dense kernels still run).

Modules: `counts` (params, MACs, `profile`), `latency` (measured latency), `lookup` (additive
per-choice cost tables, cached), `latency_table` (tables of sampled architectures for NAG),
`nb201` (exact NB201 params/MACs from per-op costs). The names below load on first use, so that
importing the package (e.g. for the CLI's help) does not load torch.
"""
from __future__ import annotations

_EXPORTS = {"count_params": "counts", "count_nonzero": "counts", "count_macs": "counts",
            "profile": "counts", "AUX_PREFIXES": "counts", "measure_latency": "latency",
            "check_threads": "latency", "onnx_latency": "latency"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
