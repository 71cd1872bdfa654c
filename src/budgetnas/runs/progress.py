"""Progress of a run: a bar with a total and ETA on a terminal, one line per step otherwise.

When output goes to a file or a CI log (`make demo > log`) a bar would print nothing useful
until the end, so each finished step prints one plain line instead (with the method's own
summary of the step and an ETA when the total is known).
"""
from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .method import Method


def eta_text(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    def __init__(self, method: "Method", *, enabled: bool, stream=None):
        self.method = method
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.started = time.perf_counter()
        self.start_done = method.progress[0]
        self.bar = None
        if self.tty:
            from tqdm import tqdm

            done, total = method.progress
            self.bar = tqdm(total=total, initial=done, desc=method.name or "run", unit=method.unit,
                            file=self.stream, dynamic_ncols=True)

    def eta(self) -> str | None:
        done, total = self.method.progress
        ran = done - self.start_done
        if total is None or ran <= 0:
            return None
        per_step = (time.perf_counter() - self.started) / ran
        return eta_text(per_step * max(0, total - done))

    def update(self, row: dict) -> None:
        if not self.enabled:
            return
        line = self.method.step_line(row)
        if self.bar is not None:
            done, total = self.method.progress
            if total is not None and self.bar.total != total:
                self.bar.total = total  # open-ended methods refine their estimate
            self.bar.update(done - self.bar.n)
            if line:
                self.bar.set_postfix_str(line, refresh=True)
            return
        done, total = self.method.progress
        count = f"{done}/{total}" if total is not None else f"{done}"
        eta = self.eta()
        parts = [f"[{self.method.name}] {self.method.unit} {count}", line,
                 f"ETA {eta}" if eta else ""]
        print("  ".join(p for p in parts if p), file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class EpochLines:
    """One line per finished epoch when the output is not a terminal (a terminal shows a bar)."""

    def __init__(self, name: str, *, stream=None):
        self.name, self.stream = name, stream or sys.stderr
        self.enabled = not self.stream.isatty()
        self.started, self.first = time.perf_counter(), None

    def __call__(self, row: dict, total: int) -> None:
        if not self.enabled:
            return
        epoch = row["epoch"]
        self.first = epoch - 1 if self.first is None else self.first
        per_epoch = (time.perf_counter() - self.started) / max(1, epoch - self.first)
        print(f"[{self.name}] epoch {epoch}/{total}  loss {row['train_loss']:.3f}  acc {row['train_acc']:.3f}"
              f"  ETA {eta_text(per_epoch * (total - epoch))}", file=self.stream, flush=True)
