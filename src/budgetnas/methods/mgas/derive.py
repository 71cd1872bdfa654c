"""From supernet state to a plain architecture: channel plans, export, size (docs/mgas.md §6-§7).

One plan serves both physical pruning and export, so the exported network is exactly what the
pruned supernet computes, minus the search machinery.

Plan of a cell: node width = the most live output filters over the conv ops writing that node;
cell width = even-rounded mean of node widths, at least half the stage's initial width.
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


def plan_cell(net: MGASSupernet, index: int) -> CellPlan:
    cell: SuperCell = net.cells[index]
    width = cell.channels
    floor = floor_width(net, index)
    importance = (torch.sigmoid(cell.beta_pre0) * cell.alive_pre0
                  + torch.sigmoid(cell.beta_pre1) * cell.alive_pre1).detach()
    node_widths: dict[int, int] = {}
    alive = cell.alive_op.tolist()
    for e, (_, dst) in enumerate(cell.edges):
        for o, op in enumerate(cell.ops[e]):
            if alive[e][o] and isinstance(op, GatedConvOp):
                importance = importance + (torch.sigmoid(op.beta_out) * op.alive_out).detach()
                node_widths[dst] = max(node_widths.get(dst, 0), int(op.alive_out.sum()))
    if not node_widths:  # only parameter-free ops left: the floor width is enough
        new_width = floor
    else:
        new_width = min(width, max(floor, even(sum(node_widths.values()) / len(node_widths))))
    keep = torch.topk(importance, new_width).indices.sort().values
    mids = {}
    for e in range(len(cell.edges)):
        for o, op in enumerate(cell.ops[e]):
            if alive[e][o] and isinstance(op, GatedConvOp) and op.kind == "sep":
                n_mid = min(op.alive_mid.numel(), max(int(op.alive_mid.sum()), new_width))
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
