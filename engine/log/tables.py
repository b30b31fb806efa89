"""A run log as tidy tables (one observation per row) for `freeze-tui export`. No torch.

Each table is its columns and a function from one event to its rows; `summary_rows` gives the
report's numbers per arm from the folded RunState. Values stay plain numbers (None where the
log has none), so pandas, R or a spreadsheet read them as written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import msgspec

from engine.log import events as ev
from engine.log.state import RunState
from engine.log.study import study_summary
from engine.log.summary import arm_rows

Row = tuple


def step_rows(e: ev.Event) -> Iterable[Row]:
    if isinstance(e, ev.Step):
        for arm, rec in e.arms.items():
            yield e.step, e.epoch, arm, rec.loss, rec.dt, rec.lr


def dw_rows(e: ev.Event) -> Iterable[Row]:
    if isinstance(e, ev.DW):
        for arm, rec in e.by_arm().items():
            for matrix, value in rec.dw.items():
                yield e.step, arm, matrix, value, rec.drift.get(matrix), rec.rel.get(matrix)


def sample_rows(e: ev.Event) -> Iterable[Row]:
    if isinstance(e, ev.Sample):
        tokens = e.tokens if isinstance(e.tokens, list) else []
        in_s = sum(1 for t in tokens if isinstance(t, (list, tuple)) and len(t) > 1 and t[1] is True)
        yield e.phase, e.epoch, e.arm, e.index, e.p, len(tokens), in_s, e.prompt, e.text


# name -> (columns, rows of one event)
EVENT_TABLES: dict[str, tuple[tuple[str, ...], Callable[[ev.Event], Iterable[Row]]]] = {
    "steps": (("step", "epoch", "arm", *ev.ArmStep.__struct_fields__), step_rows),
    "dw": (("step", "arm", "matrix", *ev.ArmDW.__struct_fields__), dw_rows),
    "samples": (("phase", "epoch", "arm", "index", "p", "n_tokens", "n_common", "prompt", "text"), sample_rows),
}

SUMMARY_COLUMNS = (
    "arm",
    "spec",
    "trainable_pct",
    "epochs",
    "loss_first",
    "loss_last",
    "loss_var",
    "val_loss",
    "T",
    "r",
    "r_pred",
    "p_pre",
    "p_pre_lo",
    "p_pre_hi",
    "p_post",
    "p_post_lo",
    "p_post_hi",
    "delta_p",
    "stopped",
    # the Frontier's numbers (engine.log.frontier); empty for logs without retain / expected-S fields
    "val_diff",
    "val_diff_lo",
    "val_diff_hi",
    "target_gain",
    "target_gain_lo",
    "target_gain_hi",
    "retain_loss_pre",
    "retain_loss",
    "forgetting",
    "forgetting_lo",
    "forgetting_hi",
    "forgetting_vs_full",
    "forgetting_vs_full_lo",
    "forgetting_vs_full_hi",
    "expected_s_pre",
    "expected_s",
    "common_base_rate",
    "pareto_time",
    "pareto_forget",
    # r's and Δp's intervals; `freeze-tui study`: a method's val loss vs the mean of the random controls
    "r_lo",
    "r_hi",
    "delta_p_lo",
    "delta_p_hi",
    "vs_random",
    "vs_random_lo",
    "vs_random_hi",
    "random_verdict",
    "status",
)


def summary_rows(state: RunState) -> list[Row]:
    """The report's numbers, one row per arm (intervals as their own columns)."""
    rows = []
    arms = arm_rows(state)
    study = study_summary(state, {r.arm: r for r in arms})
    for r in arms:
        (pre_lo, pre_hi), (post_lo, post_hi) = r.p_pre_ci, r.p_post_ci
        bounds = {"p_pre_lo": pre_lo, "p_pre_hi": pre_hi, "p_post_lo": post_lo, "p_post_hi": post_hi}
        flat = {**msgspec.structs.asdict(r), **bounds, "status": state.status}
        method = study.methods.get(r.arm) if study is not None else None
        if method is not None:
            flat |= {"vs_random": method.vs_random, "vs_random_ci": method.vs_random_ci}
            flat["random_verdict"] = method.verdict
        for key in ("val_diff", "target_gain", "forgetting", "forgetting_vs_full", "r", "delta_p", "vs_random"):
            ci = flat.get(f"{key}_ci")
            if isinstance(ci, (list, tuple)) and len(ci) == 2:
                flat[f"{key}_lo"], flat[f"{key}_hi"] = ci
        rows.append(tuple(_plain(_unset_nan(flat.get(c, math.nan))) for c in SUMMARY_COLUMNS))
    return rows


def _unset_nan(value):
    return math.nan if isinstance(value, msgspec.UnsetType) else value


def _plain(value):
    """NaN (no value) as None: an empty cell, not the text 'nan'."""
    return None if isinstance(value, float) and math.isnan(value) else value
