"""The run directory and its lock, and where a run computes: device, seeds, threads."""
from __future__ import annotations

import atexit
import datetime as _dt
import os
import random
from pathlib import Path

from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    import torch

LOCK_NAME = ".lock"


def resolve_device(name: str) -> "torch.device":
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("CUDA is not available on this machine", where="--device",
                        fix="use --device cpu or auto")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def prepare_run_dir(out: Path | None, command: str, *, resume: bool,
                    checkpoint: str = "checkpoint.pt") -> Path:
    """Create (or, with resume, reopen) the run directory and lock it against a second writer.

    Every rank computes the same directory; only rank 0 creates and locks it."""
    if out is None:
        if resume:
            raise UserError("--resume needs --out pointing at the run to continue", where="--resume")
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{command}-{stamp}"
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError("is a file, not a run directory", where=str(out),
                        fix="give --out a directory (a new one, or a run to continue with --resume)")
    if resume and not (out / checkpoint).is_file():
        raise UserError(f"no {checkpoint} to resume from", where=str(out),
                        fix="run without --resume to start afresh")
    if not resume and (out / checkpoint).is_file():
        raise UserError("this directory already holds a run", where=str(out),
                        fix="pass --resume to continue it, or choose another --out")
    if is_main_process():
        try:
            out.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise UserError("a part of this path is a file, not a directory", where=str(out),
                            fix="give --out a path inside a directory") from None
        acquire_lock(out)
        remove_stale_temp_files(out)
    return out


def remove_stale_temp_files(directory: Path) -> None:
    """Temporary files of a process killed mid-write (their targets are intact); safe to delete
    once we hold the directory's lock."""
    for tmp in directory.rglob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def acquire_lock(directory: Path) -> None:
    """Refuse a directory that another live process is writing to (stale locks are taken over)."""
    lock = directory / LOCK_NAME
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            pid = int(lock.read_text().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid and pid != os.getpid() and _alive(pid):
            raise UserError(f"another budgetnas process (pid {pid}) is using this directory",
                            where=str(directory), fix="wait for it to finish or choose another --out") from None
        lock.unlink(missing_ok=True)
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    with os.fdopen(fd, "w") as fh:
        fh.write(str(os.getpid()))
    _HELD.add(lock)


_HELD: set[Path] = set()  # the locks this process took


@atexit.register
def release_locks(directory: Path | None = None) -> None:
    """Remove the locks this process holds (those under `directory`, or all of them). Called when
    a command ends, so a later run in the same process (a notebook, the tests) or another process
    finds the directory free, and at exit."""
    for lock in list(_HELD):
        if directory is None or Path(directory) in lock.parents:
            if _owned(lock):
                lock.unlink(missing_ok=True)
            _HELD.discard(lock)


def _owned(lock: Path) -> bool:
    try:
        return int(lock.read_text().strip()) == os.getpid()
    except (OSError, ValueError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
