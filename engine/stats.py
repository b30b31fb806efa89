"""Small pure statistics shared by the engine and the reducer. No torch."""

from __future__ import annotations

import math
from collections.abc import Sequence

# Two-sided 95 % Student-t quantiles for small sample counts (df = n - 1); 1.96 beyond.
_T95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    12: 2.179,
    15: 2.131,
    20: 2.086,
    30: 2.042,
}


def t95(df: int) -> float:
    """Student-t 95 % quantile, rounded down to the nearest tabulated df (conservative)."""
    if df <= 0:
        return math.inf
    best = 1.96
    for k in sorted(_T95, reverse=True):
        if df >= k:
            return _T95[k] if df <= 30 else best
    return best


def mean_var(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population variance (Var(L) of the study); (nan, nan) for no values."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = math.fsum(values) / n
    return mean, math.fsum((v - mean) ** 2 for v in values) / n


def mean_ci95(values: Sequence[float], low: float = -math.inf, high: float = math.inf) -> tuple[float, float, float]:
    """Mean and its 95 % confidence interval (Student t), clipped to [low, high] (a share's interval
    never leaves [0, 1], however few the samples); the interval is the mean itself for n = 1."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = math.fsum(values) / n
    if n == 1:
        return mean, mean, mean
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t95(n - 1) * sd / math.sqrt(n)
    return mean, max(low, mean - half), min(high, mean + half)


def saving(t_full: float, t_arm: float) -> float:
    """r = (T_full - T_arm) / T_full; nan when T_full is not positive."""
    if not t_full or t_full <= 0 or math.isnan(t_full) or math.isnan(t_arm):
        return math.nan
    return (t_full - t_arm) / t_full


def common_share(flags: Sequence[bool]) -> float:
    """p = (1/M) * sum 1(g_i in S) over generated tokens; nan for an empty sample."""
    return sum(1 for f in flags if f) / len(flags) if flags else math.nan


def clipped(triple: tuple[float, float, float], lo: float = 0.0, hi: float = 1.0) -> tuple[float, float, float]:
    """An interval cut to the values the quantity can take (a share lies in [0, 1])."""
    mean, low, high = triple
    if math.isnan(mean):
        return triple
    return mean, max(lo, low), min(hi, high)


def paired_ci95(before: Sequence[float], after: Sequence[float]) -> tuple[float, float, float]:
    """Mean of after_i - before_i and its Student-t 95 % interval: pairs share what makes them
    vary (prompt, seed, validation batch), so their differences vary less than either side."""
    diffs = [b - a for a, b in zip(before, after) if not (math.isnan(a) or math.isnan(b))]
    return mean_ci95(diffs)


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return math.nan
    mid = n // 2
    return ordered[mid] if n % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


BOOTSTRAP_RESAMPLES = 1000
MAX_BLOCKS = 400  # more steps than this many blocks: longer blocks, so the bootstrap stays fast


def saving_ci95(t_full: Sequence[float], t_arm: Sequence[float], seed: int = 0) -> tuple[float, float, float]:
    """r = 1 - sum(t_arm) / sum(t_full) over paired steps, with a 95 % percentile interval from a
    paired block bootstrap: whole blocks of consecutive steps are resampled, both arms together, so a
    load burst that lasts several steps stays in one block. Block length ~ n^(1/3), at least n/400."""
    import random

    pairs = [(f, a) for f, a in zip(t_full, t_arm) if f == f and a == a]
    n = len(pairs)
    if n == 0 or sum(f for f, _ in pairs) <= 0:
        return math.nan, math.nan, math.nan
    length = max(1, round(n ** (1 / 3)), -(-n // MAX_BLOCKS))
    blocks = [pairs[i : i + length] for i in range(0, n, length)]
    sums = [(math.fsum(f for f, _ in b), math.fsum(a for _, a in b)) for b in blocks]
    point = saving(math.fsum(f for f, _ in sums), math.fsum(a for _, a in sums))
    if len(sums) < 2:
        return point, point, point
    rng = random.Random(seed)
    draws = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        picks = rng.choices(sums, k=len(sums))
        draws.append(saving(math.fsum(f for f, _ in picks), math.fsum(a for _, a in picks)))
    draws = sorted(d for d in draws if d == d)
    return point, _quantile(draws, 0.025), _quantile(draws, 0.975)


def _quantile(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return math.nan
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def step_saving_median(t_full: Sequence[float], t_arm: Sequence[float]) -> float:
    """A robust r: the median over steps of 1 - t_arm / t_full (a burst moves it little)."""
    return median([1 - a / f for f, a in zip(t_full, t_arm) if f == f and a == a and f > 0])


def inside(value: float, interval: Sequence[float]) -> bool | None:
    """Whether value lies in [lo, hi]; None when either is unknown."""
    lo, hi = interval
    if any(math.isnan(v) for v in (value, lo, hi)):
        return None
    slack = 1e-9 * max(1.0, abs(value))  # a point interval summed in another order differs in the last bit
    return lo - slack <= value <= hi + slack
