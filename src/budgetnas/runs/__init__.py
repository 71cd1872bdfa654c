"""What every run shares: the method registry and contract (`registry`, `method`), the run
context (`context`: directory, lock, checkpoints, summary, report) and progress output.

Importing this package stays light (no torch): the CLI reads the registry for `--help`.
"""
from .method import Method, run_method
from .registry import MethodEntry, get_method, method_entries, register_method

__all__ = ["Method", "MethodEntry", "get_method", "method_entries", "register_method", "run_method"]
