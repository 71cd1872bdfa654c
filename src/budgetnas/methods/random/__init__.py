"""Random search: random cell networks, width-scaled to the target (a baseline)."""
from . import options  # noqa: F401  (registers the method)
