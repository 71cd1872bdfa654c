"""DNA: block-wise distillation of a teacher, every candidate rated, exact search under a budget."""
