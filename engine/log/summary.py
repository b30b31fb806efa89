"""The study's table per arm, derived from a RunState: for run_end, `report` and the headless end. No torch."""

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


# -- formatting -------------------------------------------------------------------------------------
def fmt(value, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, spec)


def fmt_pct(value) -> str:
    return "–" if value is None or math.isnan(value) else f"{100 * value:.1f} %"


def fmt_p(triple) -> str:
    mean, lo, hi = triple
    if math.isnan(mean):
        return "–"
    if lo == hi:
        return f"{100 * mean:.1f} %"
    return f"{100 * mean:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]"


def table_cells(row: dict, *, intervals: bool = True) -> list[str]:
    """The report's columns for one arm, as text (shared by Markdown and the headless table);
    without `intervals` the p column is compact enough for an 80-column terminal."""
    p_pre, p_post = row["p_pre"], row["p_post"]
    p_cell = (
        f"{fmt_p(p_pre)} → {fmt_p(p_post)}"
        if intervals
        else f"{fmt_pct(p_pre[0]).removesuffix(' %')}→{fmt_pct(p_post[0])}"
    )
    return [
        row["arm"],
        f"{fmt(row['trainable_pct'], '.2f')} %",
        f"{fmt(row['loss_first'])} → {fmt(row['loss_last'])}",
        fmt(row["loss_var"], ".4f"),
        fmt(row["val_loss"]),
        f"{fmt(row['T'], '.1f')} s",
        fmt_pct(row["r"]),
        fmt_pct(row["r_pred"]),
        p_cell,
        "–" if math.isnan(row["delta_p"]) else f"{100 * row['delta_p']:+.1f} pt",
    ]


TABLE_HEADERS = [
    "arm",
    "trainable",
    "loss L_1 → L_K",
    "Var(L_k)",
    "val loss",
    "T",
    "r measured",
    "r FLOP model",
    "p_pre → p_post (95 % CI)",
    "Δp",
]
COMPACT_HEADERS = ["arm", "trains", "loss L1→LK", "Var", "val", "T", "r", "r FLOP", "p pre→post", "Δp"]


def status_line(state: RunState) -> str:
    status = state.status
    if status == "finished":
        return "The run finished."
    if status in ("stopped", "failed"):
        return f"**The run {status}** after {state.step + 1} steps: numbers cover only what ran."
    return (
        f"**The run did not finish** (no run_end after {state.step + 1} steps): "
        "its writer was killed or is still running."
    )


def markdown_report(state: RunState, source: str = "") -> str:
    """The study's table as Markdown, for `freeze-tui report`."""
    model = state.model.get("name", "?")
    lines = [
        f"# freeze-tui report{': ' + source if source else ''}",
        "",
        f"Model: {model} · data: {state.data.get('source', '?')} "
        f"({state.data.get('n_tokens', '?')} tokens) · device: {state.config.get('device', '?')} · "
        f"steps: {state.step + 1}",
        "",
        status_line(state),
        "",
    ]
    lines.append("| " + " | ".join(TABLE_HEADERS) + " |")
    lines.append("|" + "---|" * len(TABLE_HEADERS))
    for row in arm_rows(state):
        cells = [c.replace("|", "\\|") for c in table_cells(row)]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- arm {r['arm']} stopped early: {r['stopped']}" for r in arm_rows(state) if r["stopped"]]
    errors = [f"- {m.level}: {m.message}" for m in state.messages if m.level == "error"]
    if notes or errors:
        lines += ["", *notes, *errors]
    if state.arms:  # a run that failed before it started has no arms to explain
        lines += [
            "",
            f"r = (T_{state.baseline} − T_arm) / T_{state.baseline}; p = share of generated tokens "
            f"among the {len(state.common_tokens)} most common training tokens.",
        ]
    return "\n".join(lines) + "\n"


def _f(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
