"""Architecture drawings: DARTS-space cells and NAS-Bench-201 cells as graphs, MBConv networks as
a stage/layer diagram.

Cell graphs use graphviz `dot` when it is installed (nicer routing) and a matplotlib layout
otherwise, so nothing depends on a system binary. Each function returns a list of
(caption, PNG bytes); an architecture that cannot be drawn gives a note instead.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field

from .plots import new_figure, to_png

OP_COLORS = {"skip_connect": "#7f7f7f", "sep_conv_3x3": "#1f77b4", "sep_conv_5x5": "#17becf",
             "dil_conv_3x3": "#2ca02c", "dil_conv_5x5": "#98df8a", "avg_pool_3x3": "#ff7f0e",
             "max_pool_3x3": "#d62728", "nor_conv_1x1": "#9467bd", "nor_conv_3x3": "#1f77b4",
             "none": "#cccccc"}
SHORT = {"skip_connect": "skip", "sep_conv_3x3": "sep3", "sep_conv_5x5": "sep5", "dil_conv_3x3": "dil3",
         "dil_conv_5x5": "dil5", "avg_pool_3x3": "avg3", "max_pool_3x3": "max3",
         "nor_conv_1x1": "conv1", "nor_conv_3x3": "conv3"}
KERNEL_COLORS = {3: "#6baed6", 5: "#74c476", 7: "#fd8d3c"}
MAX_CELLS = 30  # beyond this the page only shows the overview chart


@dataclass
class Graph:
    """A small DAG to draw: nodes (id -> label, (x, y), kind) and labelled, coloured edges."""

    title: str
    nodes: dict[str, tuple[str, tuple[float, float], str]] = field(default_factory=dict)
    edges: list[tuple[str, str, str, str]] = field(default_factory=list)  # (src, dst, label, op)


# --- DARTS space --------------------------------------------------------------------------------

def darts_cell_graph(cell: dict, index: int, steps: int) -> Graph:
    kind = "reduction" if cell.get("reduction") else "normal"
    graph = Graph(f"cell {index} · {kind} · C={cell.get('channels', '?')}")
    graph.nodes["0"] = ("c[k-2]", (0.0, 1.3), "input")
    graph.nodes["1"] = ("c[k-1]", (0.0, -1.3), "input")
    for j in range(steps):
        graph.nodes[str(j + 2)] = (str(j), (2.0 * (j + 1), 0.9 if j % 2 == 0 else -0.9), "node")
    graph.nodes["out"] = ("c[k]", (2.0 * (steps + 1), 0.0), "output")
    for edge in cell.get("edges") or []:
        if not isinstance(edge, dict):
            continue
        op = str(edge.get("op"))
        label = SHORT.get(op, op) + (f" m{edge['mid']}" if edge.get("mid") is not None else "")
        graph.edges.append((str(edge.get("from")), str(edge.get("to")), label, op))
    concat = cell.get("concat") or list(range(2, steps + 2))
    for node in concat:
        graph.edges.append((str(node), "out", "", "concat"))
    return graph


def darts_drawings(arch: dict, *, use_dot: bool | None = None) -> tuple[list[tuple[str, bytes]], list[str]]:
    genotype, config = arch.get("genotype") or {}, arch.get("config") or {}
    cells = genotype.get("cells") if isinstance(genotype, dict) else None
    if not isinstance(cells, list) or not cells:
        return [], ["the DARTS genotype has no cells to draw"]
    steps = config.get("steps", 4) if isinstance(config.get("steps"), int) else 4
    images, notes = [], []
    overview = darts_overview(cells)
    if overview:
        images.append(("ops kept and width per cell", overview))
    if len(cells) > MAX_CELLS:
        notes.append(f"{len(cells)} cells: only the overview is drawn (cell graphs up to {MAX_CELLS})")
        return images, notes
    for i, cell in enumerate(cells):
        if isinstance(cell, dict):
            graph = darts_cell_graph(cell, i, steps)
            images.append((graph.title, draw_graph(graph, use_dot=use_dot)))
    return images, notes


def darts_overview(cells: list) -> bytes | None:
    """Stacked op counts per cell (by op type) and each cell's width: where the search kept what."""
    ops = [op for op in OP_COLORS if any(isinstance(c, dict) and any(
        isinstance(e, dict) and e.get("op") == op for e in c.get("edges") or []) for c in cells)]
    if not ops:
        return None
    fig = new_figure(min(2.0 + 0.55 * len(cells), 14), 3.4)
    ax = fig.add_subplot(1, 1, 1)
    xs = list(range(len(cells)))
    bottom = [0] * len(cells)
    for op in ops:
        counts = [sum(1 for e in (c.get("edges") or []) if isinstance(e, dict) and e.get("op") == op)
                  if isinstance(c, dict) else 0 for c in cells]
        ax.bar(xs, counts, bottom=bottom, color=OP_COLORS[op], label=SHORT.get(op, op), width=0.7)
        bottom = [b + c for b, c in zip(bottom, counts)]
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{i}{'R' if isinstance(c, dict) and c.get('reduction') else ''}"
                        for i, c in enumerate(cells)], fontsize=8)
    ax.set_xlabel("cell (R = reduction)")
    ax.set_ylabel("ops kept")
    twin = ax.twinx()
    twin.plot(xs, [c.get("channels") if isinstance(c, dict) else None for c in cells], "ko-",
              markersize=4, linewidth=1.2, label="width C")
    twin.set_ylabel("cell width C")
    twin.set_ylim(bottom=0)
    handles, labels = ax.get_legend_handles_labels()
    h2, l2 = twin.get_legend_handles_labels()
    ax.legend(handles + h2, labels + l2, fontsize=7, loc="upper left", bbox_to_anchor=(1.08, 1.0))
    ax.set_title("Network overview: ops kept per cell (bars) and width (line)", fontsize=10)
    return to_png(fig)


# --- NAS-Bench-201 ------------------------------------------------------------------------------

def parse_nb201(text: str) -> list[tuple[int, int, str]]:
    """'|op~0|+|op~0|op~1|+|...|' -> [(from, to, op)]; ValueError when malformed."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty architecture string")
    edges = []
    for to, part in enumerate(text.strip().split("+"), start=1):
        tokens = [t for t in part.split("|") if t]
        if not tokens:
            raise ValueError(f"node {to} has no inputs")
        for token in tokens:
            op, sep, src = token.partition("~")
            if not sep or not src.isdigit() or int(src) >= to:
                raise ValueError(f"bad edge {token!r}")
            edges.append((int(src), to, op))
    return edges


def nb201_graph(arch_string: str) -> Graph:
    edges = parse_nb201(arch_string)
    last = max(to for _, to, _ in edges)
    graph = Graph("NAS-Bench-201 cell (none edges omitted)")
    for node in range(last + 1):
        kind = "input" if node == 0 else ("output" if node == last else "node")
        y = 0.0 if node in (0, last) else (1.0 if node % 2 else -1.0)
        graph.nodes[str(node)] = (str(node), (2.0 * node, y), kind)
    for src, to, op in edges:
        if op != "none":
            graph.edges.append((str(src), str(to), SHORT.get(op, op), op))
    return graph


def nb201_drawings(arch: dict, *, use_dot: bool | None = None) -> tuple[list[tuple[str, bytes]], list[str]]:
    genotype = arch.get("genotype")
    text = genotype if isinstance(genotype, str) else (genotype or {}).get("arch") if isinstance(genotype, dict) else None
    try:
        graph = nb201_graph(text)
    except (ValueError, TypeError) as exc:
        return [], [f"the NAS-Bench-201 genotype could not be read ({exc})"]
    return [(f"{graph.title}: {text}", draw_graph(graph, use_dot=use_dot))], []


# --- MBConv -----------------------------------------------------------------------------------

def mbconv_drawings(arch: dict) -> tuple[list[tuple[str, bytes]], list[str]]:
    genotype, config = arch.get("genotype") or {}, arch.get("config") or {}
    stages = genotype.get("stages") if isinstance(genotype, dict) else None
    if not isinstance(stages, list) or not stages:
        return [], ["the MBConv genotype has no stages to draw"]
    return [("stages and layers (box height ~ expansion, colour = kernel)", mbconv_diagram(stages, config))], []


def mbconv_diagram(stages: list, config: dict) -> bytes:
    from matplotlib.patches import FancyBboxPatch, Patch

    strides = config.get("strides") if isinstance(config.get("strides"), list) else []
    layers = sum(len(s.get("layers") or []) for s in stages if isinstance(s, dict))
    fig = new_figure(min(3.5 + 0.75 * layers + 0.4 * len(stages), 18), 3.6)
    ax = fig.add_subplot(1, 1, 1)
    x = 0.0

    def box(x0: float, height: float, color: str, text: str, width: float = 0.6) -> None:
        ax.add_patch(FancyBboxPatch((x0, -height / 2), width, height, boxstyle="round,pad=0.02",
                                    facecolor=color, edgecolor="#333333", linewidth=0.8))
        ax.text(x0 + width / 2, 0, text, ha="center", va="center", fontsize=7)

    box(x, 0.8, "#eeeeee", f"stem\n{config.get('stem_channels', '')}", 0.7)
    x += 0.9
    box(x, 0.8, "#eeeeee", f"MB1\n{config.get('first_channels', '')}", 0.7)
    x += 1.1
    for i, stage in enumerate(stages):
        if not isinstance(stage, dict):
            continue
        start = x
        for layer in stage.get("layers") or []:
            if not isinstance(layer, dict):
                continue
            e, k = layer.get("expansion", 1), layer.get("kernel", 3)
            height = 0.5 + 0.25 * (e if isinstance(e, (int, float)) else 1)
            text = f"MB{e}\nk{k}" + ("" if layer.get("se", True) else "\nno SE")
            box(x, height, KERNEL_COLORS.get(k, "#dddddd"), text)
            x += 0.75
        stride = strides[i] if i < len(strides) else "?"
        ax.plot([start, x - 0.15], [-1.45, -1.45], color="#555555", linewidth=1)
        ax.text((start + x - 0.15) / 2, -1.6, f"stage {i}\nC={stage.get('channels', '?')} s{stride}",
                ha="center", va="top", fontsize=7)
        x += 0.35
    box(x, 0.8, "#eeeeee", f"head\n{config.get('head_channels', '')}", 0.7)
    x += 0.9
    box(x, 0.8, "#eeeeee", f"FC\n{config.get('num_classes', '')}", 0.6)
    x += 0.6
    ax.set_xlim(-0.2, x + 0.2)
    ax.set_ylim(-2.3, 1.6)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.legend(handles=[Patch(facecolor=c, edgecolor="#333333", label=f"kernel {k}")
                       for k, c in KERNEL_COLORS.items()], fontsize=7, loc="upper right", ncol=3)
    ax.set_title("MBConv network", fontsize=10)
    return to_png(fig)


# --- drawing a graph ------------------------------------------------------------------------------

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


def draw_arch(arch: dict, *, use_dot: bool | None = None) -> tuple[list[tuple[str, bytes]], list[str]]:
    """Drawings for an arch.json object by space; unknown spaces give a note."""
    space = arch.get("space")
    try:
        if space == "darts":
            return darts_drawings(arch, use_dot=use_dot)
        if space == "mbconv":
            return mbconv_drawings(arch)
        if space == "nb201":
            return nb201_drawings(arch, use_dot=use_dot)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # A hand-edited or half-written genotype must not cost the user the rest of the page.
        return [], [f"the {space} architecture could not be drawn ({type(exc).__name__}: {exc})"]
    return [], [f"no drawing for space {space!r}"]
