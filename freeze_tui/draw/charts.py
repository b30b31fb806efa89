"""What the loss charts draw, as plain data: downsampled, optionally smoothed, NaN-free. Pure."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from engine.log.best import SMOOTHING
from engine.log.state import RunState
from freeze_tui.draw.colors import PLAIN
from freeze_tui.draw.fmt import count, duration
from freeze_tui.draw.merged_runs import fit_arm
from freeze_tui.draw.safe_text import clean
from freeze_tui.draw.series import MAX_POINTS, bucket_centers, bucket_means, envelope, finite_pairs, smoothed_points

SCATTER_POINTS = 400
AXES = ("step", "tokens", "time")
ZOOMS = (0, 1000, 200, 50)  # last N steps; 0 = all


@dataclass(frozen=True)
class ChartOptions:
    """What the person chose to see: smoothing weight (0 = raw only), hidden arms, x axis, zoom, log y."""

    smoothing: float = SMOOTHING  # the weight the arms' best smoothed loss is taken at, too
    hidden: frozenset[str] = frozenset()
    axis: str = "step"
    zoom: int = 0  # show only the last `zoom` steps; 0 = all
    difference: bool = False  # the paired difference L_arm − L_base instead of the loss curves
    log_y: bool = False  # the loss curves on a log y axis (`l`); the difference view stays linear

    def describe(self) -> str:
        parts = [f"smoothing {self.smoothing:.2f}" if self.smoothing else "raw"]
        if self.zoom:
            parts.append(f"last {self.zoom} steps")
        if self.hidden:
            parts.append(f"{len(self.hidden)} hidden")
        if self.log_y and not self.difference:
            parts.append("log y")
        return ", ".join(parts)


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
    return clean(fit_arm(name, 24), one_line=True, max_len=24)


def fade(rgb: tuple[int, int, int], background: tuple[int, int, int] = (30, 30, 30)) -> tuple[int, int, int]:
    """The raw curve under a smoothed one: the arm's colour 60 % of the way to the background."""
    return tuple(round(0.4 * c + 0.6 * b) for c, b in zip(rgb, background))  # type: ignore[return-value]


def window(state: RunState, zoom: int) -> range:
    """Indices into state.steps that the charts show: all, or the last `zoom` steps."""
    n = len(state.steps)
    return range(max(0, n - zoom) if zoom else 0, n)


def x_of(state: RunState, axis: str, index: int) -> float:
    """Where step index `index` lies on the chosen x axis: step number, tokens seen, or seconds."""
    if axis == "tokens":
        return (state.steps[index] + 1) * state.tokens_per_step
    if axis == "time" and len(state.step_t) > index:
        return state.step_t[index] - state.t_start
    return float(state.steps[index])


def _arm_series(state, name, rows: range, opts: ChartOptions, max_points: int, rgb) -> list[Series]:
    raw = state.arms[name].losses[rows.start : rows.stop]
    plain = (label(name) if not opts.smoothing else "", range(len(raw)), raw, fade(rgb) if opts.smoothing else rgb)
    shown: list[tuple[str, Sequence[int], Sequence[float], tuple[int, int, int]]] = [plain]
    if opts.smoothing:
        shown.append((label(name), *smoothed_points(raw, opts.smoothing), rgb))
    out = []
    for text, positions, values, colour in shown:
        idx, ys = envelope(values, max_points)
        xs, ys = finite_pairs([x_of(state, opts.axis, rows.start + positions[i]) for i in idx], ys)
        out.append(Series(text, xs, ys, colour))
    return out


def loss_series(state: RunState, opts: ChartOptions = ChartOptions(), max_points: int = MAX_POINTS, palette=None):
    """Each shown arm's loss as lines: per-column min/max envelope (spikes survive), raw faded
    under the smoothed curve when smoothing is on. palette(index) -> rgb; default grey."""
    rgb_of = palette or PLAIN.arm_rgb
    rows = window(state, opts.zoom)
    per_arm = [
        _arm_series(state, name, rows, opts, max_points, rgb_of(index))
        for index, name in enumerate(state.arms)
        if name not in opts.hidden
    ]
    return [layer[0] for layer in per_arm] + [s for layer in per_arm for s in layer[1:]]  # raw under smoothed


def band_series(state: RunState, max_points: int = MAX_POINTS, palette=None) -> list[Series]:
    """The lowest and highest loss across seeds per step (engine.log.bands), as two faint lines per arm."""
    from engine.log.bands import arm_bands

    rgb_of = palette or PLAIN.arm_rgb
    out = []
    for index, (lows, highs) in enumerate(arm_bands(state).values()):
        steps = [float(i) for i in bucket_centers(len(lows), max_points)]
        r, g, b = rgb_of(index)
        faint = (int(0.45 * r), int(0.45 * g), int(0.45 * b))
        for edge in (lows, highs):
            xs, ys = finite_pairs(steps, bucket_means(edge, max_points))
            out.append(Series("", xs, ys, faint))
    return out


def scatter_series(
    state: RunState, max_points: int = SCATTER_POINTS, opts: ChartOptions = ChartOptions(), palette=None
) -> list[Series]:
    """(L_full, L_arm) per step for every shown arm but the baseline, bucket-averaged alike."""
    base, rgb_of = state.baseline, palette or PLAIN.arm_rgb
    if base is None:
        return []
    rows = window(state, opts.zoom)
    xs_all = bucket_means(state.arms[base].losses[rows.start : rows.stop], max_points)
    out = []
    for index, (name, arm) in enumerate(state.arms.items()):
        if name == base or name in opts.hidden:
            continue
        xs, ys = finite_pairs(xs_all, bucket_means(arm.losses[rows.start : rows.stop], max_points))
        out.append(Series(label(name), xs, ys, rgb_of(index)))
    return out


def diagonal(series: list[Series]) -> tuple[float, float] | None:
    """The span of the y = x line: covers every point drawn."""
    values = [v for s in series for v in (*s.xs, *s.ys)]
    if not values:
        return None
    lo, hi = min(values), max(values)
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def epoch_marks(state: RunState, opts: ChartOptions = ChartOptions()) -> list[float]:
    """Where an epoch after the first began (vertical markers), on the chosen axis, inside the zoom."""
    rows = window(state, opts.zoom)
    if not rows:
        return []
    lo, out = state.steps[rows.start], []
    for step in state.epoch_starts[1:]:
        index = bisect.bisect_left(state.steps, step)  # steps only grow
        if step >= lo and index < len(state.steps):
            out.append(x_of(state, opts.axis, index))
    return out


def axis_label(axis: str, value: float) -> str:
    """A tick label: steps 950/12k/1.2M, tokens 1.2M, time 4m 05s."""
    if axis == "tokens":
        return count(value)
    if axis == "time":
        return duration(value)
    return step_label(int(value))


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


def step_ticks(lo: float, hi: float, width: int, axis: str = "step") -> tuple[list[int], list[str]]:
    """Round ticks for the x axis, about one per 16 columns (plotext's own are fractional)."""
    if hi <= lo:
        return [int(lo)], [axis_label(axis, int(lo))]
    step = nice_step(hi - lo, max(2, min(6, width // 16)))
    first = math.ceil(lo / step) * step
    ticks = list(range(int(first), int(hi) + 1, step)) or [int(lo)]
    return ticks, [axis_label(axis, t) for t in ticks]


def log_y(opts: ChartOptions) -> bool:
    """Whether the loss curves go on a log y axis: when chosen (`l`), never in the difference view, since
    L_arm − L_full is negative wherever an arm is ahead and a log axis has no place for that."""
    return opts.log_y and not opts.difference


def to_log(series: list[Series]) -> list[Series]:
    """The series with log10(y), the points at or below zero dropped (a loss can be 0). We transform rather
    than use plotext's yscale("log"): plotext applies the log to its stored data on every build, so a chart
    rebuilt without new data (a resize, a refresh) would take the log of the log."""
    out = []
    for s in series:
        keep = [(x, math.log10(y)) for x, y in zip(s.xs, s.ys) if y > 0.0]
        out.append(Series(s.label, [x for x, _ in keep], [y for _, y in keep], s.rgb))
    return out


def log_ticks(series: list[Series], n: int = 5) -> tuple[list[float], list[str]]:
    """y ticks of a log axis drawn from to_log's values: `n` evenly spaced in log10, labelled with the loss."""
    ys = [y for s in series for y in s.ys]
    if not ys:
        return [], []
    lo, hi = min(ys), max(ys)
    if hi <= lo:
        return [lo], [log_tick_label(lo)]
    ticks = [lo + (hi - lo) * i / (n - 1) for i in range(n)]
    return ticks, [log_tick_label(t) for t in ticks]


def log_tick_label(exponent: float) -> str:
    """10**exponent with three significant digits in fixed notation: 2.50, 5.41, 10.0, 1000."""
    value = 10**exponent
    return f"{value:.{max(0, 2 - math.floor(exponent))}f}"
