"""The arms side by side: one ArmCard per arm of the run, created when run_start names them."""

from __future__ import annotations

from textual.containers import Horizontal

from engine.log.state import RunState
from freeze_tui.app.widgets.arm_card import ArmCard


class ArmsPanel(Horizontal):
    def show(self, state: RunState) -> None:
        cards = list(self.query(ArmCard))
        if [c.arm for c in cards] != list(state.arms):
            self.remove_children()
            self.mount_all(ArmCard(name, state, classes="arm-card") for name in state.arms)
        for card in cards:
            card.refresh()
