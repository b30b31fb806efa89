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
