"""Batch-1 latency of searched networks against a DARTS V2 reference of the same size.

For each ARCH (arch.json or run directory) the reference is the DARTS V2 genotype
(examples/darts_v2.json: its normal cell everywhere, its reduction cell at the reduction
positions) with the same number of cells, its widths scaled (spaces/darts_cells.py) to ARCH's
non-zero parameters. Both are timed in their inference form (BN folded, same-edge ops merged;
`--as-built` for the training form), one torch thread, inference mode, as
`budgetnas profile --latency --threads 1` does. On a machine shared with other work, wall times of
separate runs vary by 2-4x from minute to minute, so the two networks run alternately, one forward
each, and the ratio of their median times is taken; that is repeated --repeats times and the
median ratio reported, with its range.

    python benchmarks/latency_pairs.py runs/X [...] [--pairs 300] [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from budgetnas import build_model, load_arch  # noqa: E402
from budgetnas.cost import count_nonzero  # noqa: E402
from budgetnas.spaces import get_space  # noqa: E402
from budgetnas.spaces.darts_cells import NetShape, make_arch, reduction_cells, scale_to_target  # noqa: E402


def v2_cells(layers: int) -> list[list[dict]]:
    cells = load_arch(ROOT / "examples" / "darts_v2.json").genotype["cells"]
    normal = next(c["edges"] for c in cells if not c["reduction"])
    reduce = next(c["edges"] for c in cells if c["reduction"])
    reductions = set(reduction_cells(layers))
    return [reduce if i in reductions else normal for i in range(layers)]


def paired(model, reference, shape, pairs: int) -> tuple[float, float]:
    x = torch.randn(1, *shape)
    mine, theirs = [], []
    with torch.inference_mode():
        for _ in range(20):
            model(x)
            reference(x)
        for _ in range(pairs):
            start = time.perf_counter()
            model(x)
            mine.append(time.perf_counter() - start)
            start = time.perf_counter()
            reference(x)
            theirs.append(time.perf_counter() - start)
    return statistics.median(mine) * 1e3, statistics.median(theirs) * 1e3


def timed_form(arch, as_built: bool):
    model = build_model(arch).eval()
    return model if as_built else get_space(arch.space).deploy(model).eval()


def compare(path: str, pairs: int, repeats: int, as_built: bool) -> dict:
    arch = load_arch(path)
    cfg = arch.config
    shape = (cfg["in_channels"], cfg["input_size"], cfg["input_size"])
    size = count_nonzero(build_model(arch))
    layers = len(arch.genotype["cells"])
    net_shape = NetShape(cfg["in_channels"], cfg["num_classes"], cfg["input_size"])
    scaled = scale_to_target(lambda w: make_arch(v2_cells(layers), w, net_shape), size, "params",
                             layers=layers)
    model, reference = timed_form(arch, as_built), timed_form(scaled.arch, as_built)
    runs = [paired(model, reference, shape, pairs) for _ in range(repeats)]
    ratios = sorted(a / b for a, b in runs)
    return {"arch": str(path), "params": size, "ops": sum(len(c["edges"]) for c in arch.genotype["cells"]),
            "reference_params": scaled.size, "reference_widths": list(scaled.widths.stages),
            "latency_ms": round(statistics.median(a for a, _ in runs), 3),
            "reference_latency_ms": round(statistics.median(b for _, b in runs), 3),
            "ratio": round(statistics.median(ratios), 3),
            "ratio_range": [round(ratios[0], 3), round(ratios[-1], 3)],
            "form": "as built" if as_built else "inference form"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archs", nargs="+")
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--as-built", action="store_true", help="time the training form")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for path in args.archs:
        print(json.dumps(compare(path, args.pairs, args.repeats, args.as_built)), flush=True)


if __name__ == "__main__":
    main()
