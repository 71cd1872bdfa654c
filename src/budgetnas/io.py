"""Crash-safe file writing and safe loading.

Everything budgetnas writes goes through `atomic_write`: a temporary file in the same directory,
fsync, then rename, so a reader sees the old file or the new one, never half of one. A full disk
(ENOSPC) becomes a `UserError` and leaves the previous file intact.
"""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import UserError


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file beside `path`; on success fsync it and rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            _count_write(path)
            fh.flush()
            os.fsync(fh.fileno())
        _kill_point()
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        _remove_quietly(tmp)
        if exc.errno == errno.ENOSPC:
            raise UserError("no space left on the device; the previous file is intact",
                            where=str(path), fix="free disk space, then run the same command with --resume "
                            "(without it if the run has no checkpoint.pt yet)") from exc
        raise
    except BaseException:
        _remove_quietly(tmp)
        raise


_writes = 0
_named: dict[str, int] = {}


def _count_write(path: Path) -> None:
    """Fault injection (tests and benchmarks/faults.py), inert unless the variables are set:
    BUDGETNAS_ENOSPC_AT_WRITE=N makes the N-th atomic write of the process fail as a full disk
    would (ENOSPC while flushing the temporary file); BUDGETNAS_TRACE=FILE appends one line per
    write ("write N PATH") and per named point ("point NAME N") to FILE."""
    global _writes
    _writes += 1
    _trace(f"write {_writes} {path}")
    if os.environ.get("BUDGETNAS_ENOSPC_AT_WRITE") == str(_writes):
        raise OSError(errno.ENOSPC, "No space left on device (injected)")


def _kill_point() -> None:
    """With BUDGETNAS_KILL_AT_WRITE=N the process SIGKILLs itself after writing and syncing the
    temporary file of its N-th atomic write, before the rename (the worst moment for a file)."""
    if os.environ.get("BUDGETNAS_KILL_AT_WRITE") == str(_writes):
        _die()


def fault_point(name: str) -> None:
    """A named kill point inside long loops (training steps, candidate ratings). With
    BUDGETNAS_KILL_AT=NAME:N the process SIGKILLs itself at the N-th time it passes `name`."""
    target = os.environ.get("BUDGETNAS_KILL_AT")
    tracing = "BUDGETNAS_TRACE" in os.environ
    if not (target or tracing):
        return
    _named[name] = _named.get(name, 0) + 1
    _trace(f"point {name} {_named[name]}")
    if target and target == f"{name}:{_named[name]}":
        _die()


def _trace(line: str) -> None:
    trace = os.environ.get("BUDGETNAS_TRACE")
    if trace:
        with open(trace, "a") as fh:
            fh.write(line + "\n")


def _die() -> None:
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def _remove_quietly(tmp: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    data = json.dumps(obj, indent=2, sort_keys=False, default=json_default).encode() + b"\n"
    with atomic_write(path) as fh:
        fh.write(data)


def write_jsonl(path: str | os.PathLike, rows: list[dict]) -> None:
    """Rewrite a whole JSON-lines log (logs live in checkpoints, so resume never duplicates rows)."""
    data = "".join(json.dumps(r, default=json_default) + "\n" for r in rows).encode()
    with atomic_write(path) as fh:
        fh.write(data)


def json_default(obj: Any) -> Any:
    """`json.dumps(default=...)` for what runs write: tensors and numpy values, paths."""
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # torch tensors, numpy arrays and scalars
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def read_json(path: str | os.PathLike, *, what: str = "file") -> Any:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found", where=str(path), fix="check the path")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"not valid JSON ({exc})", where=str(path),
                        fix=f"give a JSON {what}") from None


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """torch.save into a buffer, then write it atomically (a kill never leaves half a checkpoint)."""
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    with atomic_write(path) as fh:
        fh.write(buf.getbuffer())


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint without executing pickled code (weights_only=True)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError("no checkpoint to resume from", where=str(path),
                        fix="run without --resume, or point --out at the run to continue")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise UserError(f"checkpoint cannot be loaded safely ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:200]})", where=str(path),
                        fix="use a checkpoint written by budgetnas, or start without --resume") from None


def save_safetensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save

    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    with atomic_write(path) as fh:
        fh.write(data)


def load_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise UserError("tensor file not found", where=str(path), fix="check the path")
    try:
        return load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - malformed header/data
        raise UserError(f"not a valid safetensors file ({exc})", where=str(path),
                        fix="give a file written by budgetnas") from None


def within_directory(base: Path, name: str, *, where: str) -> Path:
    """Resolve `name` relative to `base`, refusing anything that escapes `base` (path traversal)."""
    if not isinstance(name, str) or not name or os.path.isabs(name):
        raise UserError(f"file reference {name!r} must be a relative file name", where=where,
                        fix="store the file beside the architecture file")
    resolved = (base / name).resolve()
    if base.resolve() not in resolved.parents:
        raise UserError(f"file reference {name!r} escapes the directory of the file", where=where,
                        fix="store the file beside the architecture file and give its plain name")
    return resolved


