"""Log view: warnings and errors, newest first, with their arm and time since the run began."""

from __future__ import annotations

import math

from rich.text import Text

from engine.log.state import Message, RunState
from freeze_tui.app.widgets.state_view import TextView
from freeze_tui.draw import fmt
from freeze_tui.draw.colors import PLAIN, Palette
from freeze_tui.draw.merged_runs import fit_arm
from freeze_tui.draw.safe_text import safe

LEVEL = {"warning": ("W", "paused"), "error": ("E", "failed")}  # tag, palette name (app.tcss)


def message_line(message: Message, t_start: float, palette: Palette = PLAIN) -> Text:
    tag, name = LEVEL.get(message.level, ("?", "paused"))
    if message.fatal:
        tag, name = "E!", "fatal"
    style = palette.style(name)
    since = message.t - t_start if not math.isnan(t_start) else math.nan
    line = Text.assemble((f"{tag:<2} ", style), (f"+{fmt.duration(since):>8}  ", "dim"))
    if message.arm:
        line += safe(fit_arm(message.arm, 16), "bold", max_len=16) + Text("  ")
    return line + safe(message.message, style if message.level == "error" else "", max_len=1000)


def log_text(state: RunState, palette: Palette = PLAIN) -> Text:
    if not state.messages:
        return Text("no warnings or errors", style="dim")
    return Text("\n").join(message_line(m, state.t_start, palette) for m in reversed(state.messages))


class LogView(TextView):
    TEXT_ID = "log-text"

    def key(self, state: RunState) -> tuple:
        return len(state.messages), state.messages[-1].seq if state.messages else None

    def text(self, state: RunState) -> Text:
        return log_text(state, self.palette)
