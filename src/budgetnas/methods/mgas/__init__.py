"""MGAS: multi-granularity architecture search (docs/mgas.md)."""
from . import options  # noqa: F401  (registers the method)
