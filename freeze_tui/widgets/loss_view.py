"""Loss view: all arms' loss per step on one chart (epoch markers, optional smoothing) and the
(L_full, L_arm) scatter with the line y = x."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual_plotext import PlotextPlot

from engine.log.state import RunState
from freeze_tui import charts
from freeze_tui.throttle import ThrottledRedraw

GRID_RGB = (110, 110, 110)


def draw_loss(plt, state: RunState, smoothed: bool, width: int) -> None:
    plt.clear_data()
    series = charts.loss_series(state, smoothed=smoothed, max_points=charts.points_for(width))
    for s in series:
        # Dense series as braille dots (2 per column read as a line): plotext's line
        # interpolation costs ~3x as much and adds nothing at that density.
        draw = plt.scatter if len(s.xs) > width else plt.plot
        if s.xs:
            draw(s.xs, s.ys, color=s.rgb, label=s.label, marker="braille")
    xs = [x for s in series for x in (s.xs[:1] + s.xs[-1:])]
    if xs:
        plt.xticks(*charts.step_ticks(min(xs), max(xs), width))
    for step in charts.epoch_marks(state):
        plt.vline(step, GRID_RGB)
    plt.title("loss per step" + (" (smoothed, m)" if smoothed else ""))
    plt.xlabel("step")


def draw_scatter(plt, state: RunState, smoothed: bool, width: int) -> None:
    plt.clear_data()
    series = charts.scatter_series(state, max_points=min(charts.SCATTER_POINTS, charts.points_for(width)))
    span = charts.diagonal(series)
    if span:
        plt.plot(list(span), list(span), color=GRID_RGB, marker="braille")  # y = x: the arms agree
    for s in series:
        if s.xs:
            plt.scatter(s.xs, s.ys, color=s.rgb, label=s.label, marker="braille")
    base = charts.label(state.baseline or "full")
    plt.title(f"L_arm vs L_{base}")
    plt.xlabel(f"L_{base}")


class StateChart(PlotextPlot):
    """A plotext chart drawn from the run state at render time, so it always uses its laid-out size."""

    def __init__(self, draw, **kwargs) -> None:
        super().__init__(**kwargs)
        self.draw, self.smoothed = draw, False
        self.state: RunState | None = None
        self.cost = 0.0  # seconds the last draw took
        self._drawn = None

    def render(self):
        start = time.perf_counter()
        key = (self.state and (len(self.state.steps), self.state.status), self.smoothed, self.size)
        if self.state is not None and key != self._drawn:
            self._drawn = key
            self.draw(self.plt, self.state, self.smoothed, self.size.width)
        result = super().render()
        self.cost = time.perf_counter() - start
        return result


class LossView(Horizontal):
    """Redraws its charts only when there are new steps, and spends at most about a fifth of the
    UI thread on them: a braille line plot of a noisy curve takes 0.1-0.3 s to build."""

    smoothed = False

    def compose(self) -> ComposeResult:
        yield StateChart(draw_loss, id="loss-chart")
        yield StateChart(draw_scatter, id="scatter-chart")

    def on_mount(self) -> None:
        self._shown: tuple | None = None
        self._throttled = ThrottledRedraw(
            self, self._redraw, cost_factor=4.0, cost=lambda: sum(c.cost for c in self.query(StateChart))
        )

    @property
    def pending(self) -> bool:
        return self._throttled.pending

    def show(self, state: RunState) -> None:
        if (len(state.steps), state.status, self.smoothed) != self._shown:
            self._throttled(state)

    def _redraw(self, state: RunState) -> None:
        self._shown = (len(state.steps), state.status, self.smoothed)
        for chart in self.query(StateChart):
            chart.state, chart.smoothed = state, self.smoothed
            chart.refresh()
