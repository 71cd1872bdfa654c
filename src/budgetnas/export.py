"""`budgetnas export ARCH.json --weights W --format onnx|torchscript --out FILE`."""
from __future__ import annotations

import argparse
import io
import os
import tempfile
import warnings
from pathlib import Path

import torch

from .arch import build_model, load_arch
from .errors import UserError
from .io import atomic_write, load_safetensors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("arch", help="architecture file (arch.json)")
    parser.add_argument("--weights", required=True,
                        help="model.safetensors written by `budgetnas train` (or its run directory)")
    parser.add_argument("--format", required=True, choices=["onnx", "torchscript"], dest="fmt")
    parser.add_argument("--out", required=True, help="output file")
    parser.add_argument("--batch-size", type=int, default=1, help="example batch size (dynamic in ONNX)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset version")


def load_trained_model(arch_path: str | Path, weights: str | Path) -> tuple[torch.nn.Module, tuple]:
    arch = load_arch(arch_path)
    weights = Path(weights)
    if weights.is_dir():
        weights = weights / "model.safetensors"
    state = load_safetensors(weights)
    model = build_model(arch)
    missing, unexpected = set(model.state_dict()) - set(state), set(state) - set(model.state_dict())
    if missing or unexpected:
        raise UserError(f"weights do not match the architecture (missing {len(missing)}, "
                        f"unexpected {len(unexpected)} tensors, e.g. "
                        f"{sorted(missing or unexpected)[0]!r})", where=str(weights),
                        fix="use the model.safetensors trained for this arch.json")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"weight shapes do not match the architecture ({str(exc).splitlines()[-1].strip()})",
                        where=str(weights), fix="use the weights trained for this arch.json") from None
    cfg = arch.config
    shape = (cfg.get("in_channels", 3), cfg["input_size"], cfg["input_size"])
    return model.eval(), shape


def export_onnx(model: torch.nn.Module, example: torch.Tensor, out: Path, opset: int) -> None:
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=out.parent if out.parent.exists() else None)
    os.close(fd)
    try:
        torch.onnx.export(model, (example,), tmp, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=opset, dynamo=False)
        data = Path(tmp).read_bytes()
    finally:
        Path(tmp).unlink(missing_ok=True)
    with atomic_write(out) as fh:
        fh.write(data)


def export_torchscript(model: torch.nn.Module, example: torch.Tensor, out: Path) -> None:
    traced = torch.jit.trace(model, example)
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    with atomic_write(out) as fh:
        fh.write(buf.getbuffer())


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise UserError("must be >= 1", where="--batch-size")
    model, shape = load_trained_model(args.arch, args.weights)
    example = torch.randn(args.batch_size, *shape)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # exporter chatter about tracing/deprecations
        warnings.simplefilter("ignore")
        _export(model, example, out, args)
    print(f"wrote {out} ({args.fmt}, input {list(example.shape)})")
    return 0


def _export(model: torch.nn.Module, example: torch.Tensor, out: Path, args: argparse.Namespace) -> None:
    if args.fmt == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise UserError("ONNX export needs the onnx extra", where="--format onnx",
                            fix="pip install 'budgetnas[onnx]'") from None
        export_onnx(model, example, out, args.opset)
    else:
        export_torchscript(model, example, out)
