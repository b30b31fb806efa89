"""The study's numbers per arm, derived from a RunState: for run_end, `report`, `export` and the headless end.

Data only (no torch, no formatting): freeze_tui/report.py words them for people."""

from __future__ import annotations

import math

import msgspec

from engine.log import events as ev
from engine.log.frontier import arm_frontier_fields
from engine.log.state import RunState
from engine.stats import clipped, inside, mean_ci95, mean_var, paired_ci95
from engine.study import study_summary

LOSS_TENTH = "first/last 10 % of steps"
LOSS_EPOCHS = "epoch means"


def arm_rows(state: RunState) -> list[ev.ArmSummary]:
    """One ArmSummary per arm: loss at the start -> end (`loss_basis` says how), Var = variance of the step
    losses in the last epoch, validation loss and its paired difference vs the baseline, T, r with
    its block-bootstrap interval and median-step estimate, r_pred and whether it lies in the interval,
    p_pre -> p_post (95 % intervals, clipped) beside the base rate, paired Δp, trainable %. With
    replicates (--seeds N) the headline numbers are means across seeds with intervals across seeds."""
    rows = [_arm_row(state, name) for name in state.arms]
    if state.past:
        rows = _across_seeds(state, rows)
    return rows


def _arm_row(state: RunState, name: str) -> ev.ArmSummary:
    arm = state.arms[name]
    p_pre, p_post = state.p_pre(), state.p_post(name)
    first, last, basis = loss_ends(arm)
    r_ci = state.saving_ci(name)
    val_diff = _val_diff(state, name)
    return ev.ArmSummary(
        arm=name,
        is_baseline=name == state.baseline,
        spec=arm.spec,
        trainable_pct=arm.trainable_pct,
        epochs=len(arm.epochs),
        loss_first=first,
        loss_last=last,
        loss_basis=basis,
        loss_var=_f(arm.epochs[-1][1].loss_var) if arm.epochs else math.nan,
        val_loss=_f(arm.epochs[-1][1].val_loss) if arm.epochs else math.nan,
        val_diff=val_diff[0],
        val_diff_ci=list(val_diff[1:]),
        T=state.arm_time(name),
        r=state.saving(name),
        r_ci=list(r_ci[1:]),
        r_median=state.saving_median(name),
        r_pred=arm.r_pred,
        r_pred_inside=inside(arm.r_pred, r_ci[1:]) if name != state.baseline else None,
        ci_basis="paired block bootstrap over steps",
        common_base_rate=state.common_base_rate,
        p_pre=p_pre[0],
        p_post=p_post[0],
        delta_p=p_post[0] - p_pre[0],
        delta_p_ci=list(state.delta_p_ci(name)[1:]),
        stopped=arm.stopped,
        loss_final=last,
        p_pre_ci=list(p_pre[1:]),
        p_post_ci=list(p_post[1:]),
        **arm_frontier_fields(state, name),  # target gain, forgetting, expected share of S, Pareto flags
    )


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


def _val_diff(state: RunState, name: str) -> tuple[float, float, float]:
    """L_arm - L_baseline on validation, paired by validation batch (the same blocks for both)."""
    base = state.baseline
    arm, ref = state.arms[name], state.arms.get(base) if base else None
    if ref is None or not arm.epochs or not ref.epochs:
        return math.nan, math.nan, math.nan
    mine, theirs = arm.epochs[-1][1].val_batch_losses, ref.epochs[-1][1].val_batch_losses
    if len(mine) != len(theirs) or not mine:
        return math.nan, math.nan, math.nan
    return paired_ci95([_f(v) for v in theirs], [_f(v) for v in mine])


ACROSS_SEEDS = ("val_loss", "val_diff", "r", "delta_p", "loss_last", "forgetting", "target_gain")


def _across_seeds(state: RunState, rows: list[ev.ArmSummary]) -> list[ev.ArmSummary]:
    """Each replicate's rows, then per arm the mean and 95 % t-interval across seeds."""
    per_replicate = [[_arm_row(past, name) for name in past.arms] for past in state.past] + [rows]
    out = []
    for row in rows:
        values: dict[str, list[float]] = {key: [] for key in ACROSS_SEEDS}
        for rep in per_replicate:
            match = next((r for r in rep if r.arm == row.arm), None)
            for key in ACROSS_SEEDS:
                value = getattr(match, key, None)
                if isinstance(value, float) and not math.isnan(value):
                    values[key].append(value)
        changes: dict = {"replicates": len(per_replicate), "ci_basis": f"t interval across {len(per_replicate)} seeds"}
        for key, vals in values.items():
            if not vals and isinstance(getattr(row, key), msgspec.UnsetType):
                continue  # not measured in this run (forgetting without step_zero)
            mean, lo, hi = clipped(mean_ci95(vals), -1.0, 1.0) if key == "delta_p" else mean_ci95(vals)
            changes[key], changes[f"{key}_ci"] = mean, [lo, hi]
        changes["loss_final"] = changes["loss_last"]
        changes["r_pred_inside"] = inside(row.r_pred, changes["r_ci"]) if row.arm != state.baseline else None
        out.append(msgspec.structs.replace(row, **changes))
    return out


def summarize(state: RunState, extra: dict | None = None) -> dict:
    """The run_end summary: per arm its ArmSummary (T, loss_final, p_pre, p_post, ...) and `extra`
    ({key: {arm: value}}); r per arm vs the baseline; `study` when the run is a study (--arm-roles)."""
    out = ev.run_summary(
        arm_rows(state),
        extra or {},
        baseline=state.baseline,
        steps=state.step + 1,
        replicates=len(state.past) + 1,
        common_base_rate=state.common_base_rate,
    )
    study = study_summary(state, ev.summary_arms(out))  # `freeze-tui study`: does each method beat random?
    if study is not None:
        out["study"] = study
    return out


def _f(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
