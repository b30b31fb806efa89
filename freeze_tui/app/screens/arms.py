"""Show or hide arms on the charts: a list to toggle with space; Enter or Esc closes it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import SelectionList, Static


class ArmsScreen(ModalScreen[frozenset[str]]):
    """Dismisses with the set of hidden arms."""

    BINDINGS = [Binding("escape,a", "close", "done")]

    def __init__(self, arms: list[str], hidden: frozenset[str]) -> None:
        super().__init__()
        self.arms, self.hidden = arms, hidden

    def compose(self) -> ComposeResult:
        with Vertical(id="arms-box"):
            yield Static("Arms on the charts (space or Enter: show/hide, Esc: done)", id="arms-title")
            yield SelectionList[str](*((name, name, name not in self.hidden) for name in self.arms), id="arms-list")

    def action_close(self) -> None:
        shown = set(self.query_one(SelectionList).selected)
        self.dismiss(frozenset(a for a in self.arms if a not in shown))
