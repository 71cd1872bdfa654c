"""A trained supernet on disk: `supernet.safetensors` (weights and BatchNorm statistics) and
`supernet.json` (space, macro config, stage widths, elastic choices, the data it was trained on,
the calibration sample). No pickle; a run directory stands for the files inside it."""
from __future__ import annotations

from pathlib import Path

import torch

from ...errors import UserError
from ...io import load_safetensors, read_json, save_safetensors, write_json
from .elastic import Choices, ElasticNetwork

FORMAT = "budgetnas.supernet"
VERSION = 1
NAME = "supernet"


def save_supernet(net: ElasticNetwork, directory: Path, meta: dict) -> Path:
    """Write the weights, then the description (so a description always has its weights)."""
    save_safetensors(directory / f"{NAME}.safetensors", net.state_dict())
    c = net.choices
    write_json(directory / f"{NAME}.json", {
        "format": FORMAT, "version": VERSION, "space": "mbconv", "config": net.config, "widths": net.widths,
        "choices": {"depths": list(c.depths), "kernels": list(c.kernels), "expansions": list(c.expansions)},
        "weights": f"{NAME}.safetensors", **meta})
    return directory / f"{NAME}.json"


def load_supernet(path: str | Path, *, device: torch.device | str = "cpu") -> tuple[ElasticNetwork, dict]:
    """(network in eval mode, description) from a supernet run directory or its supernet.json."""
    path = Path(path)
    if path.is_dir():
        path = path / f"{NAME}.json"
    if not path.is_file():
        raise UserError("no supernet.json here", where=str(path),
                        fix="give the run directory of `budgetnas search supernet` (after it finished)")
    meta = read_json(path, what="supernet file")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError("not a supernet written by budgetnas search supernet", where=str(path))
    if meta.get("version") != VERSION:
        raise UserError(f"unsupported supernet version {meta.get('version')!r}", where=str(path),
                        fix="train the supernet again with this budgetnas")
    try:
        choices = Choices(**{k: tuple(int(v) for v in meta["choices"][k]) for k in ("depths", "kernels", "expansions")})
        net = ElasticNetwork(meta["config"], [int(w) for w in meta["widths"]], choices)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"damaged supernet description ({type(exc).__name__}: {exc})", where=str(path)) from None
    tensors = load_safetensors(path.parent / f"{NAME}.safetensors")
    try:
        net.load_state_dict(tensors)
    except RuntimeError as exc:
        raise UserError(f"the weights do not fit the description ({str(exc).splitlines()[0]})",
                        where=str(path.parent / f"{NAME}.safetensors")) from None
    return net.to(device).eval(), meta
