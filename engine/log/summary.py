"""The study's numbers per arm, derived from a RunState: for run_end, `report`, `export` and the headless end.

Data only (no torch, no formatting): freeze_tui/report.py words them for people."""

from __future__ import annotations

import math

from engine.log.state import RunState
from engine.stats import mean_var


def arm_rows(state: RunState) -> list[dict]:
    """One dict per arm: loss first -> last epoch, Var(L_k), validation loss, T, r (measured and
    FLOP-model), p_pre -> p_post with 95 % intervals, delta_p, trainable %."""
    rows = []
    p_pre = state.p_pre()
    for name, arm in state.arms.items():
        epoch_means = [_f(e.get("loss_mean")) for e in arm.epochs]
        finite = [v for v in epoch_means if not math.isnan(v)]
        step_losses = [v for v in arm.losses if not math.isnan(v)]
        p_post = state.p_post(name)
        rows.append(
            {
                "arm": name,
                "spec": arm.spec,
                "trainable_pct": arm.trainable_pct,
                "epochs": len(arm.epochs),
                "loss_first": finite[0] if finite else (step_losses[0] if step_losses else math.nan),
                "loss_last": finite[-1] if finite else (step_losses[-1] if step_losses else math.nan),
                "loss_var": mean_var(finite)[1] if len(finite) > 1 else math.nan,
                "val_loss": _f(arm.epochs[-1].get("val_loss")) if arm.epochs else math.nan,
                "T": state.arm_time(name),
                "r": state.saving(name),
                "r_pred": arm.r_pred,
                "p_pre": list(p_pre),
                "p_post": list(p_post),
                "delta_p": p_post[0] - p_pre[0],
                "stopped": arm.stopped,
            }
        )
    return rows


def summarize(state: RunState, extra: dict | None = None) -> dict:
    """The run_end summary: per arm T, loss_final, p_pre, p_post (+ the rest of arm_rows); r per arm vs full."""
    extra = extra or {}
    arms = {}
    for row in arm_rows(state):
        name = row["arm"]
        arms[name] = {
            **row,
            "loss_final": row["loss_last"],
            "p_pre": row["p_pre"][0],
            "p_post": row["p_post"][0],
            "p_pre_ci": row["p_pre"][1:],
            "p_post_ci": row["p_post"][1:],
        }
        for key, per_arm in extra.items():
            if name in per_arm:
                arms[name][key] = per_arm[name]
    return {
        "arms": arms,
        "r": {name: a["r"] for name, a in arms.items()},
        "baseline": state.baseline,
        "steps": state.step + 1,
    }


def _f(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
