"""ΔW view: latest ||ΔW||_F, drift and trend per block and matrix, a column group per arm."""

from __future__ import annotations

from textual.widgets import DataTable

from engine.state import RunState
from freeze_tui.dw_cells import dw_table


class DWView(DataTable):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True

    def show(self, state: RunState) -> None:
        key = (state.dw_step, len(state.arms), len(state.dw_history))
        if key == getattr(self, "_drawn", None):
            return  # norms only change with a dw event
        self._drawn = key
        table = dw_table(state)
        if [str(c.label) for c in self.columns.values()] != table.columns:
            self.clear(columns=True)
            self.add_columns(*table.columns)
        cursor = self.cursor_coordinate
        self.clear()
        self.add_rows(table.rows)  # cells are rich Text: never parsed as markup
        if table.rows:
            self.move_cursor(row=min(cursor.row, len(table.rows) - 1), animate=False)
