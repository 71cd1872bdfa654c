"""`budgetnas export ARCH.json --weights W --format onnx|torchscript --out FILE`."""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import typing
import warnings
from pathlib import Path

import torch

from .arch import build_model, load_arch
from .cli import one_line
from .errors import UserError
from .io import atomic_write, load_safetensors


MAX_BATCH_SIZE = 1024  # the example only fixes shapes; tracing keeps every activation of the batch


def opset_range() -> tuple[int, int]:
    """Opsets the installed (TorchScript-based, dynamo=False) ONNX exporter supports."""
    try:
        from torch.onnx import _constants

        return int(_constants.ONNX_MIN_OPSET), int(getattr(
            _constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", _constants.ONNX_MAX_OPSET))
    except (ImportError, AttributeError):  # pragma: no cover - other torch layouts
        return 7, 17


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("arch", help="architecture file (arch.json)")
    parser.add_argument("--weights", required=True,
                        help="model.safetensors written by `budgetnas train` (or its run directory)")
    parser.add_argument("--format", required=True, choices=["onnx", "torchscript"], dest="fmt")
    parser.add_argument("--out", required=True, help="output file")
    low, high = opset_range()
    parser.add_argument("--batch-size", type=int, default=1,
                        help=f"example batch size, 1 to {MAX_BATCH_SIZE} (dynamic in ONNX)")
    parser.add_argument("--opset", type=int, default=min(17, high),
                        help=f"ONNX opset version, {low} to {high}")


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


class ExporterError(Exception):
    """The ONNX/TorchScript exporter failed on a valid model and valid options (exit 1)."""

    def __init__(self, fmt: str, exc: BaseException):
        super().__init__(f"the {fmt} exporter failed on this model ({type(exc).__name__}: {_first_line(exc)})")


def export_onnx(model: torch.nn.Module, example: torch.Tensor, out: Path, opset: int) -> None:
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=out.parent if out.parent.exists() else None)
    os.close(fd)
    try:
        torch.onnx.export(model, (example,), tmp, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=opset, dynamo=False)
        data = Path(tmp).read_bytes()
    except Exception as exc:  # noqa: BLE001 - sorted into the user's values or an exporter failure
        if "support for this operator was added in version" in str(exc).lower():
            raise UserError(f"the model cannot be exported at opset {opset} ({_first_line(exc)})",
                            where="--opset", fix=f"give a newer opset (up to {opset_range()[1]})") from None
        _raise_exporter_error("onnx", exc, example)
    finally:
        Path(tmp).unlink(missing_ok=True)
    with atomic_write(out) as fh:
        fh.write(data)


def export_torchscript(model: torch.nn.Module, example: torch.Tensor, out: Path) -> None:
    try:
        traced = torch.jit.trace(model, example)
        buf = io.BytesIO()
        torch.jit.save(traced, buf)
    except Exception as exc:  # noqa: BLE001 - sorted into the user's values or an exporter failure
        _raise_exporter_error("torchscript", exc, example)
    with atomic_write(out) as fh:
        fh.write(buf.getbuffer())


def _raise_exporter_error(fmt: str, exc: BaseException, example: torch.Tensor) -> typing.NoReturn:
    text = str(exc).lower()
    if isinstance(exc, MemoryError) or "out of memory" in text or "not enough memory" in text:
        raise UserError(f"tracing a batch of {example.shape[0]} inputs ran out of memory", where="--batch-size",
                        fix="give a smaller batch size (e.g. 1; ONNX keeps the batch dimension dynamic)") from None
    raise ExporterError(fmt, exc) from exc


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return one_line(lines[0][:300]) if lines else "no message"


def check_options(args: argparse.Namespace) -> None:
    if not 1 <= args.batch_size <= MAX_BATCH_SIZE:
        raise UserError(f"batch size {args.batch_size} is out of range", where="--batch-size",
                        fix=f"give 1 to {MAX_BATCH_SIZE} (ONNX exports keep the batch dimension dynamic)")
    low, high = opset_range()
    if not low <= args.opset <= high:
        raise UserError(f"opset {args.opset} is not supported by the installed exporter", where="--opset",
                        fix=f"give {low} to {high} (e.g. {min(17, high)})")


def run(args: argparse.Namespace) -> int:
    check_options(args)
    model, shape = load_trained_model(args.arch, args.weights)
    try:
        example = torch.randn(args.batch_size, *shape)
    except (RuntimeError, MemoryError):
        raise UserError(f"an example batch of {args.batch_size} inputs of shape {list(shape)} does not "
                        "fit in memory", where="--batch-size", fix="give a smaller batch size (e.g. 1)") from None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        # no_grad: the traced graph is the same, without autograd keeping every activation
        with warnings.catch_warnings(), torch.no_grad():  # and no exporter chatter
            warnings.simplefilter("ignore")
            _export(model, example, out, args)
    except ExporterError as exc:  # not the user's fault: exit 1, still one line
        print(f"budgetnas: error: {exc}; nothing was written to {one_line(str(out))}", file=sys.stderr)
        return 1
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
