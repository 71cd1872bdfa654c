"""`budgetnas export ARCH.json --weights W --format onnx|torchscript --out FILE`."""
from __future__ import annotations

import argparse
import io
import sys
import typing
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UserError, one_line
from .io import atomic_write, load_safetensors
from .onnx_export import DEFAULT_OPSET, MIN_OPSET, opset_range, to_onnx

if TYPE_CHECKING:
    import torch


MAX_BATCH_SIZE = 1024  # the example only fixes shapes; tracing keeps every activation of the batch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("arch", help="architecture file (arch.json), or a run directory holding one")
    parser.add_argument("--weights", required=True,
                        help="model.safetensors written by `budgetnas train` (or its run directory)")
    parser.add_argument("--format", required=True, choices=["onnx", "torchscript"], dest="fmt")
    parser.add_argument("--out", required=True,
                        help="output file; an existing directory gets model.onnx (or model.pt) inside")
    parser.add_argument("--batch-size", type=int, default=1,
                        help=f"example batch size, 1 to {MAX_BATCH_SIZE} (dynamic in ONNX)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset version, {MIN_OPSET} or newer (default {DEFAULT_OPSET})")


def load_trained_model(arch_path: str | Path, weights: str | Path) -> tuple["torch.nn.Module", tuple]:
    """The trained network in its inference form (the space's `deploy`: BatchNorms folded,
    same-edge ops merged; the same function) and its input shape."""
    from .arch import build_model, load_arch
    from .spaces import get_space

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
    return get_space(arch.space).deploy(model.eval()), shape


class ExporterError(Exception):
    """The ONNX/TorchScript exporter failed on a valid model and valid options (exit 1)."""

    def __init__(self, fmt: str, exc: BaseException):
        super().__init__(f"the {fmt} exporter failed on this model ({type(exc).__name__}: {_first_line(exc)})")


def export_onnx(model: "torch.nn.Module", example: "torch.Tensor", out: Path, opset: int) -> None:
    try:
        data = to_onnx(model, example, opset=opset)
    except Exception as exc:  # noqa: BLE001 - sorted into the user's values or an exporter failure
        _raise_exporter_error("onnx", exc, example)
    with atomic_write(out) as fh:
        fh.write(data)


def export_torchscript(model: "torch.nn.Module", example: "torch.Tensor", out: Path) -> None:
    import torch

    try:
        traced = torch.jit.trace(model, example)
        buf = io.BytesIO()
        torch.jit.save(traced, buf)
    except Exception as exc:  # noqa: BLE001 - sorted into the user's values or an exporter failure
        _raise_exporter_error("torchscript", exc, example)
    with atomic_write(out) as fh:
        fh.write(buf.getbuffer())


def _raise_exporter_error(fmt: str, exc: BaseException, example: "torch.Tensor") -> typing.NoReturn:
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
                        fix=f"give {low} to {high} (e.g. {DEFAULT_OPSET})")


def run(args: argparse.Namespace) -> int:
    import torch

    check_options(args)
    model, shape = load_trained_model(args.arch, args.weights)
    try:
        example = torch.randn(args.batch_size, *shape)
    except (RuntimeError, MemoryError):
        raise UserError(f"an example batch of {args.batch_size} inputs of shape {list(shape)} does not "
                        "fit in memory", where="--batch-size", fix="give a smaller batch size (e.g. 1)") from None
    out = output_path(Path(args.out), args.fmt)
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


def output_path(out: Path, fmt: str) -> Path:
    """--out as a file to write: an existing directory gets model.onnx / model.pt inside; a path
    through a file is refused."""
    if out.is_dir():
        out = out / ("model.onnx" if fmt == "onnx" else "model.pt")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError("a part of this path is a file, not a directory", where=str(out),
                        fix="give --out a file name in a directory (or an existing directory)") from None
    if out.is_dir():
        raise UserError("is a directory", where=str(out), fix="give --out a file name")
    return out


def _export(model: "torch.nn.Module", example: "torch.Tensor", out: Path, args: argparse.Namespace) -> None:
    if args.fmt == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise UserError("ONNX export needs the onnx extra", where="--format onnx",
                            fix="pip install 'budgetnas[onnx]'") from None
        export_onnx(model, example, out, args.opset)
    else:
        export_torchscript(model, example, out)
