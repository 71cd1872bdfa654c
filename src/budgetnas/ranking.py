"""How well a score ranks architectures against ground truth (e.g. a benchmark table's accuracy).

Convention: a higher score means "predicted better" (negate losses before calling). Every function
takes plain sequences of equal length and is pure (no I/O).

- `kendall_tau`, `spearman_rho`: over all architectures (scipy's tau-b and rho; ties handled).
- `within_bin_tau`: architectures sorted by a size (params) and cut into equal-count bins; the
  mean tau inside the bins says whether a score ranks networks *of about the same size*, where the
  size itself says little. Ties in size are broken by position (stable), so bin edges are exact.
  A bin where the score or the truth is constant has no ranking information: its tau counts as 0.
- `top_precision`: share of the true top fraction found in the score's top fraction.
- `pick_regret`: the best-scored architecture with cost <= budget, its truth, and its regret
  against the best truth under the same budget; with `reach=(k, ...)` also the regret of the best
  truth among the k best-scored ones: the most that re-ranking the top k by a better measure
  (e.g. training each of them) could gain.
- `rank_mean`: several scores as one, the mean of their normalised ranks (scale-free, so a
  log-determinant and a distillation loss can be combined without tuning a weight).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats


def _arrays(*columns: Sequence[float]) -> list[np.ndarray]:
    arrays = [np.asarray(c, dtype=np.float64) for c in columns]
    if len({len(a) for a in arrays}) != 1:
        raise ValueError("all columns need the same length")
    if len(arrays[0]) < 2:
        raise ValueError("need at least two architectures")
    if any(np.isnan(a).any() for a in arrays):
        raise ValueError("NaN in a column")
    return arrays


def _or_zero(value: float) -> float:
    return 0.0 if value is None or math.isnan(value) else float(value)


def kendall_tau(score: Sequence[float], truth: Sequence[float]) -> float:
    s, t = _arrays(score, truth)
    return _or_zero(stats.kendalltau(s, t).statistic)


def spearman_rho(score: Sequence[float], truth: Sequence[float]) -> float:
    s, t = _arrays(score, truth)
    return _or_zero(stats.spearmanr(s, t).statistic)


def size_bins(size: Sequence[float], bins: int) -> list[np.ndarray]:
    """Index arrays of `bins` equal-count groups by increasing size (stable for ties)."""
    (z,) = _arrays(size, size)[:1]
    if not 1 <= bins <= len(z):
        raise ValueError(f"bins must be between 1 and {len(z)}")
    return np.array_split(np.argsort(z, kind="stable"), bins)


def within_bin_tau(score: Sequence[float], truth: Sequence[float], size: Sequence[float],
                   bins: int = 10) -> tuple[float, list[float]]:
    """(mean tau over the bins, tau of every bin)."""
    s, t, _ = _arrays(score, truth, size)
    taus = [kendall_tau(s[idx], t[idx]) if len(idx) > 1 else 0.0 for idx in size_bins(size, bins)]
    return float(np.mean(taus)), taus


def _top(values: np.ndarray, k: int) -> set[int]:
    """Indices of the k largest values; ties broken by lower index."""
    order = np.lexsort((np.arange(len(values)), -values))
    return set(order[:k].tolist())


def top_precision(score: Sequence[float], truth: Sequence[float], fraction: float = 0.05) -> float:
    s, t = _arrays(score, truth)
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    k = max(1, int(math.ceil(fraction * len(s))))
    return len(_top(s, k) & _top(t, k)) / k


def pick_regret(score: Sequence[float], truth: Sequence[float], cost: Sequence[float],
                budget: float, reach: Sequence[int] = ()) -> dict:
    """{"pick", "truth", "best", "best_index", "regret", "feasible"} under `cost <= budget`, and
    "reach": {k: regret of the best truth among the k best-scored} for each k in `reach`;
    ties in score go to the lower cost, then the lower index."""
    s, t, c = _arrays(score, truth, cost)
    feasible = np.flatnonzero(c <= budget)
    if len(feasible) == 0:
        raise ValueError(f"no architecture costs <= {budget}")
    ranked = feasible[np.lexsort((feasible, c[feasible], -s[feasible]))]
    pick = int(ranked[0])
    best = int(feasible[np.argmax(t[feasible])])
    out = {"pick": pick, "truth": float(t[pick]), "best": float(t[best]), "best_index": best,
           "regret": float(t[best] - t[pick]), "feasible": int(len(feasible))}
    if reach:
        out["reach"] = {str(k): float(t[best] - t[ranked[:k]].max()) for k in reach}
    return out


def rank_mean(*scores: Sequence[float]) -> np.ndarray:
    """Mean over the scores of each architecture's rank, scaled to [0, 1] (ties share the mean rank)."""
    arrays = _arrays(*scores)
    ranks = [(stats.rankdata(a) - 1) / (len(a) - 1) for a in arrays]
    return np.mean(ranks, axis=0)


def ranking_report(score: Sequence[float], truth: Sequence[float], size: Sequence[float], *,
                   budgets: Sequence[float], bins: int = 10, top: float = 0.05,
                   reach: Sequence[int] = ()) -> dict:
    """All of the above for one score."""
    mean_bin, per_bin = within_bin_tau(score, truth, size, bins)
    return {"kendall_tau": kendall_tau(score, truth), "spearman_rho": spearman_rho(score, truth),
            "within_bin_tau": mean_bin, "bin_taus": per_bin,
            "top_precision": top_precision(score, truth, top),
            "picks": [{"budget": float(b), **pick_regret(score, truth, size, b, reach)} for b in budgets]}
