"""The HTML page: one self-contained file (inline CSS, PNGs as data URIs, no scripts, no network).

Every value read from a run directory is escaped; a section whose data is missing is replaced by
a one-line note saying what was left out and why.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from typing import Any, Callable, Sequence

from .. import __version__
from . import drawings, plots
from ..runs.registry import PlotSpec
from .rundir import Run, number

CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;
 color:#222;background:#fff;line-height:1.4;padding:0 16px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;border-bottom:2px solid #e5e5e5;padding-bottom:4px;margin-top:32px}
h3{font-size:16px;margin:20px 0 8px}.meta{color:#666;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ddd;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f4f6f8;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:8px 0;display:inline-block;vertical-align:top;border:1px solid #eee;padding:6px;background:#fff}
figure img{max-width:100%;height:auto;display:block}figcaption{font-size:12px;color:#555;margin-top:4px}
.grid{display:flex;flex-wrap:wrap;gap:10px}.grid figure{flex:1 1 480px;max-width:100%}
.note{color:#8a6d3b;background:#fcf8e3;border:1px solid #faebcc;padding:4px 8px;font-size:13px;margin:6px 0}
pre{background:#f6f8fa;border:1px solid #e5e5e5;padding:8px;font-size:12px;overflow-x:auto;white-space:pre-wrap}
section.run{margin-top:24px}.top{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.top .wide{flex:1 1 560px}.tag{display:inline-block;background:#eef3fb;color:#1f4e8c;border-radius:3px;
 padding:1px 6px;font-size:12px;margin-left:6px}
"""

def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """Numbers for people: thousands separators for integers, 4 significant digits otherwise."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value).lower()
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        text = json.dumps(value)
        return text if len(text) <= 160 else text[:157] + "..."
    return str(value)


def image(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def table(rows: list[tuple[str, list[str]]], header: list[str] | None = None) -> str:
    """rows of (label, already-escaped cells)."""
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
    for label, cells in rows:
        out.append(f"<tr><th>{esc(label)}</th>" + "".join(
            f'<td class="num">{c}</td>' if _numeric(c) else f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _numeric(cell: str) -> bool:
    return bool(cell) and cell.replace(",", "").replace(".", "").replace(" %", "").replace("-", "").isdigit()


# --- summary ----------------------------------------------------------------------------------

def target_text(run: Run) -> str:
    if not run.target:
        return "-"
    return ", ".join(f"{k} {fmt(v)}" for k, v in run.target.items())


def accuracy_text(run: Run) -> str:
    acc, split = run.accuracy()
    return "-" if acc is None else f"{100 * acc:.2f} % ({split})"


def seconds_text(run: Run) -> str:
    info = run.info
    for key in ("search_seconds", "train_seconds", "seconds"):
        value = number(info.get(key))
        if value is not None:
            what = {"search_seconds": "search", "train_seconds": "training"}.get(key, "")
            return f"{value:,.1f} s" + (f" ({what})" if what else "")
    return "-"


def latency_text(run: Run) -> str | None:
    value = run.cost("latency")
    return None if value is None else f"{value:.3g} ms"


def pruned_by_text(run: Run) -> str | None:
    """Who made the size reduction (MGAS: learned gates, landing step, fallback), when logged."""
    shares = run.info.get("pruned_by")
    if not isinstance(shares, dict):
        return None
    names = {"gates": "gates", "land": "landing", "force": "fallback"}
    parts = [f"{names.get(k, k)} {100 * v:.1f} %" for k, v in shares.items()
             if number(v) is not None and k != "regrown"]
    if number(shares.get("regrown")):
        parts.append(f"(regrown {100 * shares['regrown']:.1f} %)")
    return ", ".join(parts)


def summary_table(runs: Sequence[Run], labels: list[str]) -> str:
    def field(key: str) -> Callable[[Run], str]:
        return lambda run: esc(fmt(run.info.get(key))) if key in run.info else "-"

    rows: list[tuple[str, Callable[[Run], str]]] = [
        ("method", lambda r: esc(r.method)),
        ("dataset", lambda r: esc(r.info.get("dataset") or (r.arch or {}).get("provenance", {}).get("dataset", "-"))),
        ("target", lambda r: esc(target_text(r))),
        ("params (dense)", field("params_dense")),
        ("params (non-zero)", field("params_nonzero")),
        ("MACs", field("macs")),
        ("latency", lambda r: esc(latency_text(r) or "-")),
        ("accuracy", lambda r: esc(accuracy_text(r))),
        ("pruned by", lambda r: esc(pruned_by_text(r) or "-")),
        ("search / training time", lambda r: esc(seconds_text(r))),
        ("peak memory (MB)", field("peak_memory_mb")),
        ("seed", field("seed")),
        ("budgetnas version", field("version")),
    ]
    if not any(latency_text(r) for r in runs):
        rows = [row for row in rows if row[0] != "latency"]
    if not any(pruned_by_text(r) for r in runs):
        rows = [row for row in rows if row[0] != "pruned by"]
    return table([(label, [fn(run) for run in runs]) for label, fn in rows], ["", *labels])


SHOWN = {"method", "dataset", "target", "params_dense", "params_nonzero", "macs", "val_acc", "test_acc",
         "search_seconds", "train_seconds", "peak_memory_mb", "seed", "version", "recipe", "rank_checksums",
         "rank_arch_checksums", "options", "pruned_by"}


def details_table(run: Run) -> str:
    """Every other field of summary.json / metrics.json (the whole story for unknown methods)."""
    rows = [(key, [esc(fmt(value))]) for key, value in run.info.items() if key not in SHOWN]
    return table(rows) if rows else ""


# --- per run sections -------------------------------------------------------------------------

def run_plots(run: Run) -> tuple[list[tuple[str, bytes]], list[str]]:
    """The plots the run's method asks for (its registry entry); notes for the ones that could
    not be drawn. Training runs and unknown methods get their log over time."""
    images, notes = [], []
    if run.method == "train":
        specs = [PlotSpec("over_time", "training curves: loss, accuracy, learning rate, time and peak "
                          "memory per epoch", f"training curves omitted: {NO_LOG}", {"title": "Training curves"})]
    else:
        specs = list(run.spec.plots if run.spec else ()) or [
            PlotSpec("over_time", "log.jsonl over time", f"plots over time omitted: {NO_LOG}",
                     {"title": f"{run.method}: log over time"})]
    for spec in specs:
        png = PLOTS[spec.kind](run, **spec.options)
        if png:
            images.append((spec.caption, png))
        else:
            notes.append(spec.missing)
    return images, notes


def _over_time(run: Run, *, title: str, rows_where: dict | None = None, **options) -> bytes | None:
    rows = [r for r in run.log if all(r.get(k) == v for k, v in (rows_where or {}).items())]
    return plots.over_time_plot(rows, title, **options)


def _picks(run: Run) -> bytes | None:
    picks = plots.nag_picks(run)
    unit = str(run.info.get("unit") or run.info.get("metric") or plots.cost_metric([run]))
    return plots.nag_picks_plot(picks, unit=unit, true=plots.true_front(run, _metric_of(unit))) if picks else None


NO_LOG = "no log.jsonl (or no numeric rows in it)"
PLOTS = {"over_time": _over_time, "per_stage": lambda run: plots.per_stage_plot(run.log),
         "front": lambda run: plots.dna_front_plot(run.front) if run.front else None, "picks": _picks}


def _metric_of(unit: str) -> str:
    unit = unit.lower()
    return "latency" if ("ms" in unit or "latency" in unit) else ("macs" if "mac" in unit else "params")


def arch_section(run: Run, use_dot: bool | None) -> str:
    if run.arch is None:
        return note("architecture drawings omitted: no arch.json")
    images, notes = drawings.draw_arch(run.arch, use_dot=use_dot)
    parts = [f"<p>space <b>{esc(run.arch.get('space'))}</b>"]
    front = run.front
    if front and isinstance(front.get("chosen"), int) and 0 <= front["chosen"] < len(front["points"]):
        chosen = front["points"][front["chosen"]]
        if isinstance(chosen, dict) and chosen.get("compact"):
            parts.append(f" · <code>{esc(chosen['compact'])}</code>")
    parts.append("</p>")
    parts.extend(note(n) for n in notes)
    if images:
        parts.append('<div class="grid">' + "".join(image(png, cap) for cap, png in images) + "</div>")
    return "".join(parts)


def provenance_section(run: Run) -> str:
    parts = []
    info = run.run_info
    if info:
        parts.append(f"<p>command</p><pre>{esc(info.get('command', '-'))}</pre>")
        if isinstance(info.get("options"), dict):
            parts.append("<p>resolved options</p><pre>" + esc(json.dumps(info["options"], indent=1)) + "</pre>")
    else:
        parts.append(note("the command line was not recorded (no run_info.json in the run directory)"))
        options = (run.summary or {}).get("options")
        if isinstance(options, dict):
            parts.append("<p>options (summary.json)</p><pre>" + esc(json.dumps(options, indent=1)) + "</pre>")
    recipe = (run.metrics or {}).get("recipe")
    if isinstance(recipe, dict):
        parts.append("<p>training recipe (metrics.json)</p><pre>" + esc(json.dumps(recipe, indent=1)) + "</pre>")
    provenance = (run.arch or {}).get("provenance")
    if isinstance(provenance, dict) and provenance:
        parts.append("<p>architecture provenance (arch.json)</p>" + table(
            [(k, [esc(fmt(v))]) for k, v in provenance.items()]))
    config = (run.arch or {}).get("config")
    if isinstance(config, dict) and config:
        parts.append("<p>network settings (arch.json config)</p>" + table(
            [(k, [esc(fmt(v))]) for k, v in config.items()]))
    return "".join(parts)


def environment_section(run: Run) -> str:
    info = run.run_info
    if not info:
        return note("environment not recorded (no run_info.json)")
    rows = []
    for key, value in (info.get("versions") or {}).items():
        rows.append((key, [esc(value)]))
    for key, value in (info.get("device") or {}).items():
        rows.append((f"device: {key}", [esc(fmt(value))]))
    if info.get("platform"):
        rows.append(("platform", [esc(info["platform"])]))
    if info.get("created"):
        rows.append(("recorded", [esc(info["created"])]))
    return table(rows)


def run_section(run: Run, label: str, index: int, use_dot: bool | None) -> str:
    parts = [f'<section class="run" id="run-{index}"><h2>{esc(label)}<span class="tag">{esc(run.method)}</span></h2>',
             f'<p class="meta">{esc(run.path)}</p>']
    parts.extend(note(n) for n in run.notes)
    if run.kind == "other":
        parts.append(note(f"method {run.method!r} has no dedicated layout; showing every field"))
    details = details_table(run)
    if details:
        parts.append("<h3>Details</h3>" + details)
    images, notes = run_plots(run)
    parts.append("<h3>Plots</h3>")
    parts.extend(note(n) for n in notes)
    parts.extend(image(png, cap) for cap, png in images)
    parts.append("<h3>Architecture</h3>" + arch_section(run, use_dot))
    parts.append("<h3>Command and configuration</h3>" + provenance_section(run))
    parts.append("<h3>Environment</h3>" + environment_section(run))
    parts.append("</section>")
    return "".join(parts)


def labels_for(runs: Sequence[Run]) -> list[str]:
    """Directory names, made unique with the parent's name where two runs share one."""
    names = [run.name for run in runs]
    out = []
    for run, name in zip(runs, names):
        out.append(f"{run.path.parent.name}/{name}" if names.count(name) > 1 else name)
    return [f"{label} ({i + 1})" if out.count(label) > 1 else label for i, label in enumerate(out)]


def build_page(runs: Sequence[Run], *, use_dot: bool | None = None) -> str:
    labels = labels_for(runs)
    for run, label in zip(runs, labels):
        run.label = label
    title = f"budgetnas report: {labels[0]}" if len(runs) == 1 else f"budgetnas report: {len(runs)} runs"
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{esc(title)}</h1>",
             f'<p class="meta">generated {esc(created)} by budgetnas {esc(__version__)}</p>',
             '<div class="top"><div><h2>Summary</h2>', summary_table(runs, labels), "</div>"]
    metric = plots.cost_metric(runs)
    pareto = plots.accuracy_cost_plot(runs, metric)
    parts.append('<div class="wide"><h2>Accuracy against cost</h2>')
    if pareto:
        parts.append(image(pareto, "accuracy against cost: filled = searched, hollow diamonds = baselines, "
                                   "squares = retrained (test accuracy); step line = Pareto front"))
    else:
        parts.append(note(f"no run has both an accuracy and a {plots.UNITS.get(metric, metric)} count"))
    parts.append("</div></div>")
    if len(runs) > 1:
        parts.append("<p>Runs: " + ", ".join(f'<a href="#run-{i}">{esc(label)}</a>'
                                             for i, label in enumerate(labels)) + "</p>")
    parts.extend(run_section(run, label, i, use_dot) for i, (run, label) in enumerate(zip(runs, labels)))
    drawer = "graphviz" if (use_dot if use_dot is not None else drawings.dot_available()) else "matplotlib"
    parts.append(f'<p class="meta">cell graphs drawn with {drawer}; the page needs no network access.</p>')
    parts.append("</body></html>")
    return "\n".join(parts)
