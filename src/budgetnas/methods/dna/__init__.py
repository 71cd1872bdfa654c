"""DNA: block-wise distillation from a teacher; every candidate of every block is rated and the
best network for a budget is read from one exact Pareto front (docs/dna.md)."""
from . import options  # noqa: F401  (registers the method)
