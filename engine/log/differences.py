"""The paired difference L_arm − L_base per step and per validation, with its uncertainty. Pure; no torch.

Arms see the same batches in the same order, so their losses at one step pair: the difference is the
experiment's point. Per step it is smoothed like the loss curves (TensorBoard's debiased EMA) and gets a
95 % band: across seeds (a t interval over replicates, --seeds N) when there are several, else from the
long-run variance of the difference's noise, measured on block sums (second differences of consecutive
blocks, so a linear trend cancels; block length: arch's Politis–White choice, stats.block_length). Per
validation the gap is paired by batch and weighted by tokens (comparisons.val_comparison's estimator).
"""

from __future__ import annotations

import bisect
import math
import warnings
from dataclasses import dataclass

import numpy as np

from engine.core.stats import MIN_BLOCKS, block_length, mean_ci95, t95, weighted_paired_ci95
from engine.log.comparisons import baseline_of, unpaired, val_batch_weights
from engine.log.state import RunState

Z95 = 1.959963984540054
SEEDS, BLOCKS = "seeds", "blocks"


@dataclass(frozen=True)
class DifferenceCurve:
    """One arm's smoothed L_arm − L_base per step index of the state's steps, and its band (nan where
    there is none yet); `band` says which kind ("seeds", "blocks" or "" for none)."""

    arm: str
    base: str
    smoothed: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    band: str = ""
    seeds: int = 1


@dataclass(frozen=True)
class ValidationGap:
    """One validation of one arm: its loss, the baseline's, and the paired gap with its 95 % interval."""

    epoch: int
    step: int  # the last step before this validation
    val_loss: float
    base_loss: float
    gap: float
    lo: float = math.nan
    hi: float = math.nan
    seeds: int = 1  # > 1: the mean over seeds and a t interval across them


def paired_arms(state: RunState) -> list[tuple[str, str]]:
    """(arm, its baseline) for every arm that has one in its own run (merged logs: per run)."""
    out = []
    for name in state.arms:
        base = baseline_of(state, name)
        if base is not None and base != name and not unpaired(state, name):
            out.append((name, base))
    return out


def step_differences(state: RunState, name: str, base: str) -> np.ndarray:
    """L_name − L_base at every step of the state (nan where either has no loss)."""
    arm, ref = state.arms[name].losses, state.arms[base].losses
    n = min(len(arm), len(ref))
    with np.errstate(invalid="ignore"):
        return np.frombuffer(arm, dtype=float)[:n] - np.frombuffer(ref, dtype=float)[:n]


def debiased_ema(values: np.ndarray, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """TensorBoard's smoothing (engine side, vectorised): level_t = Σ ω_i x_i with ω_i ∝ (1 − w) w^(t − i)
    over the finite x_i, normalised to sum to 1 (so it follows the data from the first step). Returns the
    smoothed series and Σ ω_i² per step: the variance factor of the smoothed value for uncorrelated noise."""
    from scipy.signal import lfilter  # lazy: scipy costs import time that views without this chart skip

    w = min(max(weight, 0.0), 0.999)
    finite = np.isfinite(values)
    known = finite.astype(float)
    num = lfilter([1 - w], [1, -w], np.where(finite, values, 0.0))
    norm = lfilter([1 - w], [1, -w], known)
    squares = lfilter([(1 - w) ** 2], [1, -w * w], known)
    with np.errstate(invalid="ignore", divide="ignore"):
        smoothed = np.where(norm > 0, num / norm, np.nan)
        factor = np.where(norm > 0, squares / norm**2, np.nan)
    smoothed[~finite] = np.nan
    return smoothed, factor


def running_long_run_variance(values: np.ndarray, length: int) -> np.ndarray:
    """Per index t, the long-run variance per step of the noise in `values` up to t, from block sums
    S_j of `length` steps: E[(S_j − 2 S_{j−b} + S_{j−2b})²] = 6 b σ²_LR for blocks longer than the noise's
    memory, and a linear trend cancels exactly (a residual against the smoothed curve would not do:
    it has no power at frequency 0, so its block sums shrink as blocks grow). nan until MIN_BLOCKS
    blocks' worth of steps are in (fewer blocks under-cover, as for r)."""
    n, b = len(values), max(1, length)
    out = np.full(n, np.nan)
    if n < 3 * b:
        return out
    sums = np.concatenate([[0.0], np.cumsum(values)])
    blocks = sums[b:] - sums[:-b]  # block j covers steps j .. j + b − 1
    second = blocks[2 * b :] - 2 * blocks[b:-b] + blocks[: -2 * b]  # ends at step j + 3b − 1
    running = np.cumsum(second**2) / np.arange(1, len(second) + 1) / (6 * b)
    ends = np.arange(3 * b - 1, n)
    ok = ends + 1 >= MIN_BLOCKS * b
    out[ends[ok]] = running[ok]
    return out


def block_curve(diffs: np.ndarray, weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smoothed difference and a running 95 % band: ± z √(σ²_LR × Σ ω²). σ²_LR, the noise's long-run
    variance (autocorrelation included), comes from block sums over the finite steps so far; the block
    length is arch's Politis–White choice on the difference's deviation from its smoothed curve, at most
    the smoother's memory (1 + w) / (1 − w) steps: longer blocks would measure drift, not noise."""
    smoothed, factor = debiased_ema(diffs, weight)
    finite = np.flatnonzero(np.isfinite(diffs))
    variance = np.full(len(diffs), np.nan)
    if len(finite) >= MIN_BLOCKS:
        w = min(max(weight, 0.0), 0.999)
        memory = max(1, math.ceil((1 + w) / (1 - w)))
        length = min(max(1, block_length(diffs[finite] - smoothed[finite])), memory)
        variance[finite] = running_long_run_variance(diffs[finite], length)
    half = Z95 * np.sqrt(variance * factor)
    return smoothed, smoothed - half, smoothed + half


def seed_curve(per_seed: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Mean over seeds of each seed's smoothed difference and its t interval (n − 1 df) per step, where
    at least two seeds have a value; the mean alone where one has."""
    n = max(len(s) for s in per_seed)
    grid = np.full((len(per_seed), n), np.nan)
    for row, series in zip(grid, per_seed, strict=True):
        row[: len(series)] = series
    count = np.isfinite(grid).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a step no seed reached: nan, said nowhere else
        mean = np.nanmean(grid, axis=0)
        sd = np.nanstd(grid, axis=0, ddof=1)
    t = np.array([t95(float(c - 1)) if c >= 2 else np.nan for c in range(len(per_seed) + 1)])[count]
    half = t * sd / np.sqrt(np.maximum(count, 1))
    return mean, mean - half, mean + half, len(per_seed)


def difference_curves(state: RunState, weight: float) -> list[DifferenceCurve]:
    """Every paired arm's smoothed difference with its band: across seeds once a replicate has ended
    (--seeds N), else the running band from block sums."""
    out = []
    for name, base in paired_arms(state):
        diffs = step_differences(state, name, base)
        runs = [r for r in state.past if name in r.arms and base in r.arms]
        if runs:
            per_seed = [debiased_ema(step_differences(r, name, base), weight)[0] for r in runs]
            mean, lo, hi, seeds = seed_curve([*per_seed, debiased_ema(diffs, weight)[0]])
            out.append(DifferenceCurve(name, base, mean, lo, hi, SEEDS, seeds))
            continue
        smoothed, lo, hi = block_curve(diffs, weight)
        out.append(DifferenceCurve(name, base, smoothed, lo, hi, BLOCKS))
    return out


def epoch_end_step(state: RunState, epoch: int) -> int:
    """The last step of `epoch` (the step its validation follows): the step before the next epoch's
    first, else the latest step."""
    starts = state.epoch_starts
    return starts[epoch + 1] - 1 if 0 <= epoch < len(starts) - 1 else state.step


def validation_gaps(state: RunState, name: str, base: str) -> list[ValidationGap]:
    """Every validation of `name` so far against the baseline's of the same epoch: the gap paired by
    batch and token-weighted with its t interval; without per-batch values, the plain difference. With
    --seeds N, once a replicate has ended: the mean gap over the seeds that reached that epoch and a t
    interval over seeds (n − 1 df), as the summary does for val Δ."""
    own = _replicate_gaps(state, name, base)
    runs = [r for r in state.past if name in r.arms and base in r.arms]
    if not runs:
        return own
    per_seed = [_replicate_gaps(r, name, base) for r in [*runs, state]]
    out = []
    for epoch in sorted({g.epoch for gaps in per_seed for g in gaps}):
        found = [g for gaps in per_seed for g in gaps if g.epoch == epoch]
        gap, lo, hi = mean_ci95([g.gap for g in found if math.isfinite(g.gap)])
        val, ref = (math.fsum(v) / len(found) for v in zip(*((g.val_loss, g.base_loss) for g in found)))
        out.append(ValidationGap(epoch, found[-1].step, val, ref, gap, lo, hi, len(found)))
    return out


def _replicate_gaps(state: RunState, name: str, base: str) -> list[ValidationGap]:
    theirs = dict(state.arms[base].epochs)
    out = []
    for epoch, mine in state.arms[name].epochs:
        ref = theirs.get(epoch)
        if ref is None:
            continue
        own, other = _num(mine.val_loss), _num(ref.val_loss)
        a, b = [_num(v) for v in mine.val_batch_losses], [_num(v) for v in ref.val_batch_losses]
        gap, lo, hi = own - other, math.nan, math.nan
        if a and len(a) == len(b):
            gap, lo, hi = weighted_paired_ci95(b, a, val_batch_weights(state, len(a)))
        out.append(ValidationGap(epoch, epoch_end_step(state, epoch), own, other, gap, lo, hi))
    return out


def step_index(state: RunState, step: int) -> int:
    """The index into state.steps of `step` (or of the last step before it): steps only grow."""
    return max(0, bisect.bisect_right(state.steps, step) - 1)


def _num(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
