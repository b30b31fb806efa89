"""Loss view: all arms' loss per step on one chart as lines (raw and smoothed, epoch markers,
chosen x axis, zoom, hidden arms: charts.ChartOptions) and the (L_full, L_arm) scatter with y = x."""

from __future__ import annotations

import threading
import time

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static
from textual_plotext import PlotextPlot

from engine.log.state import RunState
from freeze_tui.app.throttle import ThrottledRedraw
from freeze_tui.app.widgets.difference_chart import GAP_MARKER, draw_difference
from freeze_tui.app.widgets.state_view import StateView
from freeze_tui.draw import charts, difference
from freeze_tui.draw.colors import PLAIN, Palette

DIAGONAL = "y = x (no difference)"
NARROW_SCATTER = 40  # columns of the scatter below which its legend gives way (arms keep their colours)


def draw_loss(plt, state: RunState, opts: charts.ChartOptions, width: int, palette: Palette = PLAIN) -> None:
    """Lines through each arm's min/max envelope (spikes survive decimation), raw faded under smoothed."""
    plt.clear_data()
    series = charts.loss_series(state, opts, max_points=charts.points_for(width) // 2, palette=palette.arm_rgb)
    bands = charts.band_series(state, charts.points_for(width), palette.arm_rgb) if opts.axis == "step" else []
    validations = difference.validation_series(state, opts, palette.arm_rgb)
    if charts.log_y(opts):  # `l`: log10 of the values, ticks labelled with the loss itself
        series, bands, validations = (charts.to_log(s) for s in (series, bands, validations))
        plt.yticks(*charts.log_ticks([*series, *bands, *validations]))
    for band in bands:  # --seeds N, finished: the range across seeds, faint, under the curves
        plt.plot(band.xs, band.ys, color=band.rgb, marker="braille")
    for s in series:
        if s.xs:
            plt.plot(s.xs, s.ys, color=s.rgb, label=s.label or None, marker="braille")
    for points in validations:  # each validation's loss, where its epoch ended
        plt.scatter(points.xs, points.ys, color=points.rgb, marker=GAP_MARKER)
    xs = [x for s in series for x in (s.xs[:1] + s.xs[-1:])]
    if xs:
        plt.xticks(*charts.step_ticks(min(xs), max(xs), width, opts.axis))
    for x in charts.epoch_marks(state, opts):
        plt.vline(x, palette.rgb("grid"))
    seeds = f"; faint: range over {state.replicates} seeds" if bands else ""
    val = f"; {GAP_MARKER} val loss" if validations else ""
    title = f"loss per step ({opts.describe()}{seeds}{val})"
    hint = f"{title}  d: paired difference"
    plt.title(hint if len(hint) <= width - 4 else title)  # plotext drops a title wider than its chart
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
        self._log = False  # the last draw set log-axis y ticks

    def render(self):
        start = time.perf_counter()
        key = (self.state and (len(self.state.steps), self.state.status, validations(self.state)), self.opts, self.size)
        if self.state is not None and key != self._drawn:
            self._drawn = key
            draw = draw_difference if self.opts.difference and self.draw is draw_loss else self.draw
            log = draw is draw_loss and charts.log_y(self.opts)
            if self._log and not log:  # back from `l`'s ticks: plotext's own y ticks come only with a new figure
                self.plt.clear_figure()
            self._log = log
            draw(self.plt, self.state, self.opts, self.size.width, getattr(self.app, "palette", PLAIN))
        result = super().render()
        self.cost = time.perf_counter() - start
        return result


class LossView(StateView, Horizontal):
    """Redraws its charts only when there are new steps, and spends at most about a fifth of the
    UI thread on them: a braille line plot of a noisy curve takes 0.1-0.3 s to build."""

    def compose(self) -> ComposeResult:
        yield StateChart(draw_loss, id="loss-chart")
        yield StateChart(draw_scatter, id="scatter-chart")
        with VerticalScroll(id="gap-table-scroll"):
            yield Static(id="gap-table")

    def on_mount(self) -> None:
        # `d`'s band needs arch (which imports pandas, seconds on a busy CPU): import it off the UI thread now
        threading.Thread(target=difference.warm_imports, name="warm-imports", daemon=True).start()
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
        return len(state.steps), state.status, validations(state), self.opts

    def request(self, state: RunState) -> None:
        self._throttled(state)

    def draw(self, state: RunState) -> None:
        opts = self.opts
        self.query_one("#scatter-chart").display = not opts.difference
        self.query_one("#gap-table-scroll").display = opts.difference
        if opts.difference:  # beside the difference: validation loss and gap per epoch (readable at 80x24)
            self.query_one("#gap-table", Static).update(difference.validation_table(state, self.palette))
        for chart in self.query(StateChart):
            chart.state, chart.opts = state, opts
            chart.refresh()


def validations(state: RunState) -> int:
    """How many validations have been folded in (an epoch_end comes after its epoch's last step)."""
    return sum(len(arm.epochs) for arm in state.arms.values())
