"""The study's numbers per arm, derived from a RunState: for run_end, `report`, `export` and the headless end.

Data only (no torch, no formatting): freeze_tui/draw/report.py words them for people."""

from __future__ import annotations

import math

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
    """One dict per arm: loss at the start -> end (`loss_basis` says how), Var = variance of the step
    losses in the last epoch, validation loss and its paired difference vs the baseline, T, r with
    its block-bootstrap interval and median-step estimate, r_pred and whether it lies in the interval,
    p_pre -> p_post (95 % intervals, clipped) beside the base rate, paired Δp, trainable %. With
    replicates (--seeds N) the headline numbers are means across seeds with intervals across seeds."""
    seeds = summarised_seeds(state)
    if len(seeds) == 1:
        rows = [_arm_row(seeds[0], name) for name in seeds[0].arms]
    else:
        rows = _across_seeds(state, seeds)
    return [_typed(row) for row in _holm_adjusted(rows, len(seeds))]


def summarised_seeds(state: RunState) -> list[RunState]:
    """The replicates the summary covers: with --seeds N stopped part-way, the finished seeds only (a
    partial seed's numbers are not comparable); the run as it is when no seed finished or N is 1."""
    return state.finished_replicates or [state]


def _typed(row: dict) -> ev.ArmSummary:
    """The one per-arm summary type (p as its mean, the interval beside it; loss_final = loss_last)."""
    (p_pre, *p_pre_ci), (p_post, *p_post_ci) = row.pop("p_pre"), row.pop("p_post")
    fields = {k: v for k, v in row.items() if k in ev.ArmSummary.__struct_fields__}
    return ev.ArmSummary(
        **fields, p_pre=p_pre, p_pre_ci=p_pre_ci, p_post=p_post, p_post_ci=p_post_ci, loss_final=row["loss_last"]
    )


FAMILY = ("r", "val_diff", "delta_p")  # each arm's primary comparisons (vs its run's baseline), as printed


def _holm_adjusted(rows: list[dict], seeds: int) -> list[dict]:
    """Holm-adjusted p values (`<key>_p_holm`) over the family of every interval the report prints for
    the arms that are not a baseline: with ~9 intervals one excluding 0 by chance is likely."""
    slots = [(i, key) for i, row in enumerate(rows) if not row["is_baseline"] for key in FAMILY]
    raw = []
    for i, key in slots:
        row = rows[i]
        lo, hi = row.get(f"{key}_ci", [math.nan, math.nan])
        df = seeds - 1 if seeds > 1 else row.get(f"{key}_df", math.inf)  # r's bootstrap interval: normal
        raw.append(p_value(row[key], lo, hi, df))
    for (i, key), p in zip(slots, holm(raw), strict=True):
        rows[i][f"{key}_p_holm"] = p
    for row in rows:
        row["family_size"] = sum(1 for p in raw if not math.isnan(p))
    return rows


def _arm_row(state: RunState, name: str) -> dict:
    arm = state.arms[name]
    base = baseline_of(state, name) or name
    p_pre, p_post = share(state.pre_samples), share(arm.samples)
    first, last, basis = loss_ends(arm)
    val_diff = val_comparison(state, base, name) if name != base else (math.nan, math.nan, math.nan)
    delta_p = share_change(state.pre_samples, arm.samples)
    timing = time_comparison(state, base, name)
    return {
        "arm": name,
        "baseline": base,
        "is_baseline": name == base,
        "spec": arm.spec,
        "trainable_pct": arm.trainable_pct,
        "epochs": len(arm.epochs),
        "loss_first": first,
        "loss_last": last,
        "loss_basis": basis,
        "loss_var": _f(arm.epochs[-1][1].loss_var) if arm.epochs else math.nan,
        "val_loss": _f(arm.epochs[-1][1].val_loss) if arm.epochs else math.nan,
        "val_diff": val_diff[0],
        "val_diff_ci": list(val_diff[1:]),
        "val_diff_df": len(arm.epochs[-1][1].val_batch_losses) - 1 if arm.epochs else 0,
        "T": state.arm_time(name),  # the full sum, warm-up included; r leaves the warm-up out
        "r": 0.0 if name == base and not unpaired(state, name) else math.nan,  # the baseline against itself
        "r_ci": [math.nan, math.nan],
        "r_median": math.nan,
        "r_pred": arm.r_pred,
        "r_pred_verdict": None,
        "ci_basis": "studentised circular block bootstrap over steps",
        **timing,
        "r_note": NOT_PAIRED if unpaired(state, name) else timing.get("r_note", ""),
        "common_base_rate": state.common_base_rate,
        "sampler": sampler(state),
        "p_pre": list(p_pre),
        "p_post": list(p_post),
        "delta_p": delta_p[0],
        "delta_p_ci": list(delta_p[1:]),
        "delta_p_df": len({s.prompt_index for s in arm.samples.samples}) - 1 if arm.samples else 0,
        "stopped": arm.stopped,
        **arm_frontier_fields(state, name),  # target gain, forgetting, expected share of S, Pareto flags
    }


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


ACROSS_SEEDS = ("val_loss", "val_diff", "r", "r_median", "delta_p", "loss_first", "loss_last", "T", "p_pre", "p_post")
ACROSS_SEEDS_IF_MEASURED = ("forgetting", "target_gain")  # runs with step_zero measures


def _across_seeds(state: RunState, replicates: list[RunState]) -> list[dict]:
    """Each replicate's rows, then per arm the mean and 95 % t-interval across seeds of every per-arm
    number (none is the last seed's alone); the FLOP verdict only from more than 3 seeds."""
    per_replicate = [[_arm_row(rep, name) for name in rep.arms] for rep in replicates]
    rows, seeds = per_replicate[-1], len(per_replicate)
    out = []
    for row in rows:
        keys = ACROSS_SEEDS + tuple(k for k in ACROSS_SEEDS_IF_MEASURED if k in row)
        values: dict[str, list[float]] = {key: [] for key in keys}
        for rep in per_replicate:
            match = next((r for r in rep if r["arm"] == row["arm"]), None)
            for key in keys:
                value = match[key][0] if match is not None and key in ("p_pre", "p_post") else (match or {}).get(key)
                if isinstance(value, float) and not math.isnan(value):
                    values[key].append(value)
        merged = {**row, "replicates": seeds, "ci_basis": f"t interval across {seeds} seeds"}
        for key in ("r_median_ci", "r_estimates_disagree", "r_over_pred", "r_over_pred_ci", "r_block", "r_steps"):
            merged.pop(key, None)  # per-replicate step statistics: the across-seed values below replace them
        for key, vals in values.items():
            bounds = (-1.0, 1.0) if key == "delta_p" else (0.0, 1.0) if key in ("p_pre", "p_post") else None
            triple = mean_ci95(vals)
            mean, lo, hi = clipped(triple, *bounds) if bounds else triple
            if key in ("p_pre", "p_post"):
                merged[key] = [mean, lo, hi]
            else:
                merged[key], merged[f"{key}_ci"] = mean, [lo, hi]
        enough = seeds >= MIN_SEEDS_FOR_VERDICT and not row["is_baseline"]
        merged["r_pred_verdict"] = equivalence(merged["r_ci"], row["r_pred"], margin_of(state)) if enough else None
        out.append(merged)
    return out


def summarize(state: RunState, extra: dict | None = None) -> dict:
    """The run_end summary: per arm its ArmSummary (T, loss_final, p_pre, p_post, ...) and `extra`
    ({key: {arm: value}}); r per arm vs its baseline; `study` when the run is a study (--arm-roles)."""
    out = ev.run_summary(
        arm_rows(state),
        extra or {},
        baseline=state.baseline,
        steps=state.step + 1,
        replicates=len(summarised_seeds(state)),
        common_base_rate=state.common_base_rate,
    )
    study = study_summary(state, ev.summary_arms(out))  # `freeze-tui study`: does each method beat random?
    if study is not None:
        out["study"] = study
    return out


def _f(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
