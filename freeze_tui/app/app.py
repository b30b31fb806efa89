"""The Textual app: header, the arms side by side, six views, footer. It reads RunState only.

Events come from any EventSource through the one bridge (freeze_tui/app/bridge.py); batches are
folded into RunState as they arrive, and the screen is redrawn on a 0.1 s timer when
something changed, so the redraw rate stays at or below 10/s whatever the event rate.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import Footer, TabbedContent, TabPane

from engine.log.events import Error
from engine.log.sources import EventSource
from engine.log.state import RunState
from freeze_tui.app import modes
from freeze_tui.app.alerting import Alerter
from freeze_tui.app.bridge import EventsArrived, Inbox, SourceDone, SourceFailed, fold, start_bridge
from freeze_tui.app.keys import BINDINGS, KeyActions
from freeze_tui.app.replay_keys import ReplayKeys
from freeze_tui.app.run_control import RunControl
from freeze_tui.app.screenshots import screenshot_folder
from freeze_tui.app.widgets.arms_panel import ArmsPanel
from freeze_tui.app.widgets.dw_view import DWView
from freeze_tui.app.widgets.frontier_view import FrontierView
from freeze_tui.app.widgets.header_bar import HeaderBar, SourceView
from freeze_tui.app.widgets.log_view import LogView
from freeze_tui.app.widgets.loss_view import LossView
from freeze_tui.app.widgets.palette import PaletteHolder
from freeze_tui.app.widgets.plan_view import PlanView
from freeze_tui.app.widgets.run_view import RunView
from freeze_tui.app.widgets.samples_view import SamplesView
from freeze_tui.app.widgets.time_view import TimeView
from freeze_tui.draw.charts import ChartOptions
from freeze_tui.draw.colors import PLAIN

REDRAW_S = 0.1
VIEW_WIDGETS = {
    modes.LOSS: LossView,
    modes.DW: DWView,
    modes.SAMPLES: SamplesView,
    modes.TIME: TimeView,
    modes.PLAN: PlanView,
    modes.LOG: LogView,
    modes.RUN: RunView,
    modes.FRONTIER: FrontierView,
}  # by modes.VIEWS' names: the tabs, their keys and their order come from that table


class FreezeApp(KeyActions, ReplayKeys, RunControl, App[None]):
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = False  # every action has its own key; the footer needs the room at 80 columns
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]
    BINDINGS = BINDINGS

    def __init__(
        self, source: EventSource, *, title: str = "freeze-tui", log_path=None, screenshot_dir=None, notifier=None
    ) -> None:
        super().__init__()
        self.alerter = Alerter(self, notifier)  # toasts, a bell and --notify (engine/log/alerts.py)
        self.source, self.state, self.chart = source, RunState(), ChartOptions()
        self.inbox = Inbox()  # what the bridge has read and the state has not folded yet
        self.title, self.log_path = title, Path(log_path) if log_path else None
        # next to the log unless told; a replay of a log in a git work tree (sample_runs/) saves elsewhere
        self.screenshot_dir = screenshot_folder(self.log_path, source.mode == modes.REPLAY, screenshot_dir)
        self.source_error, self.palette = "", PLAIN
        self.source_finished = False  # the bridge has delivered everything it will
        self._dirty, self._stopping, self._quit_when_done = True, False, False
        self._last_weight, self._offered = ChartOptions.smoothing, ("", "", False, False)
        self.view_paused = False  # LIVE `p`: the screen is frozen, the run and the state go on

    def compose(self) -> ComposeResult:
        yield PaletteHolder()
        yield HeaderBar(id="header")
        yield ArmsPanel(id="arms")
        with TabbedContent(id="views"):
            for view in modes.VIEWS:
                with TabPane(f"{view.key} {view.title}", id=modes.tab_id(view.name)):
                    yield VIEW_WIDGETS[view.name](id=modes.widget_id(view.name))
        yield Footer()

    def on_mount(self) -> None:
        # Kept, not queried per tick: App.query_one searches the active screen, a dialog while one is open.
        self.header, self.arms = self.query_one(HeaderBar), self.query_one(ArmsPanel)
        self.tabs, self.palette = self.query_one(TabbedContent), self.query_one(PaletteHolder).palette()
        self.views: dict[str, Any] = {v.name: self.query_one(f"#{modes.widget_id(v.name)}") for v in modes.VIEWS}
        start_bridge(self, self.source, self.inbox)
        self.set_interval(REDRAW_S, self.redraw)

    async def on_events_arrived(self, _: EventsArrived) -> None:
        if fold(self.state, self.inbox):
            self.post_message(EventsArrived())  # keys and redraws that arrived meanwhile go first
        self._dirty = True
        await asyncio.sleep(0)  # Textual's message loop does not yield: timers and painting would starve

    def on_source_done(self, _: SourceDone) -> None:
        self.source_finished, self._dirty = True, True
        if self._quit_when_done:
            self.exit()

    def on_source_failed(self, message: SourceFailed) -> None:
        self.source_error, self.source_finished = message.error, True
        t = self.state.t_last if not math.isnan(self.state.t_last) else 0.0
        self.state.apply(Error(seq=-1, t=t, message=message.error, fatal=True))  # so the Log view lists it
        self.notify(message.error, title="cannot read events", severity="error", markup=False, timeout=10)
        self._dirty = True

    def run_mode(self) -> str:
        return modes.mode_of(self.source.mode, self.state.finished, self.source_finished)

    def active_view(self) -> str:
        return modes.view_of_tab(self.tabs.active)

    def redraw(self) -> None:
        if not self.screen_stack:
            return  # the app is closing: its screens are gone before its timers stop
        if self.view_paused and self.run_mode() != modes.LIVE:
            self.view_paused = False  # the run ended: a frozen screen would hide how
        src = SourceView.of(self.source, self._stopping, self.source_error, self.view_paused)
        self.header.show(self.state, src, self.title, self.palette)
        self.follow_run_end()
        self.alerter.check(src.gone)
        offered = (self.run_mode(), self.active_view(), self.source.done, self.source.paused)
        if offered != self._offered:
            self._offered = offered
            self.refresh_bindings()  # the footer offers what works in this mode and view
        if not self._dirty or self.view_paused:
            return
        self._dirty = False
        self.arms.show(self.state)
        if self.active_view() in self.views:
            self.views[self.active_view()].show(self.state)  # hidden views catch up when shown

    def on_tabbed_content_tab_activated(self, _: TabbedContent.TabActivated) -> None:
        self._dirty = True
