"""ΔW view: latest ||ΔW||_F, drift and trend per block and matrix, a column group per arm.

Keyboard first: the table scrolls with arrows/PgUp/PgDn/Home/End with block and matrix
columns fixed, and when not every arm fits the width, `[` / `]` page through the arms.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from engine.log.state import RunState
from freeze_tui.app.throttle import ThrottledRedraw
from freeze_tui.app.widgets.state_view import StateView
from freeze_tui.draw.dw_cells import FIXED, arm_page, dw_layout, dw_table

LEGEND = "ΔW = ‖W_t − W_t−1‖_F, drift = ‖W_t − W_0‖_F"


def page_caption(page: int, pages: int, shown: list[str], total: int) -> Text:
    """What the table shows and which keys move it; names which arms when not all fit."""
    if pages <= 1:
        return Text(f"{LEGEND} · ↑↓←→ PgUp PgDn Home End scroll", style="dim")
    names = ", ".join(shown)
    return Text(f"arms {names} (page {page + 1}/{pages}, {total} arms; [ ] other arms) · {LEGEND}", style="dim")


class DWTable(DataTable):
    """Rows are what one reads here: Home/End jump to the first/last row (arrows scroll sideways)."""

    BINDINGS = [Binding("home", "scroll_top", show=False), Binding("end", "scroll_bottom", show=False)]


class DWView(StateView, Vertical):
    """Rebuilt at most once a second: norms arrive every norm_every steps, and repainting a
    full table of rich cells costs far more than a person can read in that time."""

    def compose(self) -> ComposeResult:
        yield Static(id="dw-caption")
        yield DWTable(id="dw-table", cursor_type="row", zebra_stripes=True, fixed_columns=len(FIXED))

    def on_mount(self) -> None:
        self.table = self.query_one(DataTable)
        self._state: RunState | None = None
        self._page, self.pages = 0, 1
        self._throttled = ThrottledRedraw(self, self.redraw, min_interval=1.0)

    def focus_target(self) -> DataTable:
        return self.table

    @property
    def pending(self) -> bool:
        return self._throttled.pending

    def turn_page(self, direction: int) -> None:
        self._page += direction
        if self._state is not None:
            self.redraw(self._state)

    def on_resize(self) -> None:
        if self._state is not None:
            self.redraw(self._state)

    def key(self, state: RunState) -> tuple:
        """What the table depends on: the width too, since it decides which arms fit a page (a table
        built while the layout was still settling must be rebuilt once the width is known)."""
        return state.dw_step, len(state.arms), len(state.dw_history), self.size.width

    def show(self, state: RunState) -> None:
        self._state = state  # for a page turn or a resize between ticks
        super().show(state)

    def request(self, state: RunState) -> None:
        self._throttled(state)

    def draw(self, state: RunState) -> None:
        names = list(state.arms)
        parts, per_page = dw_layout(self.size.width or 80, names)
        shown, self._page, self.pages = arm_page(names, self._page, per_page)
        self.query_one("#dw-caption", Static).update(page_caption(self._page, self.pages, shown, len(names)))
        self.app.refresh_bindings()  # the footer offers [ ] only when there is another page
        table = dw_table(state, shown, self.palette, parts)
        cursor, scroll = self.table.cursor_coordinate, self.table.scroll_offset
        self.table.clear(columns=True)  # columns too: DataTable keeps stale widths across clear()
        for index, label in enumerate(table.columns):  # explicit widths: auto widths settle a frame late
            width = max([len(label), *(row[index].cell_len for row in table.rows)])
            self.table.add_column(label, width=width)
        self.table.add_rows(table.rows)  # cells are rich Text: never parsed as markup
        if table.rows:
            self.table.move_cursor(row=min(cursor.row, len(table.rows) - 1), animate=False, scroll=False)
            self.table.scroll_to(scroll.x, scroll.y, animate=False)
