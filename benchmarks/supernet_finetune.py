"""Does a short fine-tune of each subnet make the supernet's ranking follow retrained accuracy?

docs/bench_nag.md: on a CIFAR-10 subset the held-out accuracy of subnets with inherited weights
ranks 20 subnets no better than chance against their accuracy retrained from scratch (Kendall tau
0.08-0.17), with a truth that is stable across retraining seeds and lengths (tau 0.65). This
script measures one remedy on the same 20 subnets: judge each one by its held-out accuracy after
E epochs of fine-tuning from its inherited weights (SGD + cosine on the search-training split,
`train.loop.quick_fit`), for every E in --epochs, beside the same E epochs from a random start
(does inheriting help at all?). `--judge-on test|outside` judges on 10,000 images instead of the
1,000 held-out ones (the test split, or training images the subset left out), to tell the noise of
the judging split from the ranking of the weights.

    python benchmarks/supernet_finetune.py --supernet RUN_DIR --kept docs/data/supernet_cifar10_e45_e30.json \\
        --dataset imagefolder --data-dir CIFAR10_JPEG --image-size 16 --subset 5000 --epochs 0,1,3

RUN_DIR is a `budgetnas search supernet` run trained with the settings of the kept file (the
script says when the subnets' inherited held-out accuracy differs from the kept one: then only
the rows of this run compare with each other). Every measured subnet is cached
in --cache (JSON), so an interrupted run goes on where it stopped.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from budgetnas.data import load_dataset  # noqa: E402
from budgetnas.io import read_json, write_json  # noqa: E402
from budgetnas.train.loop import evaluate, quick_fit  # noqa: E402


def reinitialised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """The same network with fresh weights (each layer's own default initialisation)."""
    torch.manual_seed(seed)
    model = copy.deepcopy(model)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
    return model


def measure(source, dataset, row: list[int], epochs: int, start: str, judge, a) -> float:
    """Accuracy on the split `judge` of subnet `row` after `epochs` of fine-tuning from `start`."""
    model = source.subnet(tuple(row))
    if start == "scratch":
        model = reinitialised(model, a.seed)
    if epochs:
        quick_fit(model, dataset, epochs=epochs, batch_size=a.batch_size, seed=a.seed, device=source.device,
                  lr=a.lr, what="fine-tuning")
    return evaluate(model, dataset, judge, source.device)


def outside_indices(y, subset: int, n: int):
    """Indices of `n` training images that a `subset` of `y` leaves out, from a seeded draw."""
    import numpy as np

    from budgetnas.data import SPLIT_SEED, _stratified_head

    left = np.setdiff1d(np.arange(len(y)), _stratified_head(y, subset).numpy())
    return np.sort(np.random.default_rng(SPLIT_SEED + 2).permutation(left)[:n])


def outside_subset(a, n: int = 10_000):
    """`n` training images that --subset left out (never seen by the supernet, never the test
    split): a held-out split 10x the size of the subset's own."""
    from budgetnas.data import Split
    from budgetnas.data.sources import LOADERS

    raw = LOADERS[a.dataset](data_dir=Path(a.data_dir) if a.data_dir else None, download=False,
                             image_size=a.image_size, skip_bad_images=False)
    x, y = raw["train"]
    pick = outside_indices(y, a.subset, n)
    return Split(x[pick], y[pick])


def taus(results: dict, subnets: list[dict], truths: dict[str, list[float]]) -> list[str]:
    from scipy.stats import kendalltau

    lines = []
    for name, values in sorted(results.items()):
        if len(values) < len(subnets):
            continue
        scores = [values[str(i)] for i in range(len(subnets))]
        cells = [f"{truth}: {tau.statistic:+.2f} (p {tau.pvalue:.2f})"
                 for truth, tau in ((label, kendalltau(scores, t)) for label, t in truths.items())]
        lines.append(f"{name:>14}  " + "  ".join(cells))
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--supernet", type=Path, required=True)
    p.add_argument("--kept", type=Path, required=True, help="kept supernet benchmark file with the 20 subnets")
    p.add_argument("--kept-more", type=Path, nargs="*", default=[],
                   help="more kept files with other truths for the same subnets (e.g. 3 seeds of 10 epochs)")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--subset", type=int, default=None)
    p.add_argument("--epochs", default="0,1,3", help="fine-tuning epochs to compare (comma list)")
    p.add_argument("--starts", default="inherited,scratch")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--judge-on", choices=("val", "test", "outside"), default="val",
                   help="split the subnets are judged on: the held-out split NAG would use, the 10x larger "
                        "test split, or 10,000 training images outside --subset (does the held-out split's "
                        "noise limit the ranking?)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", type=Path, default=ROOT / ".cache" / "supernet_finetune.json")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from budgetnas.methods.nag.supernet_source import SupernetSource

    subnets = read_json(a.kept)["steps"]["kendall-subnets"]
    truths = {a.kept.stem: [s["retrained_test"] for s in subnets]}
    for extra in a.kept_more:
        truths[extra.stem] = [s["retrained_test"] for s in read_json(extra)["steps"]["kendall-subnets"]]
    dataset = load_dataset(a.dataset, a.data_dir, image_size=a.image_size, subset=a.subset)
    source = SupernetSource(a.supernet, dataset, "macs", device=torch.device("cpu"), threads=a.threads)
    judge = outside_subset(a) if a.judge_on == "outside" else getattr(dataset, a.judge_on)
    results = read_json(a.cache) if a.cache.is_file() else {}
    for start in a.starts.split(","):
        for epochs in [int(e) for e in a.epochs.split(",")]:
            if start == "scratch" and epochs == 0:
                continue  # chance
            name = (f"{start}-e{epochs}-lr{a.lr:g}" if epochs else "inherited-e0") + \
                ("" if a.judge_on == "val" else f"-{a.judge_on}")
            values = results.setdefault(name, {})
            for i, sub in enumerate(subnets):
                if str(i) in values:
                    continue
                t0 = time.time()
                values[str(i)] = measure(source, dataset, sub["row"], epochs, start, judge, a)
                if name == "inherited-e0" and abs(values[str(i)] - sub["inherited_val"]) > 1e-9:
                    print(f"note: subnet {i}: inherited held-out {values[str(i)]:.4f}, kept "
                          f"{sub['inherited_val']:.4f}: not the kept supernet (compare the rows of this run only)")
                write_json(a.cache, results)
                print(f"{name} subnet {i}: {values[str(i)]:.4f} ({time.time() - t0:.0f} s)", flush=True)
    print("\n".join(taus(results, subnets, truths)))


if __name__ == "__main__":
    main()
