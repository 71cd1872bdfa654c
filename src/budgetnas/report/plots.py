"""Plots for the report, drawn with matplotlib's object API on the Agg canvas and returned as PNG
bytes (no pyplot global state, no display needed).

Every function returns None when its data is missing or too thin to plot, so the page can say
which section was left out instead of showing an empty chart.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

from ..drawing import new_figure, to_png
from .rundir import Run, number

UNITS = {"params": "non-zero parameters", "macs": "MACs", "latency": "latency (ms)"}
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
          "#7f7f7f", "#bcbd22"]


def pareto_front(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both cost (lower) and accuracy (higher), by cost."""
    front: list[tuple[float, float]] = []
    for cost, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or acc > front[-1][1]:
            front.append((cost, acc))
    return front


def cost_metric(runs: Sequence[Run]) -> str:
    """The cost axis: the unit the runs were targeted at (most common), else parameters."""
    counts: dict[str, int] = {}
    for run in runs:
        for key in run.target:
            metric = "latency" if key.startswith("latency") else key
            if metric in UNITS:
                counts[metric] = counts.get(metric, 0) + 1
    return max(counts, key=counts.get) if counts else "params"


def _step(ax, front: list[tuple[float, float]], **kwargs) -> None:
    if len(front) >= 1:
        xs = [p[0] for p in front]
        ys = [p[1] for p in front]
        ax.step(xs, ys, where="post", **kwargs)


def accuracy_cost_plot(runs: Sequence[Run], metric: str) -> bytes | None:
    """Accuracy against cost: one marker per run (baselines hollow), extra candidate points a run
    left (random search samples, baselines.json), the Pareto front over all of them and, where a
    run carries it, the true front (NAS-Bench-201)."""
    fig = new_figure(7.5, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    all_points: list[tuple[float, float]] = []
    plotted = 0
    for i, run in enumerate(runs):
        color = COLORS[i % len(COLORS)]
        for label, pts in extra_points(run, metric):
            if pts:
                ax.scatter([p[0] for p in pts], [100 * p[1] for p in pts], s=12, alpha=0.35,
                           color=color, label=f"{run.display}: {label}")
                all_points.extend(pts)
        true = true_front(run, metric)
        if true:
            _step(ax, [(c, 100 * a) for c, a in true], color="black", linestyle=":", linewidth=1.2,
                  label=f"true front ({run.display})")
        cost = run.cost(metric)
        acc, split = run.accuracy()
        if cost is None or acc is None:
            continue
        marker = "s" if run.kind == "train" else ("D" if run.is_baseline else "o")
        ax.scatter([cost], [100 * acc], s=70, marker=marker, color=color if not run.is_baseline else "none",
                   edgecolors=color, linewidths=1.8, zorder=5, label=f"{run.display} ({run.method}, {split})")
        all_points.append((cost, acc))
        plotted += 1
        for key, budget in run.target.items():
            if (key if not key.startswith("latency") else "latency") == metric:
                ax.axvline(float(budget), color=color, linestyle="--", linewidth=0.8, alpha=0.6)
    if not all_points:
        return None
    front = pareto_front(all_points)
    if len(front) > 1 or plotted > 1:
        _step(ax, [(c, 100 * a) for c, a in front], color="#444444", linewidth=1.0, alpha=0.8,
              label="Pareto front")
    ax.set_xlabel(UNITS.get(metric, metric) + ("  (dashed: target)" if any(r.target for r in runs) else ""))
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Accuracy against cost")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return to_png(fig)


def extra_points(run: Run, metric: str) -> list[tuple[str, list[tuple[float, float]]]]:
    """Other (cost, accuracy) points a run left: sampled candidates of a random search (log rows
    with both numbers) and a baselines.json list."""
    groups = []
    if run.spec and run.spec.sampled_points:
        pts = [p for p in (_point(row, metric) for row in run.log) if p]
        groups.append(("sampled", pts))
    baselines = run.files.get("baselines.json")
    if isinstance(baselines, dict):
        baselines = baselines.get("points") or baselines.get("baselines")
    if isinstance(baselines, list):
        groups.append(("baselines", [p for p in (_point(b, metric) for b in baselines
                                                   if isinstance(b, dict)) if p]))
    return groups


ACC_KEYS = ("val_acc", "test_acc", "acc", "accuracy")
COST_KEYS = {"params": ("params_nonzero", "params", "cost"), "macs": ("macs", "cost"),
             "latency": ("latency_ms", "latency", "cost")}


def _point(row: dict, metric: str) -> tuple[float, float] | None:
    cost = next((number(row.get(k)) for k in COST_KEYS.get(metric, (metric,)) if number(row.get(k)) is not None), None)
    acc = next((number(row.get(k)) for k in ACC_KEYS if number(row.get(k)) is not None), None)
    if cost is None or acc is None:
        return None
    return cost, acc / 100 if acc > 1 else acc


def true_front(run: Run, metric: str) -> list[tuple[float, float]]:
    """The known optimum (e.g. NAS-Bench-201) if the run left one: true_front.json points."""
    data = run.files.get("true_front.json")
    if isinstance(data, dict):
        data = data.get("points")
    if not isinstance(data, list):
        return []
    pts = [p for p in (_point(d, metric) for d in data if isinstance(d, dict)) if p]
    return pareto_front(pts)


# --- over time --------------------------------------------------------------------------------

PANELS = [  # (title, predicate on a flattened key); a key goes to the first panel that claims it
    ("loss", lambda k: "loss" in k or k == "ce"),
    ("regularizers", lambda k: k in ("r_size", "r_thr") or k.startswith("reg")),
    ("size removed per epoch, by mechanism", lambda k: k.startswith("pruned.") and k.endswith(".size")),
    ("units removed per epoch", lambda k: k.startswith("pruned.")),
    ("size", lambda k: k in ("target", "planned", "gated") or bool(re.search(r"(^|[._])(size|params\w*|macs|nonzero|ops_kept|ops)$", k))),
    ("remaining ratio per level", lambda k: bool(re.search(r"(^|[._])\w*ratios?($|[._])", k)) or "remaining" in k),
    ("reward", lambda k: "reward" in k),
    ("lambda", lambda k: k in ("lambda", "lam") or k.startswith("lambda") or k.endswith(".lambda")),
    ("accuracy", lambda k: "acc" in k),
    ("memory (MB)", lambda k: "memory" in k or k.endswith("_mb")),
    ("learning rate", lambda k: k == "lr" or k.endswith("_lr") or k.endswith(".lr")),
    ("time (s)", lambda k: k in ("seconds", "elapsed", "time") or k.endswith("seconds")),
]
SKIP_KEYS = {"epoch", "global_epoch", "step", "iteration", "iter", "sample", "round", "block", "stage", "seed",
             "candidates", "cell", "index"}


def flatten(row: dict, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a log row, nested keys joined with '.' (e.g. ratios.op)."""
    out: dict[str, float] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif number(value) is not None:
            out[name] = number(value)
    return out


def x_axis(rows: list[dict]) -> tuple[list[float], str]:
    """global_epoch, epoch, iteration or step if logged and only growing; else the row number."""
    for key in ("global_epoch", "epoch", "iteration", "step"):
        values = [number(r.get(key)) for r in rows]
        if all(v is not None for v in values) and all(b > a for a, b in zip(values, values[1:])):
            return values, key.replace("_", " ")
    return [float(i + 1) for i in range(len(rows))], "log row"


def over_time_plot(rows: list[dict], title: str, *, only: Sequence[str] | None = None,
                   x_key: str | None = None) -> bytes | None:
    """One panel per kind of quantity in a log (size, ratios, lambda, accuracy, loss, memory...),
    a line per key (split by block where rows carry one), stage changes as vertical lines."""
    rows = [r for r in rows if isinstance(r, dict)]
    if not rows:
        return None
    if x_key is not None:
        rows = [r for r in rows if number(r.get(x_key)) is not None]
        if not rows:
            return None
        xs, xlabel = [number(r[x_key]) for r in rows], x_key.replace("_", " ")
    else:
        xs, xlabel = x_axis(rows)
    flat = [flatten(r) for r in rows]
    keys = [k for k in dict.fromkeys(k for f in flat for k in f) if k.split(".")[-1] not in SKIP_KEYS]
    panels: dict[str, list[str]] = {}
    for key in keys:
        for name, claims in PANELS:
            if claims(key.lower()):
                panels.setdefault(name, []).append(key)
                break
    if only is not None:
        panels = {name: panels[name] for name in only if name in panels}
    panels = {n: ks for n, ks in panels.items() if sum(1 for f in flat for k in ks if k in f) >= 1}
    if not panels:
        return None
    cols = 2 if len(panels) > 1 else 1
    nrows = (len(panels) + cols - 1) // cols
    fig = new_figure(5.2 * cols, 2.7 * nrows + 0.4)
    groups = [r.get("block") if number(r.get("block")) is not None else None for r in rows]
    changes = _stage_changes(rows, xs) if x_key is None else []
    if len(changes) > 12:  # alternating stages (e.g. train/rate per block): lines would be noise
        changes = []
    for i, (name, panel_keys) in enumerate(panels.items()):
        ax = fig.add_subplot(nrows, cols, i + 1)
        for j, key in enumerate(panel_keys[:10]):
            for group in dict.fromkeys(groups):
                pts = [(x, f[key]) for x, f, g in zip(xs, flat, groups) if key in f and g == group]
                if not pts:
                    continue
                label = key if group is None else f"{key} (block {group})"
                style = "o-" if len(pts) < 30 else "-"
                if key == "target":  # the budget, as a reference line
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], "k--", linewidth=1, label=label)
                    continue
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, markersize=3, linewidth=1.3,
                        label=label)
        for x, stage in changes:
            ax.axvline(x - 0.5, color="#999999", linestyle=":", linewidth=0.9)
            if i == 0:
                ax.annotate(str(stage), (x - 0.5, 1.0), xycoords=("data", "axes fraction"), fontsize=7,
                            rotation=90, va="top", ha="right", color="#666666")
        if name == "size" and _wide_range(ax):
            ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6, loc="best")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return to_png(fig)


def _stage_changes(rows: list[dict], xs: list[float]) -> list[tuple[float, Any]]:
    """(x, new stage) wherever the logged stage differs from the row before."""
    out = []
    for prev, row, x in zip(rows, rows[1:], xs[1:]):
        if row.get("stage") is not None and row.get("stage") != prev.get("stage"):
            out.append((x, row["stage"]))
    return out


def _wide_range(ax) -> bool:
    lows, highs = [], []
    for line in ax.get_lines():
        ys = [y for y in line.get_ydata() if y > 0]
        if ys:
            lows.append(min(ys))
            highs.append(max(ys))
    return bool(lows) and max(highs) / min(lows) > 50


def per_stage_plot(rows: list[dict]) -> bytes | None:
    """Peak memory and time per search stage (memory falls as pruned filters are removed)."""
    stages: dict[str, dict[str, float]] = {}
    for row in rows:
        stage = row.get("stage")
        if stage is None:
            continue
        entry = stages.setdefault(str(stage), {"memory": 0.0, "seconds": 0.0, "epochs": 0})
        memory, seconds = number(row.get("peak_memory_mb")), number(row.get("seconds"))
        entry["memory"] = max(entry["memory"], memory or 0.0)
        entry["seconds"] += seconds or 0.0
        entry["epochs"] += 1
    if not stages or not any(e["memory"] for e in stages.values()):
        return None
    fig = new_figure(7.5, 3.0)
    names = list(stages)
    ax = fig.add_subplot(1, 2, 1)
    ax.bar(names, [stages[n]["memory"] for n in names], color="#9467bd")
    ax.set_title("peak memory per stage (MB)", fontsize=10)
    ax.tick_params(labelsize=8)
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.bar(names, [stages[n]["seconds"] for n in names], color="#8c564b")
    for i, n in enumerate(names):
        ax2.annotate(f"{int(stages[n]['epochs'])} ep", (i, stages[n]["seconds"]), ha="center", va="bottom", fontsize=7)
    ax2.set_title("time per stage (s)", fontsize=10)
    ax2.tick_params(labelsize=8)
    fig.tight_layout()
    return to_png(fig)


# --- method-specific ------------------------------------------------------------------------------

def dna_front_plot(front: dict) -> bytes | None:
    """DNA's merged front of whole networks (cost against summed block score, lower is better)
    with the chosen network and the target."""
    points = [(number(p.get("cost")), number(p.get("score"))) for p in front.get("points", [])
              if isinstance(p, dict)]
    points = [(c, s) for c, s in points if c is not None and s is not None]
    if not points:
        return None
    fig = new_figure(7.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    points.sort()
    ax.step([p[0] for p in points], [p[1] for p in points], where="post", color="#1f77b4", linewidth=1)
    ax.scatter([p[0] for p in points], [p[1] for p in points], s=18, color="#1f77b4",
               label=f"merged front ({len(points)} networks)")
    chosen = front.get("chosen")
    raw = front.get("points", [])
    if isinstance(chosen, int) and 0 <= chosen < len(raw) and isinstance(raw[chosen], dict):
        c, s = number(raw[chosen].get("cost")), number(raw[chosen].get("score"))
        if c is not None and s is not None:
            ax.scatter([c], [s], s=160, marker="*", color="#d62728", zorder=5, label="chosen")
    target = number(front.get("target"))
    if target is not None:
        ax.axvline(target, color="#d62728", linestyle="--", linewidth=0.9, label="target")
    unit = front.get("unit") or front.get("metric") or "cost"
    ax.set_xlabel(str(unit))
    ax.set_ylabel("summed block score (lower is better)")
    ax.set_title("DNA: merged Pareto front of whole networks")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return to_png(fig)


def nag_picks(run: Run) -> list[dict]:
    """NAG's picks, one per budget: from picks.json ({"picks": [...]} or a list) or summary.json."""
    for source in (run.files.get("picks.json"), run.summary):
        if isinstance(source, dict):
            source = source.get("picks") or source.get("results")
        if isinstance(source, list):
            picks = [p for p in source if isinstance(p, dict) and number(p.get("budget")) is not None]
            if picks:
                return picks
    return []


def pick_value(pick: dict, keys: Sequence[str]) -> float | None:
    return next((number(pick.get(k)) for k in keys if number(pick.get(k)) is not None), None)


def nag_picks_plot(picks: list[dict], *, unit: str = "cost", true: list[tuple[float, float]] = ()) -> bytes | None:
    """Left: each budget against the measured (and predicted) cost of its pick, with the
    cost = budget line (points below it are within budget). Right: the pick's accuracy per
    budget with the best feasible accuracy of the true front where known."""
    rows = [(number(p.get("budget")), pick_value(p, ("measured_cost", "cost", "latency_ms", "params", "macs")),
             pick_value(p, ("predicted_cost",)), pick_value(p, ACC_KEYS + ("predicted_acc",)))
            for p in picks]
    rows = sorted(r for r in rows if r[0] is not None)
    if not rows:
        return None
    fig = new_figure(10.5, 4.0)
    ax = fig.add_subplot(1, 2, 1)
    budgets = [r[0] for r in rows]
    lo, hi = min(budgets), max(budgets)
    ax.plot([lo, hi], [lo, hi], color="#999999", linestyle="--", linewidth=1, label="cost = budget")
    measured = [(b, c) for b, c, _, _ in rows if c is not None]
    if measured:
        ax.scatter(*zip(*measured), color="#1f77b4", s=30, label="measured cost of the pick", zorder=5)
        over = [(b, c) for b, c in measured if c > b * 1.0000001]
        if over:
            ax.scatter(*zip(*over), facecolors="none", edgecolors="#d62728", s=90, linewidths=1.5,
                       label="over budget", zorder=6)
    predicted = [(b, c) for b, _, c, _ in rows if c is not None]
    if predicted:
        ax.scatter(*zip(*predicted), marker="x", color="#ff7f0e", s=30, label="predicted cost")
    ax.set_xlabel(f"budget ({unit})")
    ax.set_ylabel(f"cost of the pick ({unit})")
    ax.set_title("NAG: picks against the budgets")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax2 = fig.add_subplot(1, 2, 2)
    accs = [(b, 100 * (a / 100 if a > 1 else a)) for b, _, _, a in rows if a is not None]
    if accs:
        ax2.plot(*zip(*accs), "o-", color="#2ca02c", label="pick")
    if true:
        ax2.step([c for c, _ in true], [100 * a for _, a in true], where="post", color="black",
                 linestyle=":", label="true front (best feasible)")
        ax2.set_xlim(lo - 0.1 * (hi - lo + 1e-9), hi + 0.1 * (hi - lo + 1e-9))
    ax2.set_xlabel(f"budget ({unit})")
    ax2.set_ylabel("accuracy (%)")
    ax2.set_title("accuracy of the pick per budget")
    ax2.grid(True, alpha=0.3)
    if accs or true:
        ax2.legend(fontsize=7)
    fig.tight_layout()
    return to_png(fig)
