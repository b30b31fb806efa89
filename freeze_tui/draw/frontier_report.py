"""`report`'s second table: per arm val gap, target-loss gain, forgetting, expected share of S and the
Pareto flags (engine.log.frontier). Shown only for runs that measured them (a retain set or expected S)."""

from __future__ import annotations

import math

from engine.log.events import StudyResult
from engine.log.frontier import FrontierPoint, frontier_points
from engine.log.state import RunState
from freeze_tui.draw import fmt

HEADERS = (
    "arm",
    "r",
    "val gap (95 %)",
    "target gain (95 %)",
    "forgetting (95 %)",
    "forgetting − full's (95 %)",
    "E[S] step 0 → now",
    "Pareto",
)


def _loss(value: tuple[float, float, float]) -> str:
    v, lo, hi = value
    if not math.isfinite(v):
        return fmt.DASH
    return f"{v:+.3f}" + (f" [{lo:+.3f}, {hi:+.3f}]" if math.isfinite(lo) and math.isfinite(hi) else "")


def measured(points: list[FrontierPoint]) -> bool:
    return any(math.isfinite(p.forgetting[0]) or math.isfinite(p.expected_s) for p in points)


def frontier_cells(p: FrontierPoint) -> list[str]:
    fronts = [name for name, on in (("time", p.front_time), ("learning–forgetting", p.front_forget)) if on]
    return [
        p.arm,
        fmt.pct(p.r[0]),
        _loss(p.val_gap),
        _loss(p.target_gain),
        _loss(p.forgetting),
        _loss(p.forgetting_vs_full) if not p.is_baseline else fmt.DASH,
        f"{fmt.pct(p.expected_s_pre)} → {fmt.pct(p.expected_s)}",
        ", ".join(fronts) or fmt.DASH,
    ]


def frontier_legend(state: RunState) -> str:
    base = state.baseline
    retain = state.data_info.retain
    where = f" ({retain.n_blocks} blocks of {retain.source})" if retain is not None else ""
    return (
        f"Val gap: L_arm − L_{base} on the same validation batches. Target gain: validation loss at step 0 − now. "
        f"Forgetting: loss on the retain set{where} now − at step 0, paired by retain batch (all arms start "
        f"equal). E[S]: the probability mass on S's tokens at the validation positions, sampler-free; the "
        f"validation text's own share of S is {fmt.pct(state.common_base_rate)}. Pareto: no other arm has at "
        "least as much r with at most the val gap (time), or at least the gain with at most the forgetting."
    )


def frontier_markdown(state: RunState) -> list[str]:
    """Markdown lines (a heading, the table, its legend), or none when nothing was measured."""
    points = frontier_points(state)
    if not measured(points):
        return []
    lines = ["", "## What each arm learned, forgot, and where it stands", ""]
    lines.append("| " + " | ".join(HEADERS) + " |")
    lines.append("|" + "---|" * len(HEADERS))
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in frontier_cells(p)) + " |" for p in points]
    return [*lines, "", frontier_legend(state)]


def frontier_console_lines(state: RunState) -> list[str]:
    """One line per arm for a terminal of any width (the Markdown table is wider than 80 columns)."""
    points = frontier_points(state)
    if not measured(points):
        return []
    out = []
    for p in points:
        cells = frontier_cells(p)
        out.append(
            f"{cells[0]}: val gap {cells[2]}; gain {cells[3]}; forgetting {cells[4]}"
            f"{'' if p.is_baseline else f' (vs full {cells[5]})'}; E[S] {cells[6]}; Pareto {cells[7]}"
        )
    return out


def study_lines(study: StudyResult | None) -> list[str]:
    """`freeze-tui study`'s verdicts (run_end.summary.study or engine.log.study), one line per method."""
    if study is None or not study.methods:
        return []
    lines = ["study: validation loss of each method vs the mean of the random arms (95 % interval):"]
    for arm, row in study.methods.items():
        lo, hi = row.vs_random_ci
        gap_lo, gap_hi = row.val_gap_ci
        lines.append(
            f"  {arm}: {_signed(row.vs_random)} [{_signed(lo)}, {_signed(hi)}] {row.vs_random_basis}: "
            f"{row.verdict}; vs full {_signed(row.val_gap)} [{_signed(gap_lo)}, {_signed(gap_hi)}], "
            f"r {fmt.pct(row.r)}"
        )
    return lines


def _signed(value) -> str:
    return fmt.DASH if not isinstance(value, (int, float)) or math.isnan(value) else f"{value:+.3f}"
