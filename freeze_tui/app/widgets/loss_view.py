"""Loss view: all arms' loss per step on one chart as lines (raw and smoothed, epoch markers,
chosen x axis, zoom, hidden arms: charts.ChartOptions) and the (L_full, L_arm) scatter with y = x."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual_plotext import PlotextPlot

from engine.log.state import RunState
from freeze_tui.app.throttle import ThrottledRedraw
from freeze_tui.app.widgets.state_view import StateView
from freeze_tui.draw import charts
from freeze_tui.draw.colors import PLAIN, Palette

DIAGONAL = "y = x (no difference)"
NARROW_SCATTER = 40  # columns of the scatter below which its legend gives way (arms keep their colours)


def draw_loss(plt, state: RunState, opts: charts.ChartOptions, width: int, palette: Palette = PLAIN) -> None:
    """Lines through each arm's min/max envelope (spikes survive decimation), raw faded under smoothed."""
    plt.clear_data()
    series = charts.loss_series(state, opts, max_points=charts.points_for(width) // 2, palette=palette.arm_rgb)
    bands = charts.band_series(state, charts.points_for(width), palette.arm_rgb) if opts.axis == "step" else []
    for band in bands:  # --seeds N, finished: the range across seeds, faint, under the curves
        plt.plot(band.xs, band.ys, color=band.rgb, marker="braille")
    for s in series:
        if s.xs:
            plt.plot(s.xs, s.ys, color=s.rgb, label=s.label or None, marker="braille")
    xs = [x for s in series for x in (s.xs[:1] + s.xs[-1:])]
    if xs:
        plt.xticks(*charts.step_ticks(min(xs), max(xs), width, opts.axis))
    for x in charts.epoch_marks(state, opts):
        plt.vline(x, palette.rgb("grid"))
    seeds = f"; faint: range over {state.replicates} seeds" if bands else ""
    plt.title(f"loss per step ({opts.describe()}{seeds})")
    plt.xlabel({"step": "step", "tokens": "tokens seen", "time": "wall time"}[opts.axis])


def draw_scatter(plt, state: RunState, opts: charts.ChartOptions, width: int, palette: Palette = PLAIN) -> None:
    plt.clear_data()
    points = min(charts.SCATTER_POINTS, charts.points_for(width))
    series = charts.scatter_series(state, max_points=points, opts=opts, palette=palette.arm_rgb)
    span = charts.diagonal(series)
    narrow = width < NARROW_SCATTER  # 80 columns: no room for a legend inside the plot, so none
    if span:
        plt.plot(
            list(span), list(span), color=palette.rgb("grid"), marker="braille", label=None if narrow else DIAGONAL
        )
    for s in series:
        if s.xs:
            plt.scatter(s.xs, s.ys, color=s.rgb, label=None if narrow else s.label, marker="braille")
    base = charts.label(state.baseline or "full")
    plt.title(f"L_arm vs L_{base}")
    plt.xlabel(scatter_xlabel(base, width) if narrow else f"L_{base}")


def scatter_xlabel(base: str, width: int) -> str:
    """The x label of a narrow scatter, which also names the diagonal (the legend that has no room)."""
    for text in (f"L_{base}; line: y = x", f"L_{base}; ╱ y = x", "line: y = x"):
        if len(text) <= width - 2:
            return text
    return "╱ y = x"


class StateChart(PlotextPlot):
    """A plotext chart drawn from the run state at render time, so it always uses its laid-out size."""

    def __init__(self, draw, **kwargs) -> None:
        super().__init__(**kwargs)
        self.draw, self.opts = draw, charts.ChartOptions()
        self.state: RunState | None = None
        self.cost = 0.0  # seconds the last draw took
        self._drawn = None

    def render(self):
        start = time.perf_counter()
        key = (self.state and (len(self.state.steps), self.state.status), self.opts, self.size)
        if self.state is not None and key != self._drawn:
            self._drawn = key
            self.draw(self.plt, self.state, self.opts, self.size.width, getattr(self.app, "palette", PLAIN))
        result = super().render()
        self.cost = time.perf_counter() - start
        return result


class LossView(StateView, Horizontal):
    """Redraws its charts only when there are new steps, and spends at most about a fifth of the
    UI thread on them: a braille line plot of a noisy curve takes 0.1-0.3 s to build."""

    def compose(self) -> ComposeResult:
        yield StateChart(draw_loss, id="loss-chart")
        yield StateChart(draw_scatter, id="scatter-chart")

    def on_mount(self) -> None:
        self._throttled = ThrottledRedraw(
            self, self.redraw, cost_factor=4.0, cost=lambda: sum(c.cost for c in self.query(StateChart))
        )

    @property
    def pending(self) -> bool:
        return self._throttled.pending

    @property
    def opts(self) -> charts.ChartOptions:
        return getattr(self.app, "chart", charts.ChartOptions())

    def key(self, state: RunState) -> tuple:
        return len(state.steps), state.status, self.opts

    def request(self, state: RunState) -> None:
        self._throttled(state)

    def draw(self, state: RunState) -> None:
        for chart in self.query(StateChart):
            chart.state, chart.opts = state, self.opts
            chart.refresh()
