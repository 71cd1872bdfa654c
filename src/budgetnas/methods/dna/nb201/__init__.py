"""DNA over the NAS-Bench-201 cell space (`search dna --space nb201`): block supernets of the
three stages (`block.py`), their training and the rating of all 15,625 cells (`blockwise.py`,
`rating.py`, `moments.py`, `linear.py`), the NB201 teacher (`teacher.py`), the exact search
(`search.py`) and the run's steps (`steps.py`)."""
