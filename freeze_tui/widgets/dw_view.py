"""ΔW view: latest ||ΔW||_F, drift and trend per block and matrix, a column group per arm."""

from __future__ import annotations

from textual.widgets import DataTable

from engine.log.state import RunState
from freeze_tui.dw_cells import dw_table
from freeze_tui.throttle import ThrottledRedraw


class DWView(DataTable):
    """Rebuilt at most once a second: norms arrive every norm_every steps, and repainting a
    full table of rich cells costs far more than a person can read in that time."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self._drawn: tuple | None = None
        self._throttled = ThrottledRedraw(self, self._rebuild, min_interval=1.0)

    @property
    def pending(self) -> bool:
        return self._throttled.pending

    def show(self, state: RunState) -> None:
        if (state.dw_step, len(state.arms), len(state.dw_history)) != self._drawn:
            self._throttled(state)

    def _rebuild(self, state: RunState) -> None:
        self._drawn = (state.dw_step, len(state.arms), len(state.dw_history))
        table = dw_table(state)
        if [str(c.label) for c in self.columns.values()] != table.columns:
            self.clear(columns=True)
            self.add_columns(*table.columns)
        cursor = self.cursor_coordinate
        self.clear()
        self.add_rows(table.rows)  # cells are rich Text: never parsed as markup
        if table.rows:
            self.move_cursor(row=min(cursor.row, len(table.rows) - 1), animate=False)
