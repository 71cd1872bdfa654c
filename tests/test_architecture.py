"""The shape of the code: import layers and circles, the CLI's light start, and adding a method
by registering one class (run through `budgetnas search` like the built-in ones)."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from budgetnas.cli import main

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "budgetnas"
EXAMPLES = ROOT / "examples"
# Shared parts never import a method (methods build on them, not the other way round).
SHARED = ("budgetnas.cost", "budgetnas.spaces", "budgetnas.train", "budgetnas.data", "budgetnas.runs",
          "budgetnas.arch", "budgetnas.io", "budgetnas.layers", "budgetnas.drawing", "budgetnas.config",
          "budgetnas.ranking", "budgetnas.naswot")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Modules of budgetnas imported anywhere in the file (also inside functions), except under
    `if TYPE_CHECKING:` (those never run)."""
    tree = ast.parse(path.read_text())
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and getattr(node.test, "id", "") == "TYPE_CHECKING" for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("budgetnas")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                base = ".".join(up[:len(up) - node.level + 1] + ([base] if base else []))
            if base.startswith("budgetnas"):
                for alias in node.names:  # `from pkg import module` imports that module
                    sub = f"{base}.{alias.name}"
                    found.add(sub if is_module(sub) else base)
    return found


def is_module(name: str) -> bool:
    path = SRC.parent / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def import_graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in SRC.rglob("*.py")}


def test_shared_parts_never_import_methods():
    graph = import_graph()
    # The one exception: the method registry imports the `budgetnas.methods` package to find the
    # built-in method folders (plug-in discovery); it never imports a method module itself.
    assert graph["budgetnas.runs.registry"] & {m for m in graph if m.startswith("budgetnas.methods")} \
        == {"budgetnas.methods"}
    graph["budgetnas.runs.registry"].discard("budgetnas.methods")
    wrong = {m: sorted(i for i in deps if i.startswith("budgetnas.methods"))
             for m, deps in graph.items() if m.startswith(SHARED)}
    assert not {m: d for m, d in wrong.items() if d}


def test_no_import_circles():
    graph = import_graph()
    seen, stack, cycles = {}, [], []

    def visit(node: str) -> None:  # depth-first search; a grey node reached again closes a circle
        seen[node] = "grey"
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in graph:
                continue
            if seen.get(dep) == "grey":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in seen:
                visit(dep)
        stack.pop()
        seen[node] = "black"

    for module in sorted(graph):
        if module not in seen:
            visit(module)
    assert not cycles, cycles[:3]


def test_no_file_over_400_lines():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long


def test_help_and_bad_options_never_import_torch():
    code = ("import sys, contextlib, io\n"
            "from budgetnas.cli import main\n"
            "for argv in (['--help'], ['search', 'mgas', '--help'], ['generate', '--help'], ['train', '--help'],\n"
            "             ['profile', '--help'], ['export', '--help'], ['report', '--help'],\n"
            "             ['search', 'mgas', '--no-such-option']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            "        try:\n"
            "            code = main(argv)\n"
            "        except SystemExit as exc:\n"
            "            code = exc.code\n"
            "    assert code == (2 if 'no-such-option' in argv[-1] else 0), (argv, code)\n"
            "heavy = sorted(m for m in ('torch', 'numpy', 'matplotlib', 'sklearn', 'torchvision') if m in sys.modules)\n"
            "print(','.join(heavy))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"imported for --help: {done.stdout.strip()}"


def test_a_new_method_is_one_registered_class(tmp_path):
    """A throw-away method: options + a Method subclass, registered; `budgetnas search toy` then
    writes the run directory, the summary, the log and the report like the built-in methods."""
    from pydantic import Field

    from budgetnas import load_arch
    from budgetnas.config import TargetOptions
    from budgetnas.runs import Method, register_method
    from budgetnas.runs.registry import unregister_method

    class ToyOptions(TargetOptions):
        epochs: int = Field(3, ge=1, description="steps to take")
        stop_after: int | None = Field(None, ge=1, description="stop after this many steps")

    class Toy(Method):
        def prepare(self, ctx):
            self.arch = load_arch(EXAMPLES / "small_digits.json")

        @property
        def done(self):
            return len(self.log) >= self.opts.epochs

        @property
        def progress(self):
            return len(self.log), self.opts.epochs

        def step(self):
            return {"epoch": len(self.log) + 1, "val_acc": 0.25 * (len(self.log) + 1)}

        def result(self):
            return self.arch, {"val_acc": self.log[-1]["val_acc"], "toy": True}

    register_method("toy", method=Toy, help="a throw-away method")(ToyOptions)
    try:
        assert main(["search", "toy", "--epochs", "2", "--threads", "1", "--out", str(tmp_path / "cut"),
                     "--stop-after", "1"]) == 0
        assert main(["search", "toy", "--epochs", "2", "--threads", "1", "--out", str(tmp_path / "cut"),
                     "--resume"]) == 0
        with pytest.raises(ValueError, match="already registered"):
            register_method("toy", method=Toy, help="again")(ToyOptions)
    finally:
        unregister_method("toy")
    run = tmp_path / "cut"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["method"] == "toy" and summary["toy"] is True and summary["val_acc"] == 0.5
    assert summary["params_nonzero"] == 33_398 and summary["dataset"] == "digits"
    assert [json.loads(line)["epoch"] for line in (run / "log.jsonl").read_text().splitlines()] == [1, 2]
    assert (run / "arch.json").is_file() and (run / "report.html").is_file()
    assert main(["search", "toy"]) == 2  # unknown again once removed
