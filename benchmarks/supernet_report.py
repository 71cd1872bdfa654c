"""The markdown section of supernet_digits.py (written into docs/bench_nag.md with --doc)."""
from __future__ import annotations

import platform
import re
import subprocess
from pathlib import Path

import numpy as np
import torch

START, END = "<!-- supernet-benchmark:start -->", "<!-- supernet-benchmark:end -->"
METHODS = ("NAG, generated only", "random search", "regularized evolution")


def machine() -> str:
    text = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout
    return text.split(":", 1)[-1].strip() or platform.processor() or platform.machine()


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def section(r: dict, a) -> str:
    sn, k, seeds = r["supernet"], r["kendall"], sorted(r["generate"])
    data = f"--dataset {a.dataset}" + (f" --data-dir {a.data_dir}" if a.data_dir else "") + \
        (f" --image-size {a.image_size}" if a.image_size else "") + (f" --subset {a.subset}" if a.subset else "")
    lines = [START, f"## Supernet on the user's data ({a.dataset})", "",
             f"Command: `.venv/bin/python benchmarks/supernet_digits.py --threads {a.threads} "
             f"--dataset {a.dataset}{' ' + data.split(' ', 2)[2] if a.data_dir or a.image_size or a.subset else ''} "
             f"--epochs {a.epochs} --sample {a.sample} --kendall {a.kendall} --retrain-epochs {a.retrain_epochs} "
             f"{'' if a.retrain_seeds == '0' else f'--retrain-seeds {a.retrain_seeds} '}--queries {a.queries} --seeds {a.seeds} --cost {a.cost}`  ",
             f"Machine: {machine()}, 2 cores shared with other work, {a.threads} torch thread; date {r['date']}; "
             f"torch {torch.__version__}, CPU. Every step is cached under `--cache`; the same command continues "
             "an interrupted run.", ""]
    lines += _goals(r, a)
    lines += ["", f"**Supernet** (`budgetnas search supernet {data} --epochs {a.epochs}`, sandwich rule with two "
              f"random subnets, in-place distillation): {sn['search_seconds'] / 60:.1f} min; largest subnet "
              f"{sn['largest']['params']:,} params / {sn['largest']['macs']:,} MACs, held-out accuracy "
              f"{_pct(sn['largest']['val_acc'])}%; smallest {sn['smallest']['params']:,} params / "
              f"{sn['smallest']['macs']:,} MACs, {_pct(sn['smallest']['val_acc'])}% (inherited weights, BN "
              "recalibrated).", ""]
    lines += _kendall(k, a) + _generate(r, seeds, a) + _compare(r, seeds, a) + [END]
    return "\n".join(lines) + "\n"


def _goals(r: dict, a) -> list[str]:
    k, seeds = r["kendall"], sorted(r["generate"])
    zero = [r["generate"][s]["largest_test_acc_0_epochs"] for s in seeds]
    mono = all(r["generate"][s]["val_monotone"] for s in seeds)
    means = {m: np.mean([r["compare"][s][m]["mean_regret"] for s in seeds]) for m in METHODS}
    beat = means[METHODS[0]] < min(means[METHODS[1]], means[METHODS[2]])
    yes = lambda ok: "yes" if ok else "**no**"  # noqa: E731
    return ["| goal | result | met |", "|---|---|---|",
            f"| Kendall tau, inherited vs retrained accuracy, >= 0.6 ({len(k['subnets'])} subnets) | "
            f"{k['tau_test']:.2f} (test split; held-out split for inherited: {k['tau_val']:.2f}) | {yes(k['tau_test'] >= 0.6)} |",
            f"| largest-budget pick, 0 fine-tuning epochs, test accuracy >= 0.95 | "
            f"{', '.join(f'{z:.4f}' for z in zero)} (seeds {a.seeds}) | {yes(min(zero) >= 0.95)} |",
            f"| held-out accuracy of the picks never falls as the budget grows | "
            f"{'every seed' if mono else 'not every seed'} | {yes(mono)} |",
            f"| NAG generated only beats random search and evolution at equal evaluations (mean regret, pp) | "
            f"{means[METHODS[0]]:.3f} vs {means[METHODS[1]]:.3f} / {means[METHODS[2]]:.3f} | {yes(beat)} |"]


def _kendall(k: dict, a) -> list[str]:
    rows = sorted(k["subnets"], key=lambda s: s["cost"])
    seeds = a.retrain_seeds.split(",")
    which = f"seed {seeds[0]}" if len(seeds) == 1 else f"mean of seeds {a.retrain_seeds}"
    lines = [f"**Ranking.** {len(rows)} subnets evenly spread over the cost ranks of the sample, retrained "
             f"from scratch (`budgetnas train`, quick recipe, {a.retrain_epochs} epochs, {which}): Kendall tau "
             f"{k['tau_test']:.2f} (p = {k['p_test']:.3g}) between test accuracy with inherited weights and "
             f"after retraining; {k['tau_val']:.2f} (p = {k['p_val']:.3g}) with the inherited held-out accuracy "
             "NAG uses."]
    noise = k.get("retrain_noise")
    if noise:
        lines[-1] += (f" Retraining agrees with itself only so far: Kendall tau between two retraining seeds "
                      f"{noise['tau_between_seeds']:.2f} (mean over pairs); the accuracy of one subnet varies by "
                      f"{_pct(noise['sd_within_subnet'])} points between seeds (SD), the seed-mean accuracies of "
                      f"the subnets by {_pct(noise['sd_between_subnets'])} points; inherited held-out accuracy "
                      "against single seeds: tau " + " / ".join(f"{t:.2f}" for t in noise["tau_val_single_seed"]) + ".")
    per_seed = len(seeds) > 1
    lines += ["", f"| {a.cost} | inherited, held-out | inherited, test | retrained, test |"
              + (" retrained per seed |" if per_seed else ""), "|---|---|---|---|" + ("---|" if per_seed else "")]
    lines += [f"| {s['cost']:,.0f} | {_pct(s['inherited_val'])} | {_pct(s['inherited_test'])} | "
              f"{_pct(s['retrained_test'])} |"
              + (" " + " / ".join(_pct(x) for x in s["retrained_seeds"]) + " |" if per_seed else "") for s in rows]
    return lines + [""]


def _generate(r: dict, seeds: list[int], a) -> list[str]:
    g0 = r["generate"][seeds[0]]
    lines = [f"**Picks** (`budgetnas generate --supernet DIR --cost {a.cost} --budgets q10,q30,q50,q70,q90 "
             f"--query-budget {a.queries} --seed S`, every other option at its default). Regret = best held-out "
             f"accuracy of the {r['sample']['n']} sampled subnets within the budget minus the pick's, in points "
             "(negative: the pick beats every sampled subnet).", "",
             "| seed | evaluations | minutes | regret per budget (q10..q90) | mean regret | test acc of the picks | "
             "largest pick, `train --init-from --epochs 0` |", "|---|---|---|---|---|---|---|"]
    for s in seeds:
        g = r["generate"][s]
        lines.append(f"| {s} | {g['evaluations']} | {g['seconds'] / 60:.1f} | "
                     f"{' / '.join(f'{x:.2f}' for x in g['regret'])} | {np.mean(g['regret']):.3f} | "
                     f"{' / '.join(_pct(p['test_acc']) for p in g['picks'])} | {g['largest_test_acc_0_epochs']:.4f} |")
    lines += ["", f"Budgets (seed {seeds[0]}): " + ", ".join(f"{p['budget']:,.0f}" for p in g0["picks"]) + f" {a.cost}.", ""]
    return lines


def _compare(r: dict, seeds: list[int], a) -> list[str]:
    lines = [f"**Generator against baselines** at {a.queries} subnet evaluations each (NAG: the random "
             "subnets, the generator's query rounds and the verification of its candidates; random search: "
             f"{a.queries} random subnets shared by the budgets; evolution: {a.queries // 5} per budget). "
             "NAG picks only among architectures its generator proposed. Mean regret in points:", "",
             "| method | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | feasible |",
             "|---|" + "---|" * (len(seeds) + 2)]
    for m in METHODS:
        vals = [r["compare"][s][m]["mean_regret"] for s in seeds]
        ok = all(r["compare"][s][m]["feasible"] for s in seeds)
        lines.append(f"| {m} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {np.mean(vals):.3f} | "
                     f"{'100%' if ok else 'no'} |")
    return lines + [""]


def write_section(path: Path, text: str) -> None:
    """Replace the section between the markers (or append it)."""
    old = path.read_text() if path.is_file() else ""
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END) + "\n?", re.S)
    new = pattern.sub(lambda _: text, old) if START in old else old.rstrip() + "\n\n" + text
    from budgetnas.io import atomic_write

    with atomic_write(path, "w") as fh:
        fh.write(new)
