"""Log view: warnings and errors, newest first, with their arm and time since the run began."""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from engine.log.state import Message, RunState
from freeze_tui import fmt
from freeze_tui.safe_text import safe

LEVEL = {"warning": ("W", "bold yellow"), "error": ("E", "bold red")}


def message_line(message: Message, t_start: float) -> Text:
    tag, style = LEVEL.get(message.level, ("?", "bold"))
    if message.fatal:
        tag, style = "E!", "bold white on red"
    since = message.t - t_start if not math.isnan(t_start) else math.nan
    line = Text(f"{tag:<2} ", style=style) + Text(f"+{fmt.duration(since):>8}  ", style="dim")
    if message.arm:
        line += safe(message.arm, "bold", max_len=16) + Text("  ")
    return line + safe(message.message, style if message.level == "error" else "", max_len=1000)


def log_text(state: RunState) -> Text:
    if not state.messages:
        return Text("no warnings or errors", style="dim")
    return Text("\n").join(message_line(m, state.t_start) for m in reversed(state.messages))


class LogView(VerticalScroll):
    def compose(self) -> ComposeResult:
        yield Static(id="log-text")

    def show(self, state: RunState) -> None:
        key = (len(state.messages), state.messages[-1].seq if state.messages else None)
        if key != getattr(self, "_drawn", None):
            self._drawn = key
            self.query_one("#log-text", Static).update(log_text(state))
