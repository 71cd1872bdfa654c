"""The method contract: a method fills in a few hooks; `run_method` owns the lifecycle.

    class MyMethod(Method):
        def check(self, ctx): ...          # refuse bad options before a run directory exists
        def prepare(self, ctx): ...        # build models and optimizers
        def step(self) -> dict: ...        # one unit of work (an epoch, a candidate); a log row
        done / total                       # progress
        def state_dict(self) / load_state_dict(self, state)   # everything --resume needs
        def result(self) -> (Arch, extras) # the architecture and summary.json fields of its own

The default `run(ctx)` loops over `step()`, checkpointing after every step (exact resume), and
honours `--stop-after`. Methods whose work is not a flat loop (DNA's blocks, NAG's phases)
override `run(ctx)` and checkpoint where they need to.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch-free at import: the CLI imports this module for --help
    from ..arch import Arch
    from .context import RunContext


class Method:
    """Base class of every search method (see the module docstring)."""

    name: str = ""
    title: str = "search finished"  # first line of the printed result table
    unit: str = "epoch"  # what one step is, for progress output
    needs_data: bool = True  # False: the run reads no dataset (its --dataset only names a shape)
    resume_free: frozenset[str] = frozenset()  # options a resumed run may change (beyond where it runs)

    def __init__(self, opts: Any, ctx: "RunContext"):
        self.opts, self.ctx = opts, ctx
        self.log: list[dict] = []

    # ---------------------------------------------------------------- hooks
    def check(self, ctx: "RunContext") -> None:
        """Validate the options against the data; raise UserError (exit 2) before any file is
        written, so a refused target leaves nothing behind."""

    def prepare(self, ctx: "RunContext") -> None:
        """Build the state of a fresh run (called before `load_state_dict` on resume)."""

    def step(self) -> dict:
        """One unit of work; returns its log row."""
        raise NotImplementedError

    @property
    def done(self) -> bool:
        raise NotImplementedError

    @property
    def progress(self) -> tuple[int, int | None]:
        """(steps done, total steps or None when open-ended)."""
        return len(self.log), None

    def open_run_dir(self, ctx: "RunContext") -> None:
        """Create (or reopen) the run directory."""
        ctx.open()

    def restore(self, ctx: "RunContext") -> None:
        """With --resume: load the last checkpoint (its options must match these)."""
        if self.opts.resume:
            state = ctx.load_checkpoint()
            self.log = list(state.get("log", []))
            self.load_state_dict(state["method"])

    def stopped_line(self, ctx: "RunContext") -> str:
        """What to print when this process stopped before the end (--stop-after)."""
        done, _ = self.progress
        return f"stopped after {self.unit} {done}; continue with --out {ctx.out} --resume"

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""

    def result(self) -> tuple["Arch", dict]:
        """The found architecture and the summary fields beyond the common ones."""
        raise NotImplementedError

    def table_rows(self, summary: dict) -> dict:
        """Rows of the printed result table beyond the common ones."""
        return {}

    def step_line(self, row: dict) -> str:
        """One line about a finished step for the progress output."""
        return ""

    # ---------------------------------------------------------------- the default loop
    def run(self, ctx: "RunContext") -> bool:
        """Step until done (True) or until `--stop-after` steps ran in this process (False)."""
        stop_after = getattr(self.opts, "stop_after", None)
        done_here = 0
        with ctx.progress(self) as bar:
            while not self.done:
                if stop_after is not None and done_here >= stop_after:
                    return False
                row = self.step()
                self.log.append(row)
                ctx.save_checkpoint(self.state_dict(), log=self.log)
                bar.update(row)
                done_here += 1
        return True


def run_method(name: str, opts: Any, *, progress: bool = True) -> Path | None:
    """Run (or resume) method `name` with validated options; returns the run directory, or None
    when `--stop-after` ended this process's share of the work (the run stays resumable)."""
    from .context import RunContext
    from .registry import get_method
    from .rundir import release_locks

    entry = get_method(name)
    cls = entry.method_class()
    ctx = RunContext("-".join(entry.command), opts, progress=progress, load_data=cls.needs_data,
                     resume_free=cls.resume_free)
    method = cls(opts, ctx)
    method.name = entry.name
    method.check(ctx)
    method.open_run_dir(ctx)
    try:
        method.prepare(ctx)
        method.restore(ctx)
        if not method.run(ctx):
            print(method.stopped_line(ctx))
            return None
        arch, extras = method.result()
        ctx.finish(method, arch, extras)
        return ctx.out
    finally:
        release_locks(ctx.out)
