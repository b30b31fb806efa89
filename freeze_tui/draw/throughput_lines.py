"""Each arm's training throughput in words (tokens/s and MFU), for the Time view and `report`. Pure."""

from __future__ import annotations

from engine.log.state import RunState
from engine.log.throughput import arm_throughput, read_record
from freeze_tui.draw import fmt


def throughput_lines(state: RunState) -> list[str]:
    """One line per arm that has figures, then where the peak came from; [] for a log from before
    issue 22 (it records no FLOPs per token)."""
    record = read_record(state)
    if record is None:
        return []
    lines = []
    for name in state.arms:
        figures = arm_throughput(state, name)
        if figures is None:
            continue
        mfu = f"MFU {fmt.pct(figures.mfu)}" if figures.mfu is not None else "MFU – (no peak known)"
        lines.append(f"{name} {fmt.rate(figures.tokens_per_s)} · {mfu}")
    if lines and record.peak_basis:
        lines.append(f"MFU = FLOP-model FLOPs/s ÷ peak ({record.peak_basis})")
    return lines
