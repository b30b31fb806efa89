"""Loss view: all arms' loss per step on one chart (epoch markers, optional smoothing) and the
(L_full, L_arm) scatter with the line y = x."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual_plotext import PlotextPlot

from engine.state import RunState
from freeze_tui import charts

GRID_RGB = (110, 110, 110)


def draw_loss(plt, state: RunState, smoothed: bool, width: int) -> None:
    plt.clear_data()
    series = charts.loss_series(state, smoothed=smoothed)
    for s in series:
        if s.xs:
            plt.plot(s.xs, s.ys, color=s.rgb, label=s.label, marker="braille")
    xs = [x for s in series for x in (s.xs[:1] + s.xs[-1:])]
    if xs:
        plt.xticks(*charts.step_ticks(min(xs), max(xs), width))
    for step in charts.epoch_marks(state):
        plt.vline(step, GRID_RGB)
    plt.title("loss per step" + (" (smoothed, m)" if smoothed else ""))
    plt.xlabel("step")


def draw_scatter(plt, state: RunState, smoothed: bool, width: int) -> None:
    plt.clear_data()
    series = charts.scatter_series(state)
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
        self.draw, self.state, self.smoothed = draw, None, False
        self._drawn = None

    def render(self):
        key = (self.state and (len(self.state.steps), self.state.status), self.smoothed, self.size)
        if self.state is not None and key != self._drawn:
            self._drawn = key  # plotext rebuilds are the costliest drawing: only when something changed
            self.draw(self.plt, self.state, self.smoothed, self.size.width)
        return super().render()


class LossView(Horizontal):
    smoothed = False

    def compose(self) -> ComposeResult:
        yield StateChart(draw_loss, id="loss-chart")
        yield StateChart(draw_scatter, id="scatter-chart")

    def show(self, state: RunState) -> None:
        key = (len(state.steps), state.status, self.smoothed)
        if key == getattr(self, "_shown", None):
            return  # each refresh rebuilds the plotext charts: only when there is something new
        self._shown = key
        for chart in self.query(StateChart):
            chart.state, chart.smoothed = state, self.smoothed
            chart.refresh()
