"""Latency tables measured by the tool itself, and architectures named by a genotype string.

`collect_latency_table` samples N distinct architectures of a buildable space, measures each on this
device (fixed batch, warm-up, median of `runs` timed passes, fixed threads) with PyTorch or ONNX
Runtime, and writes a table `generate --table` reads:

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
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import UserError
from ...io import atomic_write, write_json
from ...spaces.decisions import compact
from .spaces import decision_space_for


def arch_from_genotype_string(space: str, text: str, *, in_channels: int = 3, input_size: int = 32,
                              num_classes: int = 10):
    """An `Arch` from `--space NAME --genotype STRING`.

    nb201: the benchmark's string. mbconv: a JSON genotype or choice indices (`2-0-1-...`) in the
    decision order. Other spaces: a JSON genotype with a config holding only the dataset shape."""
    from ...arch import Arch
    from ...spaces import get_space

    shape = {"in_channels": in_channels, "num_classes": num_classes, "input_size": input_size}
    get_space(space, where="--space")
    text = (text or "").strip()
    if not text:
        raise UserError("empty genotype", where="--genotype")
    if space == "nb201":
        arch = Arch("nb201", shape, text)
    elif space == "mbconv":
        dspace, config = decision_space_for("mbconv", **shape)
        genotype = _json(text) if text.startswith("{") else dspace.to_genotype(_indices(text, len(dspace)))
        arch = Arch("mbconv", config, genotype)
    else:
        arch = Arch(space, shape, _json(text))
    get_space(space).validate(arch.config, arch.genotype, where="--genotype")
    arch.provenance = {"method": "profile", "genotype": text}
    return arch


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"not valid JSON ({exc})", where="--genotype",
                        fix="quote the genotype JSON in single quotes") from None


def _indices(text: str, n: int) -> list[int]:
    try:
        values = [int(p) for p in text.replace(",", "-").split("-") if p.strip()]
    except ValueError:
        raise UserError(f"expected choice indices like 2-0-1, got {text!r}", where="--genotype") from None
    if len(values) != n:
        raise UserError(f"{len(values)} choice indices given; the space has {n} decisions",
                        where="--genotype")
    return values


def onnx_latency(model: torch.nn.Module, input_size: tuple[int, ...], *, device: str, batch_size: int,
                 warmup: int, runs: int, threads: int | None) -> float:
    """Median latency (ms) of the model exported to ONNX and run by ONNX Runtime."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("the onnxruntime backend needs the onnxruntime package", where="--backend",
                        fix="pip install onnxruntime (or use --backend torch)") from None
    x = torch.randn(batch_size, *input_size)
    buf = io.BytesIO()
    torch.onnx.export(model.eval(), (x,), buf, input_names=["input"], output_names=["logits"],
                      opset_version=17, dynamo=False)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else \
        ["CPUExecutionProvider"]
    providers = [p for p in providers if p in ort.get_available_providers()]
    session = ort.InferenceSession(buf.getvalue(), options, providers=providers)
    feed = {"input": x.numpy()}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def collect_latency_table(space_name: str, n: int, *, backend: str = "torch", device: str = "cpu",
                          batch_size: int = 1, warmup: int = 10, runs: int = 50, threads: int | None = None,
                          seed: int = 0, out_path: str | Path, in_channels: int = 3, input_size: int = 32,
                          num_classes: int = 10, progress: bool = True) -> Path:
    """Measure `n` distinct sampled architectures of `space_name`; write the CSV table (and its
    `.json` sidecar) atomically; return the CSV path."""
    from ...arch import Arch, build_model
    from ...cost import count_macs, count_params, measure_latency

    if backend not in ("torch", "onnxruntime"):
        raise UserError(f"unknown backend {backend!r}", where="--backend", fix="torch or onnxruntime")
    if n < 1 or runs < 1 or batch_size < 1 or warmup < 0:
        raise UserError("sample count, runs and batch size must be >= 1, warm-up >= 0", where="profile")
    out_path = Path(out_path)
    dspace, config = decision_space_for(space_name, in_channels=in_channels, num_classes=num_classes,
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
