"""The architecture file: one versioned JSON object shared by every method.

    {"format": "budgetnas.arch", "version": 1, "space": "darts", "config": {...},
     "genotype": {...}, "masks": "arch.safetensors" | null, "provenance": {...}}

`load_arch` validates everything (the space checks its own genotype) and raises `ArchError`
(exit code 2) naming the file and field on any inconsistency.
"""
from __future__ import annotations

import copy
import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .errors import ArchError
from .io import load_safetensors, read_json, save_safetensors, within_directory, write_json
from .spaces import get_space

FORMAT = "budgetnas.arch"
VERSION = 1
_KEYS = {"format", "version", "space", "config", "genotype", "masks", "provenance"}


@dataclass
class Arch:
    space: str
    config: dict
    genotype: Any
    masks: dict[str, torch.Tensor] | None = None
    provenance: dict = field(default_factory=dict)
    path: Path | None = None  # where it was loaded from, if anywhere

    def to_json(self, masks_name: str | None) -> dict:
        return {"format": FORMAT, "version": VERSION, "space": self.space,
                "config": self.config, "genotype": self.genotype, "masks": masks_name,
                "provenance": self.provenance}

    def with_config(self, **overrides: Any) -> "Arch":
        """A copy with macro settings replaced (e.g. classes and input size of another dataset)."""
        new = copy.copy(self)
        new.config = {**self.config, **{k: v for k, v in overrides.items() if v is not None}}
        return new


def make_provenance(method: str, dataset: str, target: dict | None, seed: int) -> dict:
    return {"method": method, "dataset": dataset, "target": target or {}, "seed": seed,
            "version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def validate_arch_dict(obj: Any, *, where: str) -> None:
    if not isinstance(obj, dict):
        raise ArchError("the top level must be a JSON object", where=where)
    if obj.get("format") != FORMAT:
        raise ArchError(f"'format' must be {FORMAT!r}, got {obj.get('format')!r}", where=where,
                        fix="give an architecture file written by budgetnas")
    if obj.get("version") != VERSION:
        raise ArchError(f"unsupported 'version' {obj.get('version')!r} (this budgetnas reads "
                        f"version {VERSION})", where=where, fix="re-export the architecture")
    missing = {"space", "config", "genotype"} - obj.keys()
    if missing:
        raise ArchError(f"missing field(s) {', '.join(sorted(missing))}", where=where)
    unknown = obj.keys() - _KEYS
    if unknown:
        raise ArchError(f"unknown field(s) {', '.join(sorted(unknown))}", where=where,
                        fix=f"allowed fields: {', '.join(sorted(_KEYS))}")
    if not isinstance(obj["space"], str):
        raise ArchError("'space' must be a string", where=where)
    if not isinstance(obj["config"], dict):
        raise ArchError("'config' must be an object", where=f"{where}: config")
    if obj.get("masks") is not None and not isinstance(obj["masks"], str):
        raise ArchError("'masks' must be a file name or null", where=f"{where}: masks")
    if not isinstance(obj.get("provenance", {}), dict):
        raise ArchError("'provenance' must be an object", where=f"{where}: provenance")
    get_space(obj["space"], where=f"{where}: space").validate(obj["config"], obj["genotype"],
                                                               where=where)


def load_arch(path: str | Path) -> Arch:
    """Read and fully validate an architecture file (and its masks file, if any); a run directory
    stands for the arch.json inside it."""
    path = Path(path)
    if path.is_dir():
        if not (path / "arch.json").is_file():
            raise ArchError("this directory holds no arch.json", where=str(path),
                            fix="give an architecture file, or a search or train run directory")
        path = path / "arch.json"
    obj = read_json(path, what="architecture file")
    where = str(path)
    validate_arch_dict(obj, where=where)
    masks = None
    if obj.get("masks"):
        mask_path = within_directory(path.parent, obj["masks"], where=f"{where}: masks")
        if not mask_path.is_file():
            raise ArchError(f"masks file {obj['masks']!r} not found next to the architecture",
                            where=f"{where}: masks", fix="copy it beside arch.json or set masks to null")
        masks = load_safetensors(mask_path)
    arch = Arch(obj["space"], obj["config"], obj["genotype"], masks, obj.get("provenance", {}), path)
    if masks is not None:
        # Building checks every mask against the weight it belongs to.
        get_space(arch.space).build(arch)
    return arch


def save_arch(arch: Arch, directory: str | Path, name: str = "arch.json") -> Path:
    """Write `name` (and `<stem>.safetensors` for the masks) atomically into `directory`."""
    directory = Path(directory)
    masks_name = None
    if arch.masks:
        masks_name = Path(name).with_suffix(".safetensors").name
        save_safetensors(directory / masks_name, arch.masks)
    write_json(directory / name, arch.to_json(masks_name))
    return directory / name


def build_model(arch: Arch, **config_overrides: Any) -> torch.nn.Module:
    """A plain `nn.Module` for `arch`; overrides replace macro settings (e.g. num_classes)."""
    if config_overrides:
        arch = arch.with_config(**config_overrides)
        get_space(arch.space).validate(arch.config, arch.genotype, where="config override")
    return get_space(arch.space).build(arch)


def arch_from_genotype(space: str, text: str, *, in_channels: int = 3, input_size: int = 32,
                       num_classes: int = 10) -> Arch:
    """An `Arch` named on the command line (`--space NAME --genotype STRING`): the space's default
    network for this input shape with the genotype the space reads from `text` (NB201: the
    benchmark's string; mbconv: JSON or choice indices; others: JSON)."""
    impl = get_space(space, where="--space")
    text = (text or "").strip()
    if not text:
        raise ArchError("empty genotype", where="--genotype")
    config = impl.template(in_channels=in_channels, num_classes=num_classes, input_size=input_size)
    genotype = impl.parse_genotype(text, config)
    impl.validate(config, genotype, where="--genotype")
    return Arch(space, config, genotype, provenance={"method": "profile", "genotype": text})
