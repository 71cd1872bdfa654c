"""Retraining an architecture from scratch (the DARTS/MGAS recipe, all configurable)."""
