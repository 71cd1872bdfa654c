"""From supernet state to a plain architecture: channel plans, export, size (docs/mgas.md §6-§7).

One plan serves both physical pruning and export, so the exported network is exactly what the
pruned supernet computes, minus the search machinery.

Plan of a cell: node width = the most live output filters, among the channels the cell keeps,
over the conv ops writing that node; cell width = even-rounded mean of node widths, at least half
the stage's initial width (a fixed point: see `plan_cell`).
**Decision:** cells at stage ends shrink like the others; the stage heads and the classifier that
read them are sliced with them (the original kept those cells at full width, which on a 3- or
4-cell CPU preset leaves almost no cell prunable). **Decision:** all nodes of a cell keep the
same channel set (the top channels by summed filter scores), because skip connections and pools
pass channels through unchanged. A sep conv keeps its live middle filters, at least the cell width
(C_mid >= (C_in + C_out) / 2).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...arch import Arch
from ...spaces.darts import OPS
from .supernet import GatedConvOp, MGASSupernet, SuperCell

SEP_LAYERS = {"dw1": 1, "pw1": 2, "dw2": 5, "pw2": 6}  # index in spaces.darts SepConv / DilConv
DIL_LAYERS = {"dw1": 1, "pw1": 2}


@dataclass
class CellPlan:
    keep: torch.Tensor  # channel indices kept in every node of the cell
    mids: dict[tuple[int, int], torch.Tensor]  # (edge, op) -> middle channels kept (sep convs)


def even(x: float) -> int:
    return max(2, 2 * int(round(x / 2)))


def floor_width(net: MGASSupernet, index: int) -> int:
    """The narrowest a cell may become: half its stage's initial width (even)."""
    return min(net.cells[index].channels, even(net.stage_widths[index] / 2))


def _cell_width(cell: SuperCell, convs: list, keep: torch.Tensor, floor: int) -> int:
    """Even-rounded mean node width, counting only the live filters among the `keep` channels."""
    node_widths: dict[int, int] = {}
    for dst, op in convs:
        node_widths[dst] = max(node_widths.get(dst, 0), int(op.alive_out[keep].sum()))
    if not node_widths:  # only parameter-free ops left: the floor width is enough
        return floor
    return min(int(keep.numel()), max(floor, even(sum(node_widths.values()) / len(node_widths))))


def plan_cell(net: MGASSupernet, index: int) -> CellPlan:
    """**Decision (2026-12-05):** the width is a fixed point: node widths count only live filters
    among the channels the cell keeps, and the kept set shrinks until they agree. A plan of the
    pruned network is then the same network (physical pruning keeps the size the search measured);
    before, every physical pruning cut 10-20 % more of a cell's live filters that no gate had chosen."""
    cell: SuperCell = net.cells[index]
    floor = floor_width(net, index)
    importance = (torch.sigmoid(cell.beta_pre0) * cell.alive_pre0
                  + torch.sigmoid(cell.beta_pre1) * cell.alive_pre1).detach()
    alive = cell.alive_op.tolist()
    convs = [(dst, op) for e, (_, dst) in enumerate(cell.edges) for o, op in enumerate(cell.ops[e])
             if alive[e][o] and isinstance(op, GatedConvOp)]
    for _, op in convs:
        importance = importance + (torch.sigmoid(op.beta_out) * op.alive_out).detach()
    order = torch.argsort(importance, descending=True, stable=True)
    keep = order
    while (width := _cell_width(cell, convs, keep, floor)) < keep.numel():
        keep = order[:width]
    keep = keep.sort().values
    mids = {}
    for e in range(len(cell.edges)):
        for o, op in enumerate(cell.ops[e]):
            if alive[e][o] and isinstance(op, GatedConvOp) and op.kind == "sep":
                n_mid = min(op.alive_mid.numel(), max(int(op.alive_mid.sum()), int(keep.numel())))
                score = torch.sigmoid(op.beta_mid).detach() + 10.0 * op.alive_mid  # live first
                mids[(e, o)] = torch.topk(score, n_mid).indices.sort().values
    return CellPlan(keep, mids)


def plan_network(net: MGASSupernet) -> list[CellPlan]:
    return [plan_cell(net, i) for i in range(net.layers)]


def export_arch(net: MGASSupernet, plans: list[CellPlan], *, input_size: int,
                provenance: dict | None = None) -> Arch:
    """The exported architecture (kept ops, widths) and its weight masks."""
    cells, masks = [], {}
    for c, (cell, plan) in enumerate(zip(net.cells, plans)):
        keep = plan.keep
        entries = []
        alive = cell.alive_op.tolist()
        for e, (src, dst) in enumerate(cell.edges):
            for o, name in enumerate(OPS):
                if alive[e][o]:
                    entries.append((dst, src, o, e, name))
        entries.sort()
        edges = []
        for k, (dst, src, o, e, name) in enumerate(entries):
            edge = {"from": src, "to": dst, "op": name}
            op = cell.ops[e][o]
            if isinstance(op, GatedConvOp):
                mid = plan.mids.get((e, o))
                if mid is not None:
                    edge["mid"] = int(mid.numel())
                for layer, tensor in _op_masks(op, keep, mid).items():
                    if not bool(tensor.all()):
                        masks[f"cells.{c}.ops.{k}.{layer}.weight"] = tensor.float().cpu()  # an Arch holds no device
            edges.append(edge)
        cells.append({"reduction": cell.reduction, "channels": int(keep.numel()), "edges": edges})
    config = {"in_channels": net.in_channels, "num_classes": net.num_classes, "input_size": input_size,
              "stem_channels": net.stem[0].out_channels, "steps": net.steps, "pool_bn": True}
    return Arch("darts", config, {"cells": cells}, masks or None, provenance or {})


def _op_masks(op: GatedConvOp, keep: torch.Tensor, mid: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Committed weight masks sliced to the kept channels; dead filters become zero rows."""
    if op.kind == "sep":
        pw1 = op.pw1.mask[mid][:, keep] & op.alive_mid[mid].view(-1, 1, 1, 1)
        pw2 = op.pw2.mask[keep][:, mid] & op.alive_out[keep].view(-1, 1, 1, 1)
        return {SEP_LAYERS["dw1"]: op.dw1.mask[keep], SEP_LAYERS["pw1"]: pw1,
                SEP_LAYERS["dw2"]: op.dw2.mask[mid], SEP_LAYERS["pw2"]: pw2}
    pw1 = op.pw1.mask[keep][:, keep] & op.alive_out[keep].view(-1, 1, 1, 1)
    return {DIL_LAYERS["dw1"]: op.dw1.mask[keep], DIL_LAYERS["pw1"]: pw1}
