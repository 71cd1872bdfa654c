"""Measured latency: median wall time of forward passes, with PyTorch or ONNX Runtime."""
from __future__ import annotations

import statistics
import time
from typing import Any

import torch
import torch.nn as nn

from ..errors import UserError


def check_threads(threads: int | None, *, where: str = "threads") -> None:
    """None (keep torch's count) or 1..MAX_THREADS; torch raises on 0 or less and crashes the
    process on absurd counts instead of refusing them."""
    from ..config import MAX_THREADS

    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise UserError(f"{threads} threads is out of range", where=where,
                        fix=f"give 1 to {MAX_THREADS} (or leave it out to use torch's default)")


def measure_latency(model: nn.Module, input_size: tuple[int, ...], *, device: str = "cpu",
                    batch_size: int = 1, warmup: int = 10, runs: int = 50,
                    threads: int | None = None) -> dict[str, Any]:
    """Median wall time of `runs` forward passes after `warmup` ones, in milliseconds."""
    if runs < 1 or warmup < 0 or batch_size < 1:
        raise UserError("runs and batch size must be >= 1, warm-up >= 0", where="latency options")
    check_threads(threads)
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    model = model.to(dev).eval()
    x = torch.randn(batch_size, *input_size, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times = []
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            sync()
            for _ in range(runs):
                start = time.perf_counter()
                model(x)
                sync()
                times.append((time.perf_counter() - start) * 1000.0)
    finally:
        torch.set_num_threads(old_threads)
    return {"latency_ms": statistics.median(times), "latency_runs": runs, "latency_warmup": warmup,
            "latency_batch_size": batch_size, "latency_threads": threads or old_threads,
            "latency_device": str(dev)}


def onnx_latency(model: torch.nn.Module, input_size: tuple[int, ...], *, device: str, batch_size: int,
                 warmup: int, runs: int, threads: int | None) -> float:
    """Median latency (ms) of the model exported to ONNX and run by ONNX Runtime."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("the onnxruntime backend needs the onnxruntime package", where="--backend",
                        fix="pip install onnxruntime (or use --backend torch)") from None
    from ..onnx_export import to_onnx

    x = torch.randn(batch_size, *input_size)
    data = to_onnx(model, x)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else \
        ["CPUExecutionProvider"]
    providers = [p for p in providers if p in ort.get_available_providers()]
    session = ort.InferenceSession(data, options, providers=providers)
    feed = {"input": x.numpy()}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)
