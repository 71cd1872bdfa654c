"""Teachers: any `nn.Module` whose stage outputs are tapped with forward hooks.

Sources (`--teacher`):
- `torchvision:NAME` — a torchvision model; weights from `--teacher-weights FILE.safetensors` (a
  state dict; pickled .pt/.pth files are refused, never unpickled) or, with `--download`,
  torchvision's default pretrained weights.
- `PATH` — a budgetnas run directory holding `arch.json` and `model.safetensors` (e.g. a
  `budgetnas train` run); only those two files are read.
- `train` — an MBConv network larger than every candidate (`teacher_genotype`), first trained on
  the dataset's search-training split; `teacher.json` records its held-out and test accuracy.
- `none` — self-supervised (DNA++-style): an MBConv network trained without labels, BYOL-style,
  whose EMA *target* network supplies the block targets (its stage outputs).

Decision: the teacher runs in eval mode (frozen BN statistics, deterministic targets);
`train_bn=True` keeps its BN layers in training mode instead.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...arch import Arch, build_model, load_arch, save_arch
from ...data import Augment, Dataset, Split, batches
from ...errors import UserError
from ...io import load_checkpoint, load_safetensors, read_json, save_checkpoint, save_safetensors, write_json
from ...spaces.mbconv import tiny_config
from ...train.loop import stop_if_not_finite


class _Stop(Exception):
    """Raised by a hook once the last needed stage has run (the rest of the teacher is skipped)."""


class Teacher:
    """A frozen network with named stage modules `taps`; `capture` returns their outputs."""

    def __init__(self, module: nn.Module, taps: list[str], *, train_bn: bool = False,
                 description: str = "teacher"):
        names = dict(module.named_modules())
        missing = [t for t in taps if t not in names]
        if missing:
            raise UserError(f"the teacher has no module named {', '.join(missing)}",
                            where="--teacher-stages",
                            fix=f"name stage modules of the teacher, e.g. {_example_names(module)}")
        self.module = module
        self.taps = list(taps)
        self.train_bn = train_bn
        self.description = description
        for p in module.parameters():
            p.requires_grad_(False)
        self._mode()

    def _mode(self) -> None:
        self.module.eval()
        if self.train_bn:
            for m in self.module.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.train()

    def to(self, device: torch.device) -> "Teacher":
        self.module.to(device)
        return self

    @torch.no_grad()
    def capture(self, x: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
        """Outputs of taps 0..upto (all by default) for the batch `x`."""
        upto = len(self.taps) - 1 if upto is None else upto
        found: dict[int, torch.Tensor] = {}
        modules = dict(self.module.named_modules())
        handles = []

        def hook(i: int):
            def fn(_module, _inputs, output):
                found[i] = output.detach()
                if i == upto:
                    raise _Stop
            return fn

        for i, name in enumerate(self.taps[:upto + 1]):
            handles.append(modules[name].register_forward_hook(hook(i)))
        self._mode()
        try:
            self.module(x)
        except _Stop:
            pass
        except RuntimeError as exc:
            raise UserError(f"the {self.description} cannot take a batch of shape {tuple(x.shape)} "
                            f"({str(exc).splitlines()[0][:160]})", where="--teacher",
                            fix="use a teacher made for this dataset's channels and image size") from None
        finally:
            for h in handles:
                h.remove()
        if len(found) <= upto:
            raise UserError(f"teacher stage(s) {[self.taps[i] for i in range(upto + 1) if i not in found]} "
                            "never ran", where="--teacher-stages", fix="name modules on the forward path")
        return [found[i] for i in range(upto + 1)]

    def shapes(self, input_shape: tuple[int, ...], device: torch.device) -> list[tuple[int, ...]]:
        """(C, H, W) of every tap for one input of shape `input_shape`."""
        outs = self.capture(torch.zeros(2, *input_shape, device=device))
        return [tuple(o.shape[1:]) for o in outs]


def _example_names(module: nn.Module) -> str:
    names = [n for n, _ in module.named_modules() if n and n.count(".") <= 1][:4]
    return ", ".join(names) or "features.1"


def default_taps(module: nn.Module, kind: str) -> list[str]:
    """Stage modules tapped by default: mbconv `stages.i`; torchvision EfficientNet `features.2..7`
    (the stages after the MB1 layer, matching the student's six blocks)."""
    names = dict(module.named_modules())
    if "stages" in names and "stem" in names:
        return [f"stages.{i}" for i in range(len(module.stages))]
    if kind.startswith("efficientnet"):
        return [f"features.{i}" for i in range(2, len(module.features) - 1)]
    raise UserError(f"no default stages are known for this teacher ({kind})", where="--teacher-stages",
                    fix=f"name the stage modules to tap, e.g. --teacher-stages {_example_names(module)}")


# --- the four sources ------------------------------------------------------------------------

def torchvision_teacher(name: str, *, weights: Path | None, download: bool,
                        num_classes: int | None = None) -> nn.Module:
    import torchvision

    if name not in torchvision.models.list_models():
        raise UserError(f"torchvision has no model {name!r}", where="--teacher",
                        fix="use torchvision:efficientnet_b0 or another torchvision.models name")
    if weights is not None:
        model = torchvision.models.get_model(name, weights=None)
        state = _read_state_dict(weights)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise UserError(f"the weights do not fit {name} ({str(exc).splitlines()[0][:160]})",
                            where=str(weights), fix=f"give a state dict of torchvision's {name}") from None
        return model
    if download:
        try:
            return torchvision.models.get_model(name, weights="DEFAULT")
        except Exception as exc:  # noqa: BLE001 - network and cache errors alike
            raise UserError(f"could not download weights for {name} ({type(exc).__name__})",
                            where="--download", fix="give a local file with --teacher-weights") from None
    raise UserError(f"the teacher {name} needs weights", where="--teacher",
                    fix="give --teacher-weights FILE (a state dict), or --download where the internet "
                        "is reachable")


def _read_state_dict(path: Path) -> dict:
    """Tensors from a .safetensors file; nothing else is read (a pickle could run code)."""
    if path.suffix != ".safetensors":
        raise UserError("teacher weights must be a .safetensors file (pickled files are not loaded)",
                        where=str(path), fix="convert it once where you trust it: "
                        "safetensors.torch.save_file(torch.load(FILE), 'FILE.safetensors')")
    return load_safetensors(path)


def run_teacher(path: Path) -> tuple[nn.Module, Arch]:
    """A budgetnas-trained network: `arch.json` + `model.safetensors` in the directory `path`."""
    path = Path(path)
    arch_path = path / "arch.json" if path.is_dir() else path
    weights = arch_path.parent / "model.safetensors"
    if not arch_path.is_file() or not weights.is_file():
        raise UserError("a teacher directory needs arch.json and model.safetensors", where=str(path),
                        fix="point --teacher at a `budgetnas train` run directory, or use "
                            "torchvision:NAME, train or none")
    arch = load_arch(arch_path)
    model = build_model(arch)
    try:
        model.load_state_dict(load_safetensors(weights))
    except RuntimeError as exc:
        raise UserError(f"the weights do not fit the architecture ({str(exc).splitlines()[0][:160]})",
                        where=str(weights), fix="use the model.safetensors written with this arch.json") from None
    return model, arch


def without_val(dataset: Dataset) -> Dataset:
    """The dataset with an empty held-out split, so training never sees the rating images."""
    empty = Split(dataset.val.x[:0], dataset.val.y[:0])
    return dataclasses.replace(dataset, val=empty)


TEACHER_INFO = "teacher.json"
TEACHER_DEPTH, TEACHER_OP = 4, {"expansion": 6, "kernel": 7}
TEACHER_WIDTHS = (16, 24, 32)


def teacher_genotype() -> dict:
    """**Decision:** the `train` teacher has the three stage widths the students copy (16, 24, 32)
    and four e6k7 layers per stage: twice the deepest default cell (depth 2), each layer the
    largest default op, so it is larger than every candidate of the default space."""
    return {"stages": [{"channels": w, "layers": [dict(TEACHER_OP) for _ in range(TEACHER_DEPTH)]}
                       for w in TEACHER_WIDTHS]}


def teacher_arch(dataset: Dataset, seed: int, method: str = "dna") -> Arch:
    from ...arch import make_provenance

    return Arch("mbconv", tiny_config(dataset.channels, dataset.num_classes, dataset.input_size),
                teacher_genotype(), None, make_provenance(method, dataset.name, None, seed))


def held_out_accuracy(module: nn.Module, arch: Arch | None, dataset: Dataset,
                      device: torch.device) -> float | None:
    """The teacher's accuracy on the held-out split, or None when its classes are not the data's
    (a torchvision or self-supervised teacher)."""
    from ...train.loop import evaluate

    if arch is None or arch.config.get("num_classes") != dataset.num_classes or not len(dataset.val):
        return None
    return evaluate(module.to(device), dataset, dataset.val, device)


def train_teacher(dataset: Dataset, out: Path, *, epochs: int, seed: int,
                  device: torch.device) -> Path:
    """Train the MBConv teacher on the search-training split (resumable; reused if done) and write
    teacher.json: size, held-out and test accuracy."""
    from ...train.recipes import RECIPES
    from ...train.trainer import train_model

    out = Path(out)
    if (out / TEACHER_INFO).is_file() and (out / "model.safetensors").is_file():
        return out
    if (out / "metrics.json").is_file() and (out / "arch.json").is_file():
        arch = load_arch(out / "arch.json")  # trained earlier (possibly an older, smaller teacher)
    else:
        arch = teacher_arch(dataset, seed)
        save_arch(arch, out, "arch.json")
    if not (out / "metrics.json").is_file():
        recipe = RECIPES["quick"].model_copy(update={"epochs": epochs, "auxiliary_weight": 0.0})
        train_model(arch, without_val(dataset), out, recipe, seed=seed, device=device,
                    resume=(out / "checkpoint.pt").is_file(), progress=False)
    metrics = read_json(out / "metrics.json")
    model = build_model(arch)
    model.load_state_dict(load_safetensors(out / "model.safetensors"))
    write_json(out / TEACHER_INFO, {"epochs": epochs, "params": metrics["params_dense"], "macs": metrics["macs"],
                                    "val_acc": held_out_accuracy(model, arch, dataset, device),
                                    "test_acc": metrics["test_acc"]})
    return out


def check_teacher_strength(opts, teacher_acc: float | None, found_acc: float,
                           stronger: str = "more --teacher-epochs") -> None:
    """Refuse a teacher whose held-out accuracy is below that of the best network the search has
    trained (the found one, retrained for --final-epochs), unless --allow-weak-teacher: its
    ratings would rank students by how well they copy a worse network."""
    if opts.allow_weak_teacher or teacher_acc is None or found_acc <= teacher_acc:
        return
    raise UserError(f"the teacher's held-out accuracy {teacher_acc:.4f} is below the found network's "
                    f"{found_acc:.4f} (retrained for {opts.final_epochs} epochs)", where="--teacher",
                    fix=f"train a stronger teacher ({stronger}), or continue this run with "
                        "--resume --allow-weak-teacher")


# --- DNA++-style self-supervised teacher -----------------------------------------------------

class _Projector(nn.Module):
    def __init__(self, c_in: int, hidden: int = 128, out: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(c_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                 nn.Linear(hidden, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def self_supervised_teacher(dataset: Dataset, out: Path, *, epochs: int, seed: int,
                            device: torch.device, ema: float = 0.99, batch_size: int = 64,
                            lr: float = 0.05) -> Path:
    """BYOL-style training without labels: the online network + projector + predictor predicts the
    EMA target network's projection of another augmented view. The EMA target network is saved
    as the teacher (its stage outputs become the block targets). Resumable per epoch."""
    out = Path(out)
    if (out / "model.safetensors").is_file() and (out / "arch.json").is_file():
        return out
    arch = teacher_arch(dataset, seed)
    torch.manual_seed(seed)
    online = build_model(arch).to(device)
    feat = arch.config["head_channels"]
    projector, predictor = _Projector(feat).to(device), _Projector(64, 128, 64).to(device)
    target = copy.deepcopy(online).requires_grad_(False)
    target_proj = copy.deepcopy(projector).requires_grad_(False)
    params = [*online.parameters(), *projector.parameters(), *predictor.parameters()]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    start = 0
    ckpt = out / "ssl_checkpoint.pt"
    if ckpt.is_file():
        state = load_checkpoint(ckpt)
        for mod, key in ((online, "online"), (projector, "projector"), (predictor, "predictor"),
                         (target, "target"), (target_proj, "target_proj"), (opt, "opt")):
            mod.load_state_dict(state[key])
        start = state["epoch"] + 1
    augment = Augment.standard(dataset, cutout=max(1, dataset.input_size // 4))

    def embed(net, proj, x):
        return proj(net.pool(net.features(x)).flatten(1))

    for epoch in range(start, epochs):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + 7919 * (epoch + 1))
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        online.train()
        target.train()
        for step, (x, _) in enumerate(batches(dataset.train, dataset, batch_size, gen=gen, shuffle=True,
                                              drop_last=True)):
            v1, v2 = augment(x, gen).to(device), augment(x, gen).to(device)
            p1, p2 = predictor(embed(online, projector, v1)), predictor(embed(online, projector, v2))
            with torch.no_grad():
                z1, z2 = embed(target, target_proj, v1), embed(target, target_proj, v2)
            loss = (4 - 2 * F.cosine_similarity(p1, z2).mean() - 2 * F.cosine_similarity(p2, z1).mean())
            stop_if_not_finite(loss, what="self-supervised teacher", epoch=epoch, step=step, where=out,
                               kept=epoch > 0 and ckpt.is_file(), fix="lower --lr, or check the data")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                for t, o in zip([*target.parameters(), *target_proj.parameters()],
                                [*online.parameters(), *projector.parameters()]):
                    t.mul_(ema).add_(o, alpha=1 - ema)
                for t, o in zip(target.buffers(), online.buffers()):
                    t.copy_(o)
        save_checkpoint(ckpt, {"online": online.state_dict(), "projector": projector.state_dict(),
                               "predictor": predictor.state_dict(), "target": target.state_dict(),
                               "target_proj": target_proj.state_dict(), "opt": opt.state_dict(),
                               "epoch": epoch})
    save_arch(arch, out, "arch.json")
    save_safetensors(out / "model.safetensors", target.state_dict())
    write_json(out / "metrics.json", {"epochs": epochs, "kind": "self-supervised EMA target"})
    return out
