"""Baselines for comparisons with MGAS in the same framework: first-order DARTS and random cell
networks, both scaled to a target size by choosing the cell width."""
