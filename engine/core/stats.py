"""Small pure statistics shared by the engine and the reducer. No torch."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=256)
def t95(df: float) -> float:
    """The exact two-sided 95 % Student-t quantile for any df (inf for none): a table that jumps to
    1.96 above 30 df made intervals up to 4 % too narrow."""
    if not df or df <= 0:
        return math.inf
    # lazy: scipy costs import time and most views never need it. scipy.special's inverse t CDF is what
    # scipy.stats.t.ppf calls (the same bits) without importing scipy.stats (~0.5 CPU-s more per process)
    from scipy.special import stdtrit

    return float(stdtrit(df, 0.975))


def mean_var(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population variance (Var(L) of the study); (nan, nan) for no values."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = math.fsum(values) / n
    return mean, math.fsum((v - mean) ** 2 for v in values) / n


def mean_ci95(values: Sequence[float], low: float = -math.inf, high: float = math.inf) -> tuple[float, float, float]:
    """Mean and its 95 % confidence interval (Student t), clipped to [low, high] (a share's interval
    never leaves [0, 1], however few the samples); no interval for n = 1."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = math.fsum(values) / n
    if n == 1:
        return mean, math.nan, math.nan  # one value has no spread to measure: no interval, never a point
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


BOOTSTRAP_RESAMPLES = 999
WARMUP_STEPS = 2  # a replicate's first steps (allocation, kernel choice) are left out of r, as in `plan --measure`
MIN_BLOCKS = 30  # fewer blocks' worth of steps than this: no interval (a bootstrap of a handful of blocks under-covers)
MAX_BLOCKS = 2000  # more steps than this many blocks: longer blocks, so memory and time stay bounded
TOO_FEW_STEPS = "too few steps for an interval"
NO_VARIATION = "step times do not vary: no interval"


@dataclass(frozen=True)
class SavingEstimate:
    """r from paired step times (warm-up left out): the ratio of sums with its studentised block-bootstrap
    interval, and the median per-step r with its own percentile interval. `lo`/`hi` are nan when there is
    no interval; `note` then says why. `disagree`: both intervals exist and do not overlap."""

    r: float
    lo: float = math.nan
    hi: float = math.nan
    median: float = math.nan
    median_lo: float = math.nan
    median_hi: float = math.nan
    steps: int = 0
    block: int = 0
    note: str = ""

    @property
    def disagree(self) -> bool:
        known = not any(math.isnan(v) for v in (self.lo, self.hi, self.median_lo, self.median_hi))
        return known and (self.median_hi < self.lo or self.median_lo > self.hi)


def paired_steps(t_full: Sequence[float], t_arm: Sequence[float], warmup: int = WARMUP_STEPS):
    """The steps both arms timed, after the warm-up, as two float arrays."""
    full = np.asarray(t_full, dtype=float)[warmup:]
    arm = np.asarray(t_arm, dtype=float)[warmup : warmup + len(full)]
    full = full[: len(arm)]
    keep = np.isfinite(full) & np.isfinite(arm) & (full > 0)
    return full[keep], arm[keep]


BLOCK_LENGTH_POINTS = 4096  # longer series: the block length is chosen on means of consecutive steps


def block_length(series: np.ndarray) -> int:
    """Politis-White's data-chosen length for a circular block bootstrap (arch), at least 1 step. A long
    run is first averaged over groups of consecutive steps (its cost grows faster than n: 25 s at 100k
    steps), and the length found is scaled back to steps."""
    group = -(-len(series) // BLOCK_LENGTH_POINTS)
    if group > 1:
        series = series[: len(series) // group * group].reshape(-1, group).mean(axis=1)
    if len(series) < 8 or not np.ptp(series) > 0:
        return group
    from arch.bootstrap import optimal_block_length  # lazy: arch imports pandas

    with warnings.catch_warnings():  # a near-constant series divides by 0 inside; the length is then nan
        warnings.simplefilter("ignore", RuntimeWarning)
        length = float(optimal_block_length(series)["circular"].iloc[0])
    return group * (max(1, math.ceil(length)) if math.isfinite(length) else 1)


def saving_estimate(
    t_full: Sequence[float],
    t_arm: Sequence[float],
    warmup: int = WARMUP_STEPS,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    with_median: bool = True,
) -> SavingEstimate:
    """r = 1 - sum(t_arm) / sum(t_full) over the paired steps after `warmup`, with a 95 % studentised
    circular block bootstrap interval (block length chosen from the data, both arms resampled together so
    a load burst stays in one block), and the median per-step r with a percentile interval over the same
    resampled blocks. Fewer than MIN_BLOCKS blocks' worth of steps: no interval, never a zero-width one."""
    full, arm = paired_steps(t_full, t_arm, warmup)
    n = len(full)
    if n == 0:
        return SavingEstimate(math.nan, note=TOO_FEW_STEPS)
    ratio = float(arm.sum() / full.sum())
    per_step = 1.0 - arm / full
    median = float(np.median(per_step))
    residual = arm - ratio * full  # the ratio's linearisation: its block sums drive the ratio's variance
    length = max(block_length(residual), round(n ** (1 / 3)), -(-n // MAX_BLOCKS))
    blocks = n // length
    if blocks < MIN_BLOCKS:
        return SavingEstimate(1 - ratio, median=median, steps=n, block=length, note=TOO_FEW_STEPS)
    if not np.ptp(residual) > 0 and not np.ptp(per_step) > 0:
        return SavingEstimate(1 - ratio, median=median, steps=n, block=length, note=NO_VARIATION)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n, size=(resamples, blocks))
    lo, hi = _studentised_ratio_interval(full, arm, ratio, length, starts)
    m_lo, m_hi = _median_interval(per_step, length, starts) if with_median else (math.nan, math.nan)
    return SavingEstimate(1 - ratio, 1 - hi, 1 - lo, median, m_lo, m_hi, n, length)


def _circular_block_sums(x: np.ndarray, length: int) -> np.ndarray:
    """Sum of x[s], ..., x[s + length - 1] (wrapping around) for every start s."""
    wrapped = np.concatenate([[0.0], np.cumsum(np.concatenate([x, x[: length - 1]]))])
    return wrapped[length : length + len(x)] - wrapped[: len(x)]


def _studentised_ratio_interval(full, arm, ratio, length, starts) -> tuple[float, float]:
    """Percentile-t interval of R = sum(arm) / sum(full). Each resample's R* is studentised by its own
    block-sum standard error; the sample's standard error is the bootstrap's exact conditional one (all
    n circular blocks), so t* and t share a scale. Percentile intervals of R under-covered (issue 18)."""
    blocks = starts.shape[1]
    full_sums, arm_sums = _circular_block_sums(full, length), _circular_block_sums(arm, length)
    residual = arm - ratio * full
    per_step = _long_run_variance(residual, length)
    se = math.sqrt(blocks * length * per_step) / (blocks * float(np.mean(full_sums)))
    f_star, a_star = full_sums[starts], arm_sums[starts]
    total_f = f_star.sum(axis=1)
    r_star = a_star.sum(axis=1) / total_f
    z_star = a_star - r_star[:, None] * f_star
    se_star = np.sqrt((z_star**2).sum(axis=1) * blocks / (blocks - 1)) / total_f
    ok = se_star > 0
    if se <= 0 or ok.sum() < 0.9 * len(r_star):
        return ratio, ratio  # no spread at all: every resample is the sample (NO_VARIATION catches most)
    t_star = (r_star[ok] - ratio) / se_star[ok]
    q_lo, q_hi = np.quantile(t_star, [0.025, 0.975])
    return ratio - float(q_hi) * se, ratio - float(q_lo) * se


def _long_run_variance(residual: np.ndarray, length: int) -> float:
    """Variance per step of a sum of the residuals. Block sums of length b understate it by about c/b
    under autocorrelation (c from the correlations at lags up to b); blocks of b and 2b cancel that first-
    order bias (Richardson: 2 V(2b) - V(b)), never below V(b). Without it, coverage at phi = 0.5 was 0.90."""
    short = float(np.mean(_circular_block_sums(residual, length) ** 2)) / length
    if 2 * length > len(residual):
        return short
    long = float(np.mean(_circular_block_sums(residual, 2 * length) ** 2)) / (2 * length)
    return max(short, 2 * long - short)


def _median_interval(per_step: np.ndarray, length: int, starts: np.ndarray) -> tuple[float, float]:
    """Percentile interval of the median per-step r over the same resampled blocks (chunked: a resample
    of a long run is as long as the run)."""
    n = len(per_step)
    starts = starts[: max(199, 20_000_000 // n)]  # a long run: fewer resamples (each is a median of n steps)
    offsets = np.arange(length)
    chunk = max(1, 4_000_000 // (starts.shape[1] * length))
    medians = []
    for i in range(0, len(starts), chunk):
        idx = (starts[i : i + chunk, :, None] + offsets) % n
        medians.append(np.median(per_step[idx.reshape(len(idx), -1)], axis=1))
    lo, hi = np.quantile(np.concatenate(medians), [0.025, 0.975])
    return float(lo), float(hi)


def inside(value: float, interval: Sequence[float]) -> bool | None:
    """Whether value lies in [lo, hi]; None when either is unknown."""
    lo, hi = interval
    if any(math.isnan(v) for v in (value, lo, hi)):
        return None
    slack = 1e-9 * max(1.0, abs(value))  # a point interval summed in another order differs in the last bit
    return lo - slack <= value <= hi + slack


MIN_PROMPTS = 5  # fewer prompts than this: p gets no interval (a t interval over 2-4 clusters says little)


def clustered_mean_ci95(
    values: Sequence[float], clusters: Sequence[object], low: float = -math.inf, high: float = math.inf
) -> tuple[float, float, float]:
    """Mean of the cluster means and a t interval over clusters (n - 1 df), clipped to [low, high]:
    samples of one prompt are correlated, so the prompts, not the samples, are the independent units.
    Fewer than MIN_PROMPTS clusters: the mean without an interval."""
    groups: dict[object, list[float]] = {}
    for value, cluster in zip(values, clusters, strict=True):
        if not math.isnan(value):
            groups.setdefault(cluster, []).append(value)
    means = [math.fsum(g) / len(g) for g in groups.values()]
    if not means:
        return math.nan, math.nan, math.nan
    mean = math.fsum(means) / len(means)
    if len(means) < MIN_PROMPTS:
        return mean, math.nan, math.nan
    _, lo, hi = mean_ci95(means, low, high)
    return mean, lo, hi


def weighted_paired_ci95(
    before: Sequence[float], after: Sequence[float], weights: Sequence[float] | None = None
) -> tuple[float, float, float]:
    """Weighted mean of after_i - before_i (weights: tokens per validation batch, so a short last batch
    counts for what it holds) and its t interval (n - 1 df, the ratio estimator's linearised variance)."""
    w = [1.0] * len(before) if weights is None else list(weights)
    pairs = [(b - a, wi) for a, b, wi in zip(before, after, w) if not (math.isnan(a) or math.isnan(b)) and wi > 0]
    n = len(pairs)
    if n == 0:
        return math.nan, math.nan, math.nan
    total = math.fsum(wi for _, wi in pairs)
    mean = math.fsum(d * wi for d, wi in pairs) / total
    if n == 1:
        return mean, math.nan, math.nan
    se = math.sqrt(n / (n - 1) * math.fsum((wi * (d - mean)) ** 2 for d, wi in pairs)) / total
    half = t95(n - 1) * se
    return mean, mean - half, mean + half


EQUIVALENCE_MARGIN = 0.05  # ±5 points of r: closer than this, the FLOP model "agrees" for planning purposes
MIN_SEEDS_FOR_VERDICT = 4  # a t interval over <= 3 seeds (t(2) = 4.3) says "undecided" to everything


def equivalence(measured_ci: Sequence[float], predicted: float, margin: float = EQUIVALENCE_MARGIN) -> str | None:
    """Equivalence test of a prediction against a measured interval [lo, hi]: "agrees" when the whole
    interval lies within predicted ± margin, "differs" when it lies wholly outside that band, else
    "undecided"; None without an interval or a prediction. Unlike "inside the interval", a long run
    (narrow interval) does not turn every prediction into a miss."""
    lo, hi = measured_ci
    if any(math.isnan(v) for v in (lo, hi, predicted)):
        return None
    if predicted - margin <= lo and hi <= predicted + margin:
        return "agrees"
    if hi < predicted - margin or lo > predicted + margin:
        return "differs"
    return "undecided"


def ratio_ci(value: float, interval: Sequence[float], by: float) -> tuple[float, float, float]:
    """value / by and its interval (interval / by), for measured r over the FLOP model's r; nan when
    `by` is 0 or unknown."""
    if math.isnan(by) or by == 0:
        return math.nan, math.nan, math.nan
    lo, hi = sorted((interval[0] / by, interval[1] / by))
    return value / by, lo, hi


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p values; nan stays nan and is left out of the family. Holm's step-down: the i-th
    smallest of n is multiplied by n - i, made monotone, capped at 1 (the arithmetic of statsmodels'
    `multipletests(method="holm")`, to the bit; a unit test compares the two). Written out because
    statsmodels costs every run process 0.65 CPU-s of imports and its Holm calls gc.collect(), 0.25 s
    with torch loaded, for six lines of arithmetic."""
    known = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    out = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(known):
        running = max(running, p * (len(known) - rank))
        out[i] = min(running, 1.0)
    return out


def p_value(mean: float, lo: float, hi: float, df: float = math.inf) -> float:
    """Two-sided p value of "no difference" from a 95 % interval (t with df, normal for inf): the
    interval's half-width gives the standard error. nan without an interval."""
    if any(math.isnan(v) for v in (mean, lo, hi)) or hi <= lo:
        return math.nan
    from scipy.special import stdtr  # t's survival function: scipy.stats.t.sf(x, df) is stdtr(df, -x)

    se = (hi - lo) / (2 * (t95(df) if math.isfinite(df) else 1.959963984540054))
    return float(2 * stdtr(df if math.isfinite(df) else 1e9, -abs(mean) / se))
