"""Bands across seeds for the loss chart: per step, the lowest and highest loss any replicate of
an arm had (--seeds N). Pure; no torch.

A range rather than a t interval: with 2 or 3 seeds a per-step t interval is many times wider than
the data (t(1) = 12.7) and would hide the curves; the range shows exactly what the seeds did.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def seed_range(series: Sequence[Sequence[float]]) -> tuple[list[float], list[float]]:
    """Per step index, (min, max) over the series that have a finite value there; nan where none has.
    Series may differ in length (a replicate stopped early)."""
    n = max((len(s) for s in series), default=0)
    lows, highs = [], []
    for i in range(n):
        values = [s[i] for s in series if i < len(s) and not math.isnan(s[i])]
        lows.append(min(values) if values else math.nan)
        highs.append(max(values) if values else math.nan)
    return lows, highs


def arm_bands(state) -> dict[str, tuple[list[float], list[float]]]:
    """{arm: (low, high) per step} over every replicate of a finished run with --seeds N > 1; {} otherwise."""
    if not state.past or not state.finished:
        return {}
    runs = [*state.past, state]
    return {name: seed_range([r.arms[name].losses for r in runs if name in r.arms]) for name in state.arms}
