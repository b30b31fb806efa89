"""Time view: t_k per epoch per arm, T, and the saving r measured live next to the FLOP model's prediction."""

from __future__ import annotations

import math

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from engine.log.state import RunState
from freeze_tui import fmt
from freeze_tui.colors import arm_style
from freeze_tui.safe_text import safe

MAX_EPOCH_COLUMNS = 6  # older epochs fold into T; the table must fit 80 columns


def predicted_saving(state: RunState, name: str) -> float:
    """r predicted by the FLOP model: the arm's r_pred, else 1 - flop_ratio."""
    arm = state.arms[name]
    if not math.isnan(arm.r_pred):
        return arm.r_pred
    return 1.0 - arm.flop_ratio if not math.isnan(arm.flop_ratio) else math.nan


def _epochs_shown(state: RunState) -> list[int]:
    epochs = sorted({int(rec["epoch"]) for arm in state.arms.values() for rec in arm.epochs})
    return epochs[-MAX_EPOCH_COLUMNS:]


def time_table(state: RunState) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    epochs = _epochs_shown(state)
    table.add_column("arm")
    for k in epochs:
        table.add_column(f"t_{k + 1}", justify="right")
    for title in ("T", "r measured", "r FLOP model"):
        table.add_column(title, justify="right")
    for index, (name, arm) in enumerate(state.arms.items()):
        t_k = {int(rec["epoch"]): rec.get("t_epoch") for rec in arm.epochs}
        row = [safe(name, f"bold {arm_style(index)}", max_len=16)]
        row += [Text(fmt.duration(t_k.get(k))) for k in epochs]
        measured = (
            Text("baseline", style="dim") if name == state.baseline else Text(fmt.pct(state.saving(name)), "bold")
        )
        row += [Text(fmt.duration(state.arm_time(name))), measured, Text(fmt.pct(predicted_saving(state, name)), "dim")]
        table.add_row(*row)
    return table


def time_bars(state: RunState, width: int = 40) -> Text:
    """T per arm as horizontal bars, so the saving is visible at a glance."""
    times = {name: state.arm_time(name) for name in state.arms}
    top = max((t for t in times.values() if t > 0), default=0.0)
    lines = []
    for index, (name, t) in enumerate(times.items()):
        n = round(width * t / top) if top else 0
        label = safe(name, max_len=12)
        label.pad_right(13 - len(label.plain))
        lines.append(label + Text("█" * n, style=arm_style(index)) + Text(f" {fmt.duration(t)}"))
    return Text("\n").join(lines)


def time_renderable(state: RunState) -> Group:
    base = state.baseline or "full"
    note = Text(f"r = (T_{base} − T_arm) / T_{base}, measured so far; FLOP model: 1 − FLOP ratio", style="dim")
    return Group(time_table(state), Text(""), time_bars(state), Text(""), note)


class TimeView(VerticalScroll):
    def compose(self) -> ComposeResult:
        yield Static(id="time-text")

    def show(self, state: RunState) -> None:
        key = (state.step, sum(len(a.epochs) for a in state.arms.values()), state.status)
        if key != getattr(self, "_drawn", None):
            self._drawn = key
            self.query_one("#time-text", Static).update(time_renderable(state))
