"""The supernet's width from the target: a pruning search needs room to choose from.

MGAS only removes (ops, filters, weights); it cannot make a cell wider than the supernet's. A
target close to the whole supernet leaves the search no choice but to keep nearly everything at
the preset's narrow width, while a network of the same size built by hand or by width scaling
is wider and has fewer ops.

**Decision (headroom 8, docs/mgas.md 10.13):** when `--channels` is not given and the target is
in params or MACs, the preset's cell width C is raised, in steps of 2 (a factorized reduce splits
a width in halves), until the whole supernet is at least 8x the target. The published presets
prune their supernets 5.8x (`darts8_c24`: 4.08M -> 0.70M params) and 9.2x (`darts14_c44`:
21.0M -> 2.29M). On the CIFAR-10 protocol (5 cells) the C=8 supernet is 8.3x the 50k target,
where the search beat every baseline, and 2.75x the 150k target, where it kept 297 ops at widths
8-32 and retrained to 58.90 % against 61.24 % for random search with width scaling (seed 0).
Widened to C=12 (5.3x) the same search retrained to 61.33 %, to C=16 (8.75x, what this rule
picks) to 63.65 % with 135 ops at widths 16-64. On digits the rule moves only the 32k target
(6.9x at C=8, to C=10): 99.16 % against 99.35 % over 3 seeds (2 of 1,077 test images).
A latency target keeps the preset's width: its table is measured per part at the widths the
search will use, and a wider supernet would need new measurements before the search starts.
The published presets keep their published widths (`--channels` widens them). `--channels`
always wins.
"""
from __future__ import annotations

import math
from typing import Callable

HEADROOM = 8.0
MAX_WIDENING = 4  # at most 4x the preset's width (16x its params); wider only with --channels


def even_up(x: float) -> int:
    return 2 * math.ceil(x / 2)


def width_for_target(size_at: Callable[[int], float], width: int, goal: float,
                     headroom: float | None = None) -> int:
    """The narrowest even width >= `width` whose supernet is at least `headroom` (default
    HEADROOM) x `goal` (at most `MAX_WIDENING` x `width`).

    `size_at(w)` is the whole supernet's size at cell width w. Sizes grow about with the width
    squared, so the first guess is taken from that and corrected in steps of 2.
    """
    need, most = (HEADROOM if headroom is None else headroom) * goal, MAX_WIDENING * width
    size = size_at(width)
    if size >= need:
        return width
    guess = min(most, max(width + 2, even_up(width * math.sqrt(need / size))))
    while guess < most and size_at(guess) < need:
        guess += 2
    while guess - 2 > width and size_at(guess - 2) >= need:
        guess -= 2
    return guess
