"""run_info.json: the exact command, the resolved options and the environment of a run.

Commands call `write_run_info(out, argv, options)` once their run directory exists, so the report
can show how to reproduce the run. No host name, user name or working directory is recorded.
"""
from __future__ import annotations

import datetime as _dt
import platform
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

from .. import __version__
from ..io import read_json, write_json
from .rundir import is_main_process

RUN_INFO = "run_info.json"


def environment(device: Any = None) -> dict:
    """Versions and the compute device, without anything that identifies the machine by name."""
    import numpy
    import torch

    versions = {"python": platform.python_version(), "budgetnas": __version__, "torch": torch.__version__,
                "numpy": numpy.__version__}
    try:  # the installed version, read without importing torchvision (about 1.7 s)
        from importlib.metadata import PackageNotFoundError, version

        versions["torchvision"] = version("torchvision")
    except PackageNotFoundError:  # optional for the report: only a version string
        pass
    dev = {"type": str(device) if device is not None else "unknown", "cpu": cpu_name(),
           "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        dev["cuda"] = torch.version.cuda
        dev["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"versions": versions, "device": dev,
            # platform.platform() is OS, release, machine and libc; the node name is left out.
            "platform": platform.platform()}


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _resolved_device(options: dict, device: Any) -> Any:
    if device is not None:
        return device
    name = options.get("device") if isinstance(options, dict) else None
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def write_run_info(out_dir: str | Path, argv: Sequence[str] | None, options: Any, *,
                   device: Any = None, program: str = "budgetnas", resumed: bool = False) -> Path | None:
    """Write `out_dir/run_info.json` atomically (rank 0 only) and return its path.

    argv: the arguments after the program name (`sys.argv[1:]` when None), e.g.
    ["search", "mgas", "--target-params", "20000"]. options: the resolved options (a dict, or a
    pydantic model, dumped as JSON). device: the device actually used (default: from
    options["device"], with "auto" resolved). resumed: keep the command that started the run
    and add this one to its `resumes` (a resumed run is reproduced by its first command)."""
    if not is_main_process():
        return None
    if argv is None:
        argv = sys.argv[1:]
    if hasattr(options, "model_dump"):
        options = options.model_dump(mode="json")
    options = dict(options or {})
    argv = [str(a) for a in argv]
    command = shlex.join([program, *argv])
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    path = Path(out_dir) / RUN_INFO
    if resumed and path.is_file():
        info = read_json(path, what="run_info.json")
        info["resumes"] = [*info.get("resumes", []), {"command": command, "created": now}]
    else:
        info = {"format": "budgetnas.run_info", "version": 1, "command": command, "argv": argv,
                "options": options, "created": now, **environment(_resolved_device(options, device))}
    write_json(path, info)
    return path
