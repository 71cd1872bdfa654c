"""budgetnas: the most accurate neural network for a budget (parameters, MACs or latency).

The public names below are imported on first use, so that `budgetnas --help` (and anything else
that only needs options or the registry) starts without loading torch.
"""
__version__ = "0.1.0"

_EXPORTS = {"Arch": "arch", "build_model": "arch", "load_arch": "arch", "save_arch": "arch",
            "profile": "cost"}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
