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
