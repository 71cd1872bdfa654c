"""Latency tables measured by the tool itself (`budgetnas profile --space S --sample N`).

`collect_latency_table` samples N distinct architectures of a space with a decision view,
measures each on this device (fixed batch, warm-up, median of `runs` timed passes, fixed threads)
with PyTorch or ONNX Runtime, and writes a table `generate --table` reads:

    index,arch,params,macs,latency_ms,genotype
    0,1-0-2-0-0-...,1234567,45678901,3.412,"{""stages"": ...}"

`arch` holds the choice indices in the space's decision order (inactive slots 0); a JSON sidecar
`<out>.json` records the space, its macro config and the measurement settings.
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import platform
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..io import atomic_write, write_json
from ..spaces.decisions import compact
from .counts import count_macs, count_params
from .latency import measure_latency, onnx_latency


def collect_latency_table(space_name: str, n: int, *, backend: str = "torch", device: str = "cpu",
                          batch_size: int = 1, warmup: int = 10, runs: int = 50, threads: int | None = None,
                          seed: int = 0, out_path: str | Path, in_channels: int = 3, input_size: int = 32,
                          num_classes: int = 10, progress: bool = True) -> Path:
    """Measure `n` distinct sampled architectures of `space_name`; write the CSV table (and its
    `.json` sidecar) atomically; return the CSV path."""
    from ..arch import Arch, build_model
    from ..spaces import decision_view

    if backend not in ("torch", "onnxruntime"):
        raise UserError(f"unknown backend {backend!r}", where="--backend", fix="torch or onnxruntime")
    if n < 1 or runs < 1 or batch_size < 1 or warmup < 0:
        raise UserError("sample count, runs and batch size must be >= 1, warm-up >= 0", where="profile")
    out_path = Path(out_path)
    dspace, config = decision_view(space_name, in_channels=in_channels, num_classes=num_classes,
                                   input_size=input_size)
    rows = _distinct_samples(dspace, n, seed)
    shape = (in_channels, input_size, input_size)
    records = []
    bar = _progress(len(rows), progress)
    for i, row in enumerate(rows):
        genotype = dspace.to_genotype(row)
        model = build_model(Arch(space_name, config, genotype)).eval()
        if backend == "torch":
            latency = measure_latency(model, shape, device=device, batch_size=batch_size, warmup=warmup,
                                      runs=runs, threads=threads)["latency_ms"]
        else:
            latency = onnx_latency(model, shape, device=device, batch_size=batch_size, warmup=warmup,
                                   runs=runs, threads=threads)
        records.append([i, compact(row), count_params(model), count_macs(model.cpu(), shape),
                        f"{latency:.5f}", json.dumps(genotype, separators=(",", ":"))])
        bar.update(1)
    bar.close()
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["index", "arch", "params", "macs", "latency_ms", "genotype"])
    writer.writerows(records)
    with atomic_write(out_path) as fh:
        fh.write(text.getvalue().encode())
    write_json(out_path.with_suffix(".json"), {
        "space": space_name, "config": config, "decisions": dspace.describe(), "samples": len(rows),
        "backend": backend, "device": device, "batch_size": batch_size, "warmup": warmup, "runs": runs,
        "threads": threads or torch.get_num_threads(), "seed": seed, "statistic": "median",
        "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    return out_path


def _distinct_samples(dspace, n: int, seed: int) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    seen: dict[tuple[int, ...], None] = {}
    for _ in range(100 * n):
        seen.setdefault(dspace.sample(rng), None)
        if len(seen) == n:
            break
    if len(seen) < n:
        raise UserError(f"the space has fewer than {n} distinct architectures", where="--sample")
    return list(seen)


def _progress(total: int, enabled: bool):
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc="measuring", unit="arch", disable=not enabled or not sys.stderr.isatty())
