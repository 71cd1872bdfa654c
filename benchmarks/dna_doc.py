"""Write one Markdown section of docs/bench_dna.md (other sections are kept)."""
from __future__ import annotations

import re
from pathlib import Path

from budgetnas.io import atomic_write

HEADER = "# DNA benchmarks\n\nEach section is rewritten by the script named in it.\n"


def replace_section(path: Path, title: str, body: str) -> None:
    text = path.read_text() if path.is_file() else HEADER
    section = f"## {title}\n\n{body.rstrip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    with atomic_write(path) as fh:
        fh.write(text.rstrip().encode() + b"\n")
