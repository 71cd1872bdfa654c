"""A trained generator on disk: `<name>.safetensors` (weights) + `<name>.json` (settings, the
decision space, normalisation, revealed rows). No pickle anywhere."""
from __future__ import annotations

import dataclasses
from dataclasses import asdict
from pathlib import Path

import torch

from ...errors import UserError
from ...io import load_safetensors, read_json, save_safetensors, write_json
from ...spaces.decisions import DecisionSpace
from .model import NAGModel
from .networks import MLP, Evaluator
from .settings import Normalizer, Settings

FORMAT = "budgetnas.nag-generator"


def model_tensors(self: NAGModel) -> dict[str, torch.Tensor]:
    out = {}
    for prefix, module in (("generator", self.generator), ("evaluator", self.evaluator),
                           ("acc_model", self.acc_model), ("cost_model", self.cost_model)):
        out.update({f"{prefix}.{k}": v for k, v in module.state_dict().items()})
    return out

def model_metadata(self: NAGModel) -> dict:
    return {"format": FORMAT, "version": 1, "decisions": self.space.describe(),
            "space_name": self.space.name, "settings": asdict(self.settings),
            "budget_range": [self.norm.lo, self.norm.hi], "acc_stats": list(self.acc_stats),
            "cost_stats": list(self.cost_stats), "margin": self.margin, "reward_std": self.reward_std,
            "acc_discount": self.acc_discount,
            "known": [[list(k), v[0], v[1]] for k, v in self.known.items()], **self.meta}

def save_model(self: NAGModel, path: str | Path) -> Path:
    """`<path>.safetensors` (weights) + `<path>.json` (everything else). No pickle."""
    path = Path(path)
    save_safetensors(path.with_suffix(".safetensors"), model_tensors(self))
    write_json(path.with_suffix(".json"), model_metadata(self))
    return path.with_suffix(".json")

def load_model(path: str | Path, space: DecisionSpace | None = None, *,
               device: str | torch.device = "cpu") -> NAGModel:
    path = Path(path)
    meta = read_json(path.with_suffix(".json"), what="generator file")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError("not a generator written by budgetnas generate", where=str(path),
                        fix="give the generator.json of a generate run")
    tensors = load_safetensors(path.with_suffix(".safetensors"))
    return model_from_state(meta, tensors, space, device=device,
                            where=str(path.with_suffix(".safetensors")))

def model_from_state(meta: dict, tensors: dict[str, torch.Tensor], space: DecisionSpace | None = None, *,
                     device: str | torch.device = "cpu", where: str = "generator") -> NAGModel:
    """Rebuild a generator from its metadata and weights (what `save` writes, or a checkpoint)."""
    fields = {f.name for f in dataclasses.fields(Settings)}
    settings = Settings(**{k: (tuple(v) if k == "budget_range" and v else v)
                           for k, v in meta["settings"].items() if k in fields})
    space = space or DecisionSpace.from_description(meta["decisions"], name=meta.get("space_name", "table"))
    n_in = space.encoding_size
    device = str(device)
    acc_model = MLP(n_in, settings.predictor_hidden).to(device)
    cost_model = MLP(n_in, settings.predictor_hidden).to(device)
    evaluator = Evaluator(n_in, settings.evaluator_hidden).to(device)
    model = NAGModel._with_generator(space, settings, Normalizer(*meta["budget_range"]), acc_model,
                                     tuple(meta["acc_stats"]), cost_model, tuple(meta["cost_stats"]),
                                     meta["margin"], evaluator, {}, device=device)
    try:
        for prefix, module in (("generator", model.generator), ("evaluator", evaluator),
                               ("acc_model", acc_model), ("cost_model", cost_model)):
            module.load_state_dict({k[len(prefix) + 1:]: v for k, v in tensors.items()
                                    if k.startswith(prefix + ".")})
    except RuntimeError as exc:
        raise UserError(f"weights do not fit the stored settings ({str(exc).splitlines()[0]})",
                        where=where) from None
    model.known = {tuple(k): (a, c) for k, a, c in meta.get("known", [])}
    model.reward_std = float(meta.get("reward_std", 1.0))
    model.acc_discount = float(meta.get("acc_discount", 0.0))
    model.meta = {k: v for k, v in meta.items() if k not in (
        "format", "version", "decisions", "settings", "budget_range", "acc_stats", "cost_stats",
        "margin", "known", "space_name", "reward_std", "acc_discount")}
    for m in (acc_model, cost_model, evaluator):
        m.eval()
    return model
