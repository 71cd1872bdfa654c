"""DNA over the NAS-Bench-Macro space (`search dna --space nbmacro`): block supernets of the three
stages with every candidate rated (`block.py`), the teacher (`teacher.py`) and the run's steps,
ratings.csv of all 6,561 networks and the exact search (`steps.py`)."""
