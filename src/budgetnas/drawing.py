"""Drawing helpers shared by the spaces' drawings and the report: matplotlib figures rendered
to PNG bytes (Agg canvas, no display, no pyplot state) and small DAGs drawn with graphviz `dot`
when it is installed (nicer routing) or a matplotlib layout otherwise, so nothing depends on a
system binary.
"""
from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass, field

OP_COLORS = {"skip_connect": "#7f7f7f", "sep_conv_3x3": "#1f77b4", "sep_conv_5x5": "#17becf",
             "dil_conv_3x3": "#2ca02c", "dil_conv_5x5": "#98df8a", "avg_pool_3x3": "#ff7f0e",
             "max_pool_3x3": "#d62728", "nor_conv_1x1": "#9467bd", "nor_conv_3x3": "#1f77b4",
             "none": "#cccccc"}
SHORT = {"skip_connect": "skip", "sep_conv_3x3": "sep3", "sep_conv_5x5": "sep5", "dil_conv_3x3": "dil3",
         "dil_conv_5x5": "dil5", "avg_pool_3x3": "avg3", "max_pool_3x3": "max3",
         "nor_conv_1x1": "conv1", "nor_conv_3x3": "conv3"}
KERNEL_COLORS = {3: "#6baed6", 5: "#74c476", 7: "#fd8d3c"}

def new_figure(width: float, height: float):
    """A matplotlib Figure bound to the Agg canvas (works headless, leaves pyplot untouched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


@dataclass
class Graph:
    """A small DAG to draw: nodes (id -> label, (x, y), kind) and labelled, coloured edges."""

    title: str
    nodes: dict[str, tuple[str, tuple[float, float], str]] = field(default_factory=dict)
    edges: list[tuple[str, str, str, str]] = field(default_factory=list)  # (src, dst, label, op)


def dot_available() -> bool:
    return shutil.which("dot") is not None


def draw_graph(graph: Graph, *, use_dot: bool | None = None) -> bytes:
    """PNG of `graph`: graphviz when available (or asked for), else matplotlib."""
    if use_dot is None:
        use_dot = dot_available()
    if use_dot:
        png = draw_with_dot(graph)
        if png:
            return png
    return draw_with_matplotlib(graph)


def _quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot_source(graph: Graph) -> str:
    fills = {"input": "#dbe9f6", "node": "#f2f2f2", "output": "#fde3c8"}
    lines = ["digraph cell {", "  rankdir=LR; bgcolor=white;",
             f"  label={_quote(graph.title)}; labelloc=t; fontsize=14; fontname=Helvetica;",
             '  node [shape=box, style="rounded,filled", fontname=Helvetica, fontsize=12];',
             "  edge [fontname=Helvetica, fontsize=9];"]
    for node_id, (label, _, kind) in graph.nodes.items():
        lines.append(f"  {_quote(node_id)} [label={_quote(label)}, fillcolor={_quote(fills.get(kind, 'white'))}];")
    for src, dst, label, op in graph.edges:
        if src not in graph.nodes or dst not in graph.nodes:
            continue
        color = OP_COLORS.get(op, "#999999")
        style = ", style=dashed" if op == "concat" else ""
        lines.append(f"  {_quote(src)} -> {_quote(dst)} [label={_quote(label)}, color={_quote(color)}, "
                     f"fontcolor={_quote(color)}{style}];")
    lines.append("}")
    return "\n".join(lines)


def draw_with_dot(graph: Graph) -> bytes | None:
    """graphviz PNG, or None when dot is missing or fails (the caller falls back)."""
    exe = shutil.which("dot")
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, "-Tpng", "-Gdpi=80"], input=dot_source(graph).encode(),
                              capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0 or not done.stdout.startswith(b"\x89PNG"):
        return None
    return done.stdout


def draw_with_matplotlib(graph: Graph) -> bytes:
    """Fixed layout (inputs left, nodes in order, output right); parallel ops on the same pair of
    nodes bend apart so each stays readable."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    xs = [pos[0] for _, pos, _ in graph.nodes.values()]
    width = max(xs) - min(xs) if xs else 1
    ys = [pos[1] for _, pos, _ in graph.nodes.values()]
    height = max(ys) - min(ys) if ys else 1
    fig = new_figure(max(4.5, 0.95 * width + 1.5), max(3.0, 0.95 * height + 2.0))
    ax = fig.add_subplot(1, 1, 1)
    ax.set_aspect("equal")
    fills = {"input": "#dbe9f6", "node": "#f2f2f2", "output": "#fde3c8"}
    pair_count: dict[tuple[str, str], int] = {}
    for src, dst, *_ in graph.edges:
        pair_count[(src, dst)] = pair_count.get((src, dst), 0) + 1
    pair_seen: dict[tuple[str, str], int] = {}
    for src, dst, label, op in graph.edges:
        if src not in graph.nodes or dst not in graph.nodes:
            continue
        (x1, y1), (x2, y2) = graph.nodes[src][1], graph.nodes[dst][1]
        n, k = pair_count[(src, dst)], pair_seen.get((src, dst), 0)
        pair_seen[(src, dst)] = k + 1
        span = abs(x2 - x1)
        rad = (0.3 if span > 2.5 else 0.0) + 0.25 * (k - (n - 1) / 2)
        color = OP_COLORS.get(op, "#999999")
        arrow = FancyArrowPatch((x1, y1), (x2, y2), connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                mutation_scale=9, color=color, linewidth=1.4 if op != "concat" else 0.8,
                                linestyle="--" if op == "concat" else "-", shrinkA=14, shrinkB=14, zorder=1)
        ax.add_patch(arrow)
        if label:
            # Midpoint of the quadratic curve matplotlib's arc3 draws.
            mx = (x1 + x2) / 2 + 0.5 * rad * (y2 - y1)
            my = (y1 + y2) / 2 - 0.5 * rad * (x2 - x1)
            ax.text(mx, my, label, fontsize=6.5, color=color, ha="center", va="center", zorder=3,
                    bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})
    for label, (x, y), kind in graph.nodes.values():
        ax.add_patch(FancyBboxPatch((x - 0.3, y - 0.17), 0.6, 0.34, boxstyle="round,pad=0.03",
                                    facecolor=fills.get(kind, "white"), edgecolor="#333333", zorder=2))
        ax.text(x, y, label, ha="center", va="center", fontsize=8, zorder=4)
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 1.1, max(ys) + 1.1)
    ax.axis("off")
    ax.set_title(graph.title, fontsize=10)
    return to_png(fig)
