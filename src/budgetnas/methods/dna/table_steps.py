"""What the steps of DNA over a benchmark space share (`nb201/steps.py`, `nbmacro/steps.py`).

Both spaces come with a table of every network measured by others, so their searches look alike:
a teacher of the same space (trained here or a user's run directory), block supernets rated on
the teacher's stage outputs, an exact search over all networks, and an optional short retraining
of the found network that also checks the teacher was worth distilling from.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch

from ...cost.lookup import METRICS
from ...data import Dataset
from ...errors import UserError
from ...io import read_json, write_json
from ...spaces import get_space

DEFAULT_SCORE_IMAGES = 512  # held-out images a candidate is scored on (--rate-samples)


def check_common(opts, space: str) -> tuple[str, float] | None:
    """One-line errors for options a benchmark space does not take; returns the target."""
    target = opts.target()
    if opts.block is None and target is None:
        raise UserError("give a budget", where="--target-params", fix="add --target-params N or --target-macs N")
    if target is not None and target[0] == "latency":
        raise UserError(f"the {space} space searches under params or MACs", where="--target-latency-ms",
                        fix="use --target-params or --target-macs")
    if opts.progressive:
        raise UserError(f"--progressive is not available with --space {space}", where="--progressive")
    if opts.block is not None and (opts.block > 2 or opts.out is None):
        raise UserError(f"--block is 0, 1 or 2 with --space {space}, and needs --out", where="--block")
    if not (opts.teacher == "train" or Path(opts.teacher).is_dir()):
        raise UserError(f"teacher {opts.teacher!r} is not available for the {space} space", where="--teacher",
                        fix=f"use 'train' or a budgetnas run directory of an {space} network")
    return target


def load_teacher_run(opts, path: Path, dataset: Dataset, device: torch.device, info_file: str, check_arch):
    """(module, arch, info) of a teacher run directory, after `check_arch(arch)` (the space's own
    refusals); its held-out accuracy is read from the teacher's own record when budgetnas trained
    it here, and measured otherwise."""
    from .teacher import run_teacher

    module, arch = run_teacher(path)
    check_arch(arch)
    cfg = {**get_space(arch.space).CONFIG_DEFAULTS, **arch.config}
    if (cfg["input_size"], cfg["in_channels"]) != (dataset.input_size, dataset.channels):
        raise UserError(f"the teacher takes {cfg['in_channels']}x{cfg['input_size']} px images, "
                        f"the data has {dataset.channels}x{dataset.input_size}", where="--teacher",
                        fix="use --image-size to match, or another teacher")
    info = read_json(path / info_file) if opts.teacher == "train" else {}
    if info.get("val_acc") is None:  # a user's run directory: measured here, on the held-out split
        from ...train.loop import evaluate

        info["val_acc"] = evaluate(module.to(device), dataset, dataset.val, device)
    return module, arch, {**info, "path": str(path), "genotype": arch.genotype}


def teacher_sum(teacher) -> str:
    """A checksum of the teacher's weights: cached ratings are reused only for the same teacher."""
    h = hashlib.sha256()
    for name, tensor in teacher.module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def rating_features(opts, teacher, dataset: Dataset, device: torch.device, log: list):
    """The teacher's stage outputs on the training split, on the recalibration images (a fixed
    head of the training split) and on the scoring images (a fixed sample of the held-out split)."""
    from .nb201.blockwise import fixed_head, teacher_features

    n_recal = opts.recal_batches * opts.rate_batch_size
    n_score = min(opts.rate_samples or DEFAULT_SCORE_IMAGES, len(dataset.val))
    t0 = time.perf_counter()
    train = teacher_features(teacher, dataset, dataset.train, device=device)
    rows = teacher_features(teacher, dataset, fixed_head(dataset.train, n_recal), device=device)
    held = teacher_features(teacher, dataset, fixed_head(dataset.val, n_score, seed=54321), device=device)
    log.append({"stage": "teacher-features", "seconds": round(time.perf_counter() - t0, 3)})
    return train, rows, held


def finish(method, ctx, arch, info: dict, points: list[dict], chosen: int, log: list) -> None:
    """Optionally retrain the found network (--final-epochs), refuse a teacher weaker than it,
    and record the result for `result()`."""
    opts, val_acc = method.opts, None
    if opts.final_epochs:
        from .rounds import retrain
        from .teacher import check_teacher_strength

        _, val_acc = retrain(arch, ctx.dataset, ctx.out / "final", opts, ctx.device, epochs=opts.final_epochs)
        stronger = ("more --teacher-epochs, or --nb201-teacher-channels" if opts.space == "nb201"
                    else "more --teacher-epochs")
        check_teacher_strength(opts, info.get("val_acc"), val_acc, stronger=stronger)
    method.log, method.val_acc = log, val_acc
    method.found = {"arch": arch, "front": points, "chosen": chosen, "teacher": info}
    ctx.save_checkpoint({"round": 0, "done": True}, log=log)


def result_extras(method) -> dict:
    """Writes front.json; the summary fields both spaces report."""
    found = method.found
    metric, budget = method.target
    chosen = found["front"][found["chosen"]]
    write_json(method.ctx.out / "front.json", {"metric": metric, "unit": METRICS[metric], "target": budget,
                                               "chosen": found["chosen"], "points": found["front"]})
    return {"target": {metric: budget}, "val_acc": method.val_acc, "space": method.opts.space,
            "cost": chosen["cost"], "score": chosen["score"], "front_size": len(found["front"]),
            "teacher": found["teacher"], "blocks": 3, "final_epochs": method.opts.final_epochs}
