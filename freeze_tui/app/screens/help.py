"""The help screen: every key of the current view and mode (from modes.KEYS); any of ? F1 Esc q closes it."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from freeze_tui.app.modes import Key


def help_table(keys: list[Key], title: str) -> Table:
    table = Table(title=title, title_justify="left", box=None, show_header=False, pad_edge=False)
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("what")
    for key in keys:
        table.add_row(key.keys, Text(key.what))
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "close")]

    def __init__(self, keys: list[Key], title: str) -> None:
        super().__init__()
        self.keys, self.heading = keys, title

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Static(help_table(self.keys, self.heading), id="help-text")
            yield Static("Esc, q, ? or F1: close", id="help-close")

    def action_close(self) -> None:
        self.dismiss(None)
