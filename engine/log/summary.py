"""The study's numbers per arm, derived from a RunState: for run_end, `report`, `export` and the headless end.

Data only (no torch, no formatting): freeze_tui/draw/report.py words them for people."""

from __future__ import annotations

import math
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType
from msgspec.structs import replace

from engine.core.stats import MIN_SEEDS_FOR_VERDICT, clipped, equivalence, holm, mean_ci95, mean_var, p_value
from engine.log import events as ev
from engine.log.comparisons import (
    NOT_PAIRED,
    baseline_of,
    margin_of,
    sampler,
    share,
    share_change,
    time_comparison,
    unpaired,
    val_comparison,
)
from engine.log.frontier import arm_frontier_fields
from engine.log.state import RunState
from engine.log.study import study_summary

LOSS_TENTH = "first/last 10 % of steps"
LOSS_EPOCHS = "epoch means"


def arm_rows(state: RunState) -> list[ev.ArmSummary]:
    """One ArmSummary per arm: loss at the start -> end (`loss_basis` says how), Var = variance of the step
    losses in the last epoch, validation loss and its paired difference vs the baseline, T, r with
    its block-bootstrap interval and median-step estimate, r_pred and whether it lies in the interval,
    p_pre -> p_post (95 % intervals, clipped) beside the base rate, paired Δp, trainable %. With
    replicates (--seeds N) the headline numbers are means across seeds with intervals across seeds."""
    seeds = summarised_seeds(state)
    if len(seeds) == 1:
        rows = [_arm_row(seeds[0], name) for name in seeds[0].arms]
    else:
        rows = _across_seeds(state, seeds)
    return _holm_adjusted(rows, len(seeds))


def summarised_seeds(state: RunState) -> list[RunState]:
    """The replicates the summary covers: with --seeds N stopped part-way, the finished seeds only (a
    partial seed's numbers are not comparable); the run as it is when no seed finished or N is 1."""
    return state.finished_replicates or [state]


def _holm_adjusted(rows: list[ev.ArmSummary], seeds: int) -> list[ev.ArmSummary]:
    """Holm-adjusted p values (`*_p_holm`) over the family of every interval the report prints for the
    arms that are not a baseline (r, validation gap, Δp each): with ~9 intervals one excluding 0 by
    chance is likely."""
    raw = [p for row in rows if not row.is_baseline for p in _family(row, seeds)]
    adjusted = iter(holm(raw))
    size = sum(1 for p in raw if not math.isnan(p))
    out = []
    for row in rows:
        if not row.is_baseline:
            r_p, val_diff_p, delta_p_p = next(adjusted), next(adjusted), next(adjusted)
            row = replace(row, r_p_holm=r_p, val_diff_p_holm=val_diff_p, delta_p_p_holm=delta_p_p)
        out.append(replace(row, family_size=size))
    return out


def _family(row: ev.ArmSummary, seeds: int) -> tuple[float, float, float]:
    """The raw p values of an arm's primary comparisons (vs its run's baseline), as printed: r, val_diff, Δp."""
    # across seeds t intervals; else r's bootstrap interval is normal, the others t over batches / prompts
    dfs = (seeds - 1,) * 3 if seeds > 1 else (math.inf, row.val_diff_df, row.delta_p_df)
    tests = ((row.r, row.r_ci), (row.val_diff, row.val_diff_ci), (row.delta_p, row.delta_p_ci))
    r_p, val_diff_p, delta_p_p = (p_value(value, ci[0], ci[1], df) for (value, ci), df in zip(tests, dfs, strict=True))
    return r_p, val_diff_p, delta_p_p


def _arm_row(state: RunState, name: str) -> ev.ArmSummary:
    arm = state.arms[name]
    base = baseline_of(state, name) or name
    p_pre, p_post = share(state.pre_samples), share(arm.samples)
    first, last, basis = loss_ends(arm)
    val_diff = val_comparison(state, base, name) if name != base else (math.nan, math.nan, math.nan)
    delta_p = share_change(state.pre_samples, arm.samples)
    last_epoch = arm.epochs[-1][1] if arm.epochs else None
    row = ev.ArmSummary(
        arm=name,
        baseline=base,
        is_baseline=name == base,
        spec=arm.spec,
        trainable_pct=arm.trainable_pct,
        epochs=len(arm.epochs),
        loss_first=first,
        loss_last=last,
        loss_basis=basis,
        loss_var=_f(last_epoch.loss_var) if last_epoch else math.nan,
        val_loss=_f(last_epoch.val_loss) if last_epoch else math.nan,
        val_diff=val_diff[0],
        val_diff_ci=list(val_diff[1:]),
        val_diff_df=len(last_epoch.val_batch_losses) - 1 if last_epoch else 0,
        T=state.arm_time(name),  # the full sum, warm-up included; r leaves the warm-up out
        r=0.0 if name == base and not unpaired(state, name) else math.nan,  # the baseline against itself
        r_ci=[math.nan, math.nan],
        r_pred=arm.r_pred,
        ci_basis="studentised circular block bootstrap over steps",
        common_base_rate=state.common_base_rate,
        sampler=sampler(state),
        p_pre=p_pre[0],
        p_pre_ci=list(p_pre[1:]),
        p_post=p_post[0],
        p_post_ci=list(p_post[1:]),
        delta_p=delta_p[0],
        delta_p_ci=list(delta_p[1:]),
        delta_p_df=len({s.prompt_index for s in arm.samples.samples}) - 1 if arm.samples else 0,
        stopped=arm.stopped,
        loss_final=last,
    )
    timing = time_comparison(state, base, name)
    if timing is not None:
        row = replace(row, **msgspec.structs.asdict(timing))
    if unpaired(state, name):
        row = replace(row, r_note=NOT_PAIRED)
    frontier = arm_frontier_fields(state, name)  # target gain, forgetting, expected share of S, Pareto flags
    return replace(row, **msgspec.structs.asdict(frontier)) if frontier is not None else row


def loss_ends(arm) -> tuple[float, float, str]:
    """Training loss at the start and the end: first and last epoch means with two or more epochs,
    else the means of the first and last tenth of the steps (one epoch's mean twice says nothing)."""
    means = [v for v in (_f(rec.loss_mean) for _, rec in arm.epochs) if not math.isnan(v)]
    if len(means) >= 2:
        return means[0], means[-1], LOSS_EPOCHS
    losses = [v for v in arm.losses if not math.isnan(v)]
    if not losses:
        return math.nan, math.nan, LOSS_TENTH
    k = max(1, len(losses) // 10)
    return mean_var(losses[:k])[0], mean_var(losses[-k:])[0], LOSS_TENTH


def _across_seeds(state: RunState, replicates: list[RunState]) -> list[ev.ArmSummary]:
    """Each replicate's rows, then per arm the mean and 95 % t-interval across seeds of every per-arm
    number (ev.SEED_MEANS: none is the last seed's alone); the FLOP verdict only from more than 3 seeds."""
    per_replicate = [{row.arm: row for row in (_arm_row(rep, name) for name in rep.arms)} for rep in replicates]
    seeds = len(per_replicate)
    return [
        _seed_means(state, row, [rep.get(row.arm) for rep in per_replicate], seeds)
        for row in per_replicate[-1].values()
    ]


def _seed_means(state: RunState, row: ev.ArmSummary, twins: list[ev.ArmSummary | None], seeds: int) -> ev.ArmSummary:
    """The last seed's row with the means across seeds (`twins`: the arm's row in each seed, None where
    the seed lacks it) and intervals across seeds in place of its own."""
    means: dict[str, Any] = {}
    for seed_mean in ev.SEED_MEANS:
        if isinstance(getattr(row, seed_mean.field), UnsetType):
            continue
        values = [v for twin in twins if twin is not None for v in [getattr(twin, seed_mean.field)] if _measured(v)]
        triple = mean_ci95(values)
        mean, lo, hi = clipped(triple, *seed_mean.bounds) if seed_mean.bounds else triple
        means[seed_mean.field], means[seed_mean.interval] = mean, [lo, hi]
    # the per-replicate step statistics have no across-seed value: the intervals above replace them
    row = replace(row, r_median_ci=UNSET, r_estimates_disagree=UNSET, r_steps=UNSET, r_block=UNSET)
    row = replace(row, r_over_pred=UNSET, r_over_pred_ci=UNSET)
    merged = replace(row, replicates=seeds, ci_basis=f"t interval across {seeds} seeds", **means)
    enough = seeds >= MIN_SEEDS_FOR_VERDICT and not row.is_baseline
    verdict = equivalence(merged.r_ci, row.r_pred, margin_of(state)) if enough else None
    return replace(merged, r_pred_verdict=verdict, loss_final=merged.loss_last)


def _measured(value: object) -> bool:
    return isinstance(value, float) and not math.isnan(value)


def summarize(state: RunState, extra: dict | None = None) -> dict:
    """The run_end summary: per arm its ArmSummary (T, loss_final, p_pre, p_post, ...) and `extra`
    ({key: {arm: value}}); r per arm vs its baseline; `study` when the run is a study (--arm-roles)."""
    rows = arm_rows(state)
    out = ev.run_summary(
        rows,
        extra or {},
        baseline=state.baseline,
        steps=state.step + 1,
        replicates=len(summarised_seeds(state)),
        common_base_rate=state.common_base_rate,
    )
    study = study_summary(state, {row.arm: row for row in rows})  # `freeze-tui study`: does each method beat random?
    if study is not None:
        out["study"] = msgspec.to_builtins(study)  # the event holds plain data; the same keys in the same order
    return out


def _f(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
