"""First-order DARTS, then width scaling to the target (a baseline)."""
from . import options  # noqa: F401  (registers the method)
