"""Paired comparisons of one arm with another, recomputed from a RunState's steps and samples (never
from a stored summary): r and its intervals, the validation-loss gap, p and Δp clustered by prompt, the
FLOP model's verdict. Pure functions; engine/log/summary.py lays them out per arm. No torch.

Arms are only compared within their own run: in merged logs (`config.runs[].arms`) each run has its own
baseline (`full`, else its first arm); times of different runs are never paired."""

from __future__ import annotations

import functools
import math

import msgspec

from engine.core.errors import FreezeTuiError
from engine.core.stats import (
    EQUIVALENCE_MARGIN,
    SavingEstimate,
    clustered_mean_ci95,
    equivalence,
    paired_steps,
    ratio_ci,
    saving,
    saving_estimate,
    weighted_paired_ci95,
)
from engine.log.state import RunState, SampleSet

NOT_PAIRED = "T from separate runs: not paired"
NAN3 = (math.nan, math.nan, math.nan)


def run_groups(state: RunState) -> list[list[str]]:
    """The arms of each run: one group for a single log, one per run in merged logs."""
    groups = [[a for a in run.arms if a in state.arms] for run in state.settings.merged_runs() if run.arms is not None]
    return [g for g in groups if g] or [list(state.arms)]


def baseline_of(state: RunState, name: str) -> str | None:
    """The arm `name` is timed against: `full` of its own run (named `full` or `<run>/full`), else
    the run's first arm. An arm that is its run's only arm is its own baseline (nothing to pair)."""
    for group in run_groups(state):
        if name in group:
            return next((a for a in group if a == "full" or a.endswith("/full")), group[0])
    return None


def unpaired(state: RunState, name: str) -> bool:
    """Whether `name` is the only arm of its run among merged runs: nothing shares its clock."""
    groups = run_groups(state)
    return len(groups) > 1 and any(group == [name] for group in groups)


def live_saving(state: RunState, name: str) -> float:
    """r so far, as the summary counts it: against the arm's own run's baseline, over paired steps with
    the warm-up left out (from T before any step past it); nan for a baseline or an arm alone in its run."""
    base = baseline_of(state, name)
    if base is None or base == name or unpaired(state, name):
        return math.nan
    full, arm = paired_steps(state.arms[base].dts, state.arms[name].dts)
    if len(full):
        return saving(float(full.sum()), float(arm.sum()))
    return saving(state.arm_time(base), state.arm_time(name))


def r_estimate(state: RunState, base: str, name: str) -> SavingEstimate:
    """r of `name` against `base` from their paired step times (warm-up left out), with its studentised
    block-bootstrap interval and median-step estimate: the one computation that report rows, the Frontier
    view and the Time view all read, so they show the same numbers. Remembered for the same step times:
    a report asks for each arm's r from several rows, and each ask was a bootstrap."""
    return _estimate(tuple(state.arms[base].dts), tuple(state.arms[name].dts))


@functools.lru_cache(maxsize=8)  # a few pairs: the tuples hold the runs' step times
def _estimate(t_base: tuple[float, ...], t_arm: tuple[float, ...]) -> SavingEstimate:
    return saving_estimate(t_base, t_arm)


def live_interval(state: RunState, name: str) -> tuple[float, float]:
    """r's 95 % interval against the arm's own run's baseline (nan, nan: none yet, or nothing to pair)."""
    base = baseline_of(state, name)
    if base is None or base == name or unpaired(state, name):
        return math.nan, math.nan
    est = r_estimate(state, base, name)
    return est.lo, est.hi


def margin_of(state: RunState) -> float:
    """The equivalence margin (a share of r) the run stated (run_start.config.equivalence_margin, in
    points), else the default ±5 points."""
    points = state.settings.equivalence_margin
    if points is not None and 0 < points < 100:
        return points / 100
    return EQUIVALENCE_MARGIN


class TimeComparison(msgspec.Struct, frozen=True):
    """r of one arm against another and what goes with it: the ArmSummary fields of the same names
    (engine.log.events), which a summary row takes over as they are, and `report --pair` prints."""

    r: float
    r_ci: list[float]
    r_note: str
    r_median: float
    r_median_ci: list[float]
    r_estimates_disagree: bool
    r_steps: int
    r_block: int
    r_over_pred: float
    r_over_pred_ci: list[float]
    r_pred_verdict: str | None
    r_pred_margin: float


def time_comparison(state: RunState, base: str, name: str, margin: float | None = None) -> TimeComparison | None:
    """r of `name` against `base` from their paired step times (warm-up left out), its interval or the
    reason there is none, the median per-step r with its interval, and the FLOP model's verdict; None
    for an arm against itself."""
    if name == base:
        return None
    margin = margin_of(state) if margin is None else margin
    est = r_estimate(state, base, name)
    r_pred = state.arms[name].predicted_saving
    versus = ratio_ci(est.r, (est.lo, est.hi), r_pred)
    return TimeComparison(
        r=est.r,
        r_ci=[est.lo, est.hi],
        r_note=est.note,
        r_median=est.median,
        r_median_ci=[est.median_lo, est.median_hi],
        r_estimates_disagree=est.disagree,
        r_steps=est.steps,
        r_block=est.block,
        r_over_pred=versus[0],
        r_over_pred_ci=list(versus[1:]),
        r_pred_verdict=equivalence((est.lo, est.hi), r_pred, margin),
        r_pred_margin=margin,
    )


def val_batch_weights(state: RunState, n_batches: int) -> list[float] | None:
    """Blocks per validation batch (every batch `batch_size` blocks but the last), when the log says
    how many validation blocks there are (`data.n_val_blocks`); None for older logs (equal weights)."""
    blocks, size = state.data_info.n_val_blocks, state.settings.batch_size
    if blocks is None or not isinstance(size, int) or size <= 0 or n_batches <= 0:
        return None
    last = blocks - size * (n_batches - 1)
    return [float(size)] * (n_batches - 1) + [float(last)] if 0 < last <= size else None


def val_comparison(state: RunState, base: str, name: str) -> tuple[float, float, float]:
    """L_name - L_base on validation, paired by batch (the same batches for both), weighted by tokens."""
    arm, ref = state.arms.get(name), state.arms.get(base)
    if arm is None or ref is None or not arm.epochs or not ref.epochs:
        return NAN3
    mine, theirs = list(arm.epochs[-1][1].val_batch_losses), list(ref.epochs[-1][1].val_batch_losses)
    if len(mine) != len(theirs) or not mine:
        return NAN3
    return weighted_paired_ci95([_f(v) for v in theirs], [_f(v) for v in mine], val_batch_weights(state, len(mine)))


def share(samples: SampleSet | None) -> tuple[float, float, float]:
    """p of a sample set: the mean within each prompt, a t interval over prompts (clipped to [0, 1])."""
    return samples.p if samples is not None else NAN3


def share_change(before: SampleSet | None, after: SampleSet | None) -> tuple[float, float, float]:
    """Δp: sample i after minus its twin before (same prompt and seed), mean within prompt, t interval
    over prompts, clipped to [-1, 1]."""
    if before is None or after is None:
        return NAN3
    pre = {s.index: s for s in before.samples if s.p is not None}
    post = {s.index: s for s in after.samples if s.p is not None}
    both = sorted(set(pre) & set(post))
    diffs = [_f(post[i].p) - _f(pre[i].p) for i in both]
    return clustered_mean_ci95(diffs, [post[i].prompt_index for i in both], -1.0, 1.0)


def sampler(state: RunState) -> str:
    """How p's samples were drawn (engine/train/generate.py: top-k 40 at temperature 1, a seed per
    sample shared by every arm), from the run's config: shown beside p."""
    config = state.settings
    prompts, seeds, tokens = (_or_unknown(v) for v in (config.sample_prompts, config.samples, config.sample_tokens))
    return f"{prompts} prompts × {seeds} seeds × {tokens} tokens, top-k 40 sampling"


def _or_unknown(value: object) -> object:
    return "?" if value is None else value


def _f(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


class PairComparison(msgspec.Struct, frozen=True):
    """`report --pair A,B`: B against A within one run (the JSON report's `pair`, keys in this order): the
    arms, the seed replicate whose steps and samples they are (None without --seeds), B's TimeComparison
    with A as its baseline, the validation-loss gap L_B - L_A and p_post of B minus p_post of A."""

    arms: list[str]
    replicate: int | None
    r: float
    r_ci: list[float]
    r_note: str
    r_median: float
    r_median_ci: list[float]
    r_estimates_disagree: bool
    r_steps: int
    r_block: int
    r_over_pred: float
    r_over_pred_ci: list[float]
    r_pred_verdict: str | None
    r_pred_margin: float
    val_diff: float
    val_diff_ci: list[float]
    p_post_diff: float
    p_post_diff_ci: list[float]


def pair_row(state: RunState, first: str, second: str) -> PairComparison:
    """`report --pair A,B`: B against A, paired: r of B with A as baseline (their step times), the
    validation-loss gap L_B - L_A (same batches) and p_post of B minus p_post of A (same prompts and
    seeds), all clustered and intervalled as the per-arm comparisons. Arms of one run only."""
    for name in (first, second):
        if name not in state.arms:
            raise FreezeTuiError(f"--pair: no arm {name!r} in the log (arms: {', '.join(state.arms)})")
    if first == second:
        raise FreezeTuiError("--pair needs two different arms, as A,B")
    if not any(first in group and second in group for group in run_groups(state)):
        raise FreezeTuiError(f"--pair: {first} and {second} are from separate runs, whose times are not paired")
    val = val_comparison(state, first, second)
    timing = time_comparison(state, first, second)
    assert timing is not None  # two different arms
    p_diff = share_change(state.arms[first].samples, state.arms[second].samples)
    return PairComparison(
        arms=[first, second],
        replicate=state.replicate if state.past else None,  # with --seeds: the last seed's steps and samples
        **msgspec.structs.asdict(timing),
        val_diff=val[0],
        val_diff_ci=list(val[1:]),
        p_post_diff=p_diff[0],
        p_post_diff_ci=list(p_diff[1:]),
    )
