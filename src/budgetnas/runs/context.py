"""RunContext: everything a command does around its work, in one place.

Threads, seeds, device and ranks; the dataset; the run directory with its lock and
run_info.json; checkpoints that carry the options they were written with (a resume with other
options is refused, naming the option); the progress output; and at the end the architecture
file, a typed summary filled through `cost.profile`, the printed table, the "next:" hint and the
report. Every command uses it (`search <method>`, `generate`, `train`).
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import torch

from .. import distributed as dist_utils
from ..data import Dataset, load_dataset_for
from ..errors import UserError
from ..io import load_checkpoint, save_checkpoint, write_json, write_jsonl
from .rundir import is_main_process, prepare_run_dir, resolve_device, seed_everything, set_threads
from .progress import Progress
from .summary import Summary, print_table

if TYPE_CHECKING:
    from ..arch import Arch
    from .method import Method

CHECKPOINT = "checkpoint.pt"
# Options that may change between a run and its resume: where and how it runs, not what it does.
RESUME_FREE = frozenset({"out", "resume", "report", "threads", "device", "stop_after", "config"})


class RunContext:
    """One run of a command. `open()` creates (or reopens) the run directory."""

    def __init__(self, command: str, opts: Any, *, progress: bool = True, load_data: bool = True,
                 resume_free: frozenset[str] = frozenset()):
        self.command, self.opts, self.show_progress = command, opts, progress
        self.resume_free = RESUME_FREE | resume_free
        set_threads(opts.threads)
        seed_everything(opts.seed)
        device = resolve_device(opts.device)
        self.rank, self.world = dist_utils.init(device)
        self.device: torch.device = dist_utils.device_for_rank(device)
        self.dataset: Dataset | None = load_dataset_for(opts) if load_data else None
        self.out: Path | None = None
        self.seconds = 0.0  # work time over this run and the runs it resumes
        self._started = time.perf_counter()

    # ---------------------------------------------------------------- the run directory
    def open(self, *, resume: bool | None = None) -> Path:
        """Create (or, with --resume, reopen and lock) the run directory; record run_info.json."""
        from .provenance import write_run_info

        resume = self.opts.resume if resume is None else resume
        self.out = prepare_run_dir(self.opts.out, self.command, resume=resume)
        write_run_info(self.out, None, self.opts, device=self.device, resumed=resume)
        # No rank may write before rank 0 has locked the directory and removed the temporary
        # files of a killed run: it would delete another rank's file in mid-write.
        dist_utils.barrier()
        return self.out

    @property
    def is_main(self) -> bool:
        return self.rank == 0 and is_main_process()

    # ---------------------------------------------------------------- checkpoints
    def fingerprint(self) -> dict:
        """The options that shape the result (all but where and how the run executes)."""
        dumped = self.opts.model_dump(mode="json")
        return {k: v for k, v in dumped.items() if k not in self.resume_free}

    def save_checkpoint(self, state: dict, *, log: list[dict] | None = None,
                        name: str = CHECKPOINT) -> None:
        """Atomically write the method's state with the options, the log and the work time."""
        self.seconds += time.perf_counter() - self._started
        self._started = time.perf_counter()
        if not self.is_main:
            return
        save_checkpoint(self.out / name, {"options": self.fingerprint(), "method": state,
                                          "log": log or [], "seconds": self.seconds})
        if log is not None:
            write_jsonl(self.out / "log.jsonl", log)

    def load_checkpoint(self, name: str = CHECKPOINT) -> dict:
        """The checkpoint to resume from, refused when its options differ from these."""
        path = self.out / name
        state = load_checkpoint(path)
        saved = state.get("options") if isinstance(state, dict) else None
        if not isinstance(saved, dict) or "method" not in state:
            raise UserError("this checkpoint was written by an older budgetnas", where=str(path),
                            fix="start the run again in a new --out")
        check_same_options(saved, self.fingerprint(), where=self.out)
        self.seconds = float(state.get("seconds", 0.0))
        self._started = time.perf_counter()
        return state

    # ---------------------------------------------------------------- progress
    @contextlib.contextmanager
    def progress(self, method: "Method") -> Iterator[Progress]:
        bar = Progress(method, enabled=self.show_progress and self.is_main)
        try:
            yield bar
        finally:
            bar.close()

    # ---------------------------------------------------------------- the end
    def summary(self, method: "Method", arch: "Arch | None", extras: dict) -> Summary:
        """The typed summary: sizes through `cost.profile` (none without an architecture), the
        rest from the method."""
        from ..cost import profile
        from ..train.loop import peak_memory_mb

        sizes = profile(arch) if arch is not None else dict.fromkeys(("params_dense", "params_nonzero", "macs"))
        peaks = [r["peak_memory_mb"] for r in method.log if isinstance(r.get("peak_memory_mb"), (int, float))]
        fields = {"method": method.name, "dataset": self.opts.dataset, "target": {}, "val_acc": None,
                  "search_seconds": round(self.seconds, 2),
                  "peak_memory_mb": max(peaks) if peaks else round(peak_memory_mb(self.device), 1),
                  "seed": self.opts.seed, "params_dense": sizes["params_dense"],
                  "params_nonzero": sizes["params_nonzero"], "macs": sizes["macs"]}
        known = {k: extras.pop(k) for k in list(extras) if k in Summary.model_fields}
        return Summary(**{**fields, **known}, extras=extras)

    def finish(self, method: "Method", arch: "Arch | None", extras: dict) -> Summary:
        """Write arch.json (when there is an architecture) and summary.json, print the result
        table and what to do next, and write the report."""
        from ..arch import save_arch
        from ..report import report_at_end

        summary = self.summary(method, arch, dict(extras))
        if self.is_main:
            write_jsonl(self.out / "log.jsonl", method.log)
            if arch is not None:
                save_arch(arch, self.out)
            write_json(self.out / "summary.json", summary.to_json())
            rows = {**summary.table_rows(), **method.table_rows(summary.to_json()),
                    "run directory": str(self.out)}
            print_table(method.title, rows)
            if arch is not None:
                print(f"next: {self.next_command()}   (retraining gives the network's accuracy)")
        report_at_end(self.out, getattr(self.opts, "report", False))
        return summary

    def next_command(self) -> str:
        """The retraining command for the found architecture, with this run's data options."""
        o = self.opts
        data = "" if o.dataset == "digits" else f" --dataset {o.dataset}"
        if o.data_dir:
            data += f" --data-dir {o.data_dir}"
        if o.image_size:
            data += f" --image-size {o.image_size}"
        return f"budgetnas train {self.out / 'arch.json'}{data} --out {self.out}-train"


def check_same_options(saved: dict, current: dict, *, where: str | Path) -> None:
    """Refuse to resume a run with other options, naming the first option that differs."""
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            raise UserError(f"the options differ from those of the run being resumed: "
                            f"--{key.replace('_', '-')} is {current.get(key)!r} now but was "
                            f"{saved.get(key)!r}", where=str(where),
                            fix="resume with the same options (or start a new --out)")
