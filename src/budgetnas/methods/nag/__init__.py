"""NAG: one generator, trained once, that returns the Pareto-optimal architecture for any budget
(docs/nag.md). CLI: `budgetnas generate`."""
from . import options  # noqa: F401  (registers the method)
