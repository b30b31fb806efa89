"""A run log as tidy tables (one observation per row) for `freeze-tui export`. No torch.

Each table is its columns and a function from one event to its rows; `summary_rows` gives the
report's numbers per arm from the folded RunState. Values stay plain numbers (None where the
log has none), so pandas, R or a spreadsheet read them as written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from engine.log import events as ev
from engine.log.state import RunState
from engine.log.summary import arm_rows

Row = tuple


def step_rows(e: ev.Event) -> Iterable[Row]:
    if isinstance(e, ev.Step):
        for arm, rec in e.arms.items():
            rec = rec if isinstance(rec, dict) else {}
            yield e.step, e.epoch, arm, rec.get("loss"), rec.get("dt"), rec.get("lr")


def dw_rows(e: ev.Event) -> Iterable[Row]:
    if isinstance(e, ev.DW):
        for arm, norms in e.arms.items():
            if not isinstance(norms, dict):
                continue
            drift, rel = _maps(e.drift, arm), _maps(e.rel, arm)
            for matrix, value in norms.items():
                yield e.step, arm, matrix, value, drift.get(matrix), rel.get(matrix)


def sample_rows(e: ev.Event) -> Iterable[Row]:
    if isinstance(e, ev.Sample):
        tokens = e.tokens if isinstance(e.tokens, list) else []
        in_s = sum(1 for t in tokens if isinstance(t, (list, tuple)) and len(t) > 1 and t[1] is True)
        yield e.phase, e.epoch, e.arm, e.index, e.p, len(tokens), in_s, e.prompt, e.text


def _maps(maps, arm: str) -> dict:
    value = maps.get(arm) if hasattr(maps, "get") else None
    return value if isinstance(value, dict) else {}


# name -> (columns, rows of one event)
EVENT_TABLES: dict[str, tuple[tuple[str, ...], Callable[[ev.Event], Iterable[Row]]]] = {
    "steps": (("step", "epoch", "arm", "loss", "dt", "lr"), step_rows),
    "dw": (("step", "arm", "matrix", "dw", "drift", "rel"), dw_rows),
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
)


def summary_rows(state: RunState) -> list[Row]:
    """The report's numbers, one row per arm (intervals as their own columns)."""
    rows = []
    for r in arm_rows(state):
        flat = {**r, **_triple("p_pre", r["p_pre"]), **_triple("p_post", r["p_post"])}
        for key in ("val_diff", "target_gain", "forgetting", "forgetting_vs_full"):
            ci = r.get(f"{key}_ci")
            if isinstance(ci, list) and len(ci) == 2:
                flat[f"{key}_lo"], flat[f"{key}_hi"] = ci
        rows.append(tuple(_plain(flat.get(c, math.nan)) for c in SUMMARY_COLUMNS))
    return rows


def _triple(name: str, value) -> dict:
    mean, lo, hi = value
    return {name: mean, f"{name}_lo": lo, f"{name}_hi": hi}


def _plain(value):
    """NaN (no value) as None: an empty cell, not the text 'nan'."""
    return None if isinstance(value, float) and math.isnan(value) else value
