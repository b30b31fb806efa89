"""Frontier view: every arm in the time-saving / val-gap plane and the learning–forgetting plane,
Pareto fronts marked, the random controls as a cloud. Reads RunState only; drawing is frontier_draw."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text

from engine.log.frontier import frontier_points
from engine.log.state import RunState
from freeze_tui.app.widgets.state_view import TextView
from freeze_tui.draw.colors import PLAIN, Palette
from freeze_tui.draw.frontier_draw import legend, panels, table_lines

PLOT_ROWS = 9  # plot rows + x axis: the two planes and the legend fit the view at 80x24


def frontier_renderable(state: RunState, width: int, palette: Palette = PLAIN, rows: int = PLOT_ROWS) -> Group:
    points = frontier_points(state)
    if not points:
        return Group(Text("waiting for the run to start", style="dim"))
    parts = [*panels(points, width, rows, palette), legend(points, palette), Text("")]
    parts += table_lines(points, state.common_base_rate, palette)
    return Group(*parts)


class FrontierView(TextView):
    TEXT_ID = "frontier-text"

    def key(self, state: RunState) -> tuple:
        # points move only when an epoch ends (validation) or the run ends; r's interval is a bootstrap
        return sum(len(a.epochs) for a in state.arms.values()), len(state.arms), state.status, self.size

    def text(self, state: RunState) -> Group:
        width, rows = max(40, self.size.width - 2), max(PLOT_ROWS, min(24, self.size.height - 8))
        return frontier_renderable(state, width, self.palette, rows)
