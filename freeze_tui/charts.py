"""What the loss charts draw, as plain data: downsampled, optionally smoothed, NaN-free. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.log.state import RunState
from freeze_tui.colors import arm_rgb
from freeze_tui.safe_text import clean
from freeze_tui.series import MAX_POINTS, bucket_centers, bucket_means, finite_pairs, smooth

SCATTER_POINTS = 400
SMOOTH_FRACTION = 1 / 30  # EMA span as a share of the points drawn


@dataclass(frozen=True)
class Series:
    label: str
    xs: list[float]
    ys: list[float]
    rgb: tuple[int, int, int]


def points_for(width: int) -> int:
    """Points worth drawing on a chart `width` columns wide: braille has 2 dots per column."""
    return max(2, min(MAX_POINTS, 2 * width))


def label(name: str) -> str:
    """An arm name for a chart legend: plotext output is parsed as ANSI, so no control characters."""
    return clean(name, one_line=True, max_len=24)


def loss_series(state: RunState, *, smoothed: bool = False, max_points: int = MAX_POINTS) -> list[Series]:
    """Each arm's loss per step, at most max_points points (bucket means), smoothed on request."""
    n = len(state.steps)
    centers = bucket_centers(n, max_points)
    steps = [float(state.steps[i]) for i in centers]
    out = []
    for index, (name, arm) in enumerate(state.arms.items()):
        ys = bucket_means(arm.losses[:n], max_points)
        if smoothed:
            ys = smooth(ys, max(1.0, len(ys) * SMOOTH_FRACTION))
        xs, ys = finite_pairs(steps, ys)
        out.append(Series(label(name), xs, ys, arm_rgb(index)))
    return out


def scatter_series(state: RunState, max_points: int = SCATTER_POINTS) -> list[Series]:
    """(L_full, L_arm) per step for every arm but the baseline, bucket-averaged alike."""
    base = state.baseline
    if base is None:
        return []
    n = len(state.steps)
    xs_all = bucket_means(state.arms[base].losses[:n], max_points)
    out = []
    for index, (name, arm) in enumerate(state.arms.items()):
        if name == base:
            continue
        xs, ys = finite_pairs(xs_all, bucket_means(arm.losses[:n], max_points))
        out.append(Series(label(name), xs, ys, arm_rgb(index)))
    return out


def diagonal(series: list[Series]) -> tuple[float, float] | None:
    """The span of the y = x line: covers every point drawn."""
    values = [v for s in series for v in (*s.xs, *s.ys)]
    if not values:
        return None
    lo, hi = min(values), max(values)
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def epoch_marks(state: RunState) -> list[int]:
    """Steps where an epoch after the first began (vertical markers)."""
    return [s for s in state.epoch_starts[1:] if not math.isnan(s)]


def step_label(step: int) -> str:
    """Axis label of a step number: 950, 12k, 1.2M."""
    if step >= 1_000_000:
        return f"{step / 1_000_000:.1f}M"
    if step >= 10_000:
        return f"{step / 1000:.0f}k"
    return str(step)


def nice_step(span: float, n: int) -> int:
    """A round tick spacing (1, 2 or 5 times a power of ten) giving at most about n ticks."""
    raw = max(1.0, span / max(1, n))
    power = 10 ** math.floor(math.log10(raw))
    return int(next(m * power for m in (1, 2, 5, 10) if m * power >= raw))


def step_ticks(lo: float, hi: float, width: int) -> tuple[list[int], list[str]]:
    """Round whole-step ticks for the x axis, about one per 16 columns (plotext's own are fractional)."""
    if hi <= lo:
        return [int(lo)], [step_label(int(lo))]
    step = nice_step(hi - lo, max(2, min(6, width // 16)))
    first = math.ceil(lo / step) * step
    ticks = list(range(int(first), int(hi) + 1, step)) or [int(lo)]
    return ticks, [step_label(t) for t in ticks]
