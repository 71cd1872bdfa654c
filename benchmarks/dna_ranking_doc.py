"""Markdown for benchmarks/dna_ranking.py (kept apart so the script stays short)."""
from __future__ import annotations

import numpy as np

GOALS = {"kendall_tau": 0.65, "within_bin_tau": 0.40, "regret": 0.5}
COMBINED = "DNA + NASWOT (rank mean)"  # what `search dna --nb201-zero-cost naswot` ranks by


def _times(record: dict) -> str:
    if "log" not in record and not record["naswot_seconds"]:
        return f"scores read from the saved file, NASWOT included; this run {record['seconds_this_run']:.0f} s"
    if "log" not in record:
        return (f"NASWOT of all cells {record['naswot_seconds'] / 60:.1f} min (cached in WORK/naswot.json); "
                f"this run {record['seconds_this_run']:.0f} s")
    log = record["log"]
    teacher = record["teacher"].get("train_seconds", 0.0)
    blocks = sum(r["seconds"] for r in log if r.get("stage") == "block")
    rating = sum(r.get("seconds", 0.0) for r in record.get("ratings", []))
    feats = sum(r["seconds"] for r in log if r.get("stage") == "teacher-features")
    return (f"teacher training {teacher / 60:.1f} min, block training {blocks / 60:.1f} min, rating "
            f"{rating / 60:.1f} min, teacher features {feats / 60:.1f} min (last run), NASWOT "
            f"{record['naswot_seconds'] / 60:.1f} min")


def _arg(record: dict, flag: str) -> str:
    cmd = record["search"]
    return cmd[cmd.index(flag) + 1]


def _teacher(record: dict) -> str:
    t = record["teacher"]
    return (f"Teacher: NB201 network, cell `{t['genotype']}`, C={t['C']}, {t['cells_per_stage']} cells per "
            f"stage, {t.get('params', 0):,} params, {t.get('epochs', '?')} epochs on the search-training "
            f"split at {_arg(record, '--image-size')} px: held-out (val) accuracy "
            f"{t.get('val_acc', float('nan')):.4f}, test accuracy {t.get('test_acc', float('nan')):.4f}. "
            f"The proxy students have C={_arg(record, '--nb201-channels')}, 1 cell per stage.")


def _metrics_table(record: dict) -> list[str]:
    budgets = record["budgets"]
    head = ("| score | Kendall tau | Spearman rho | mean within-bin tau | top-5 % precision | "
            + " | ".join(f"regret @ {b / 1e3:.0f}k" for b in budgets) + " |")
    lines = [head, "|" + "---|" * (5 + len(budgets))]
    for name, r in record["results"].items():
        regrets = " | ".join(f"{p['regret']:.2f}" for p in r["picks"])
        lines.append(f"| {name} | {r['kendall_tau']:.3f} | {r['spearman_rho']:.3f} | {r['within_bin_tau']:.3f} | "
                     f"{r['top_precision']:.3f} | {regrets} |")
    return lines


def _picks_table(record: dict, cells, dna: str) -> list[str]:
    from budgetnas.methods.dna.nb201.block import string_of_cell

    names = [dna, "params", "NASWOT"] + [n for n in (COMBINED,) if n in record["results"]]
    lines = ["| params budget | table's best | " + " | ".join(names) + " | DNA's cell |",
             "|---|---|" + "---|" * len(names) + "---|"]
    for k, budget in enumerate(record["budgets"]):
        picks = [record["results"][n]["picks"][k] for n in names]
        lines.append(f"| {budget:,.0f} | {picks[0]['best']:.2f} | " + " | ".join(f"{p['truth']:.2f}" for p in picks)
                     + f" | `{string_of_cell(cells[picks[0]['pick']])}` |")
    return lines


def _reach_table(record: dict) -> list[str]:
    """Regret if the best of the k top-rated cells were known: what re-ranking could reach at most."""
    rows = [(n, r) for n, r in record["results"].items() if "reach" in r["picks"][0] and not n.endswith(" only")]
    if not rows:
        return []
    ks = list(rows[0][1]["picks"][0]["reach"])
    lines = ["Regret (points) if the best of the k top-rated cells under each budget were known: the "
             "most that re-ranking the top of a score's list (training each of those cells, say) "
             "could gain.", "",
             "| score | " + " | ".join(f"{b / 1e3:.0f}k: top 1 / " + " / ".join(f"top {k}" for k in ks)
                                       for b in record["budgets"]) + " |",
             "|---|" + "---|" * len(record["budgets"])]
    for name, r in rows:
        cells = [" / ".join([f"{p['regret']:.2f}"] + [f"{p['reach'][k]:.2f}" for k in ks]) for p in r["picks"]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _op_table(record: dict) -> list[str]:
    """Rank gain per op (relative to `none`) of every score beside the table's: which ops it misjudges."""
    from budgetnas.spaces.nb201 import OPS

    if "op_effects" not in record:
        return []
    lines = ["What each score values: the change of a cell's rank percentile for each edge holding the op "
             "instead of `none` (least squares over all cells; the first row is the table's own accuracy).", "",
             "| score | " + " | ".join(f"`{op}`" for op in OPS[1:]) + " |", "|---|" + "---|" * (len(OPS) - 1)]
    lines += [f"| {name} | " + " | ".join(f"{c:+.3f}" for c in coef) + " |"
              for name, coef in record["op_effects"].items()]
    return lines + [""]


def _goals(record: dict, dna: str) -> str:
    r = record["results"][dna]
    worst = max(p["regret"] for p in r["picks"])
    met = lambda ok: "met" if ok else "not met"  # noqa: E731
    return (f"Goals for {dna}: tau >= {GOALS['kendall_tau']} ({r['kendall_tau']:.3f}, "
            f"{met(r['kendall_tau'] >= GOALS['kendall_tau'])}); mean within-bin tau >= {GOALS['within_bin_tau']} "
            f"({r['within_bin_tau']:.3f}, {met(r['within_bin_tau'] >= GOALS['within_bin_tau'])}); regret <= "
            f"{GOALS['regret']} at every budget (worst {worst:.2f}, {met(worst <= GOALS['regret'])}).")


def render(record: dict, acc: np.ndarray, *, cells) -> str:
    ns = record["naswot_scale"]
    dna = next(iter(record["results"]))
    lines = [f"Command: `OMP_NUM_THREADS=1 {record['command']}`  ",
             f"Machine: {record['machine']} (load average at the end {record['load_average'][0]:.1f}); "
             f"date: {record['date']}  "]
    if "search" in record:
        lines += [f"Search: `budgetnas {' '.join(record['search'])}`  ", f"Time: {_times(record)}.", "",
                  _teacher(record)]
    else:
        lines += [f"Time: {_times(record)}.", "",
                  "Scores: per-block ratings saved by earlier runs, summed over the three blocks: "
                  + "; ".join(f"`{r}`" for r in record["saved_ratings"]) + "."]
    lines += [
        "",
        f"Ground truth: the table's `cifar10_test_acc` (200 epochs, full-scale network C=16, 5 cells per "
        f"stage, 32 px) for all {len(acc):,} cells; params of that network. Budgets: the params quantiles "
        "0.1, 0.3, 0.5, 0.7 and 1.0 of all cells. Within-bin tau: 10 equal-count bins by params. "
        f"NASWOT: untrained network with C={ns[0]}, {ns[1]} cell(s) per stage at {ns[2]} px, one batch of "
        f"{ns[3]} training images, same seed for every cell.", "",
        *_metrics_table(record), "",
        "Accuracy (table, %) of each score's pick under each budget:", "",
        *_picks_table(record, cells, dna), "",
        *_reach_table(record), "",
        *_op_table(record),
        *[_goals(record, name) for name in (dna, COMBINED) if name in record["results"]], ""]
    return "\n".join(lines)
