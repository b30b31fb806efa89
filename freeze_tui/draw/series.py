"""Pure helpers that turn long series into what fits on screen: bucket means, smoothing, sparklines.

Series can be a million steps long and are redrawn up to 10 times a second, so the
hot path sums whole slices with the C builtin `sum` and only filters NaN (an arm that
stopped) in the buckets that need it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

MAX_POINTS = 1000
BARS = "▁▂▃▄▅▆▇█"


def bucket_bounds(n: int, max_points: int = MAX_POINTS) -> list[tuple[int, int]]:
    """[start, end) index ranges splitting n items into at most max_points nearly equal buckets."""
    if n <= 0 or max_points <= 0:
        return []
    k = min(n, max_points)
    return [(i * n // k, (i + 1) * n // k) for i in range(k)]


def _mean(chunk: Sequence[float]) -> float:
    total = sum(chunk)
    if math.isfinite(total):
        return total / len(chunk)
    finite = [v for v in chunk if math.isfinite(v)]  # rare: only buckets holding nan/inf
    return sum(finite) / len(finite) if finite else math.nan


def bucket_means(values: Sequence[float], max_points: int = MAX_POINTS) -> list[float]:
    """Mean of each bucket (nan where a bucket holds no finite value)."""
    return [_mean(values[a:b]) for a, b in bucket_bounds(len(values), max_points)]


def bucket_centers(n: int, max_points: int = MAX_POINTS) -> list[int]:
    """The middle index of each bucket, to place a bucket mean on the x axis."""
    return [(a + b - 1) // 2 for a, b in bucket_bounds(n, max_points)]


def smooth(values: Sequence[float], span: float) -> list[float]:
    """Exponential moving average with the given span (in points); nan keeps its place."""
    alpha = 2.0 / (max(span, 1.0) + 1.0)
    out: list[float] = []
    level = math.nan
    for v in values:
        if math.isfinite(v):
            level = v if math.isnan(level) else level + alpha * (v - level)
            out.append(level)
        else:
            out.append(math.nan)
    return out


def ema_weighted(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an EMA with `weight` in [0, 1) per point, debiased so that it
    follows the data from the very first point (no warm-up, no pull towards 0); nan keeps its place."""
    weight = min(max(weight, 0.0), 0.999)
    out: list[float] = []
    level, norm = 0.0, 0.0
    for v in values:
        if math.isfinite(v):
            level = weight * level + (1.0 - weight) * v
            norm = weight * norm + (1.0 - weight)
            out.append(level / norm)
        else:
            out.append(math.nan)
    return out


def envelope(values: Sequence[float], max_points: int = MAX_POINTS) -> tuple[list[int], list[float]]:
    """Decimate to at most about 2*max_points points that keep every bucket's min and max, in
    the order they occur (so a line through them still shows a one-step spike). Returns
    (indices, values); nan is skipped. A series that fits is returned whole."""
    n = len(values)
    if n <= 2 * max_points:
        keep = [i for i in range(n) if math.isfinite(values[i])]
        return keep, [values[i] for i in keep]
    idx: list[int] = []
    for a, b in bucket_bounds(n, max_points):
        chunk = values[a:b]
        if not math.isfinite(sum(chunk)):  # rare: only buckets holding nan/inf take the slow path
            finite = [(v, i) for i, v in enumerate(chunk) if math.isfinite(v)]
            if finite:
                idx += sorted({a + min(finite)[1], a + max(finite)[1]})
            continue
        idx += sorted({a + chunk.index(min(chunk)), a + chunk.index(max(chunk))})
    return idx, [values[i] for i in idx]


SMOOTH_POINTS = 20_000


def smoothed_points(
    values: Sequence[float], weight: float, limit: int = SMOOTH_POINTS
) -> tuple[list[int], list[float]]:
    """(indices, values) of the smoothed curve. Past `limit` points the EMA runs over bucket means
    with the weight raised to the bucket size, which keeps its time constant in steps and bounds
    the cost of a redraw (a million steps: 20k EMA updates, not 1M)."""
    n = len(values)
    if n <= limit:
        return list(range(n)), ema_weighted(values, weight)
    return bucket_centers(n, limit), ema_weighted(bucket_means(values, limit), weight ** (n / limit))


SMOOTH_WEIGHTS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def next_weight(weight: float, direction: int) -> float:
    """The smoothing weight one notch up (+1) or down (-1) the TensorBoard-like 0-0.99 scale."""
    if direction > 0:
        return next((w for w in SMOOTH_WEIGHTS if w > weight + 1e-9), SMOOTH_WEIGHTS[-1])
    return next((w for w in reversed(SMOOTH_WEIGHTS) if w < weight - 1e-9), SMOOTH_WEIGHTS[0])


def finite_pairs(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    """Keep the (x, y) pairs where both are finite (plotting libraries choke on nan)."""
    keep = [(x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)]
    return [x for x, _ in keep], [y for _, y in keep]


def sparkline(values: Sequence[float], width: int) -> str:
    """A one-line bar chart of `values` squeezed into `width` characters; blank where nan."""
    if width <= 0 or not values:
        return ""
    points = bucket_means(values, width)
    finite = [v for v in points if math.isfinite(v)]
    if not finite:
        return " " * len(points)
    lo, hi = min(finite), max(finite)
    span = hi - lo
    top = len(BARS) - 1
    return "".join(
        " " if not math.isfinite(v) else BARS[0 if span == 0 else round((v - lo) / span * top)] for v in points
    )
