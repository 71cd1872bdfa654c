"""NAG: a budget-conditioned architecture generator (Pareto-aware evaluator + LSTM policy)."""
