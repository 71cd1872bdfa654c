"""Drawings of architectures, one function per space (each space's `draw` hook calls its own):
DARTS-space cells and NAS-Bench-201 cells as graphs, MBConv networks as a stage/layer diagram.
Each returns a list of (caption, PNG bytes) and notes about what could not be drawn.
"""
from __future__ import annotations

from ..drawing import KERNEL_COLORS, OP_COLORS, SHORT, Graph, draw_graph, new_figure, to_png

MAX_CELLS = 30  # beyond this the page only shows the overview chart


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

def nb201_graph(edges: list[tuple[int, int, str]]) -> Graph:
    """The cell of (source, target, op) edges; `none` edges are left out."""
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


def nb201_drawings(text: str, edges: list[tuple[int, int, str]], *,
                   use_dot: bool | None = None) -> tuple[list[tuple[str, bytes]], list[str]]:
    graph = nb201_graph(edges)
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
