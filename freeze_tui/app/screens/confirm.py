"""A yes/no question over the app (stop the run? quit?), answered with y/n, Enter/Escape or the buttons."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "yes"),
        Binding("n,escape", "answer(False)", "no"),
    ]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No", about: str = "") -> None:
        """about: what the question is for ("stop", "quit"), so the app can update it as the run changes."""
        super().__init__()
        self.question, self.yes, self.no, self.about = question, yes, no, about

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self.question, id="confirm-question", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="error")
                yield Button(f"{self.no} (n)", id="no", variant="primary")

    def ask(self, question: str) -> None:
        """Ask something else in the same dialog (the situation changed while it was open)."""
        self.question = question
        self.query_one("#confirm-question", Static).update(question)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()  # Enter on the default does the safe thing

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
