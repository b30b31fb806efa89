"""The Textual app: header, the arms side by side, six views, footer. It reads RunState only.

Events come from any EventSource through the one bridge (freeze_tui/bridge.py); batches are
folded into RunState as they arrive, and the screen is redrawn on a 0.1 s timer when
something changed, so the redraw rate stays at or below 10/s whatever the event rate.
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, TabbedContent, TabPane

from engine.log.events import Error
from engine.log.sources import EventSource
from engine.log.state import RunState
from freeze_tui import fmt
from freeze_tui.bridge import EventsArrived, SourceDone, SourceFailed, fold, start_bridge
from freeze_tui.screens.confirm import ConfirmScreen
from freeze_tui.widgets.arms_panel import ArmsPanel
from freeze_tui.widgets.dw_view import DWView
from freeze_tui.widgets.header_bar import HeaderBar, SourceView
from freeze_tui.widgets.log_view import LogView
from freeze_tui.widgets.loss_view import LossView
from freeze_tui.widgets.plan_view import PlanView
from freeze_tui.widgets.samples_view import SamplesView
from freeze_tui.widgets.time_view import TimeView

REDRAW_S = 0.1
VIEWS = {
    "loss": ("1 Loss", LossView),
    "dw": ("2 ΔW", DWView),
    "samples": ("3 Samples", SamplesView),
    "time": ("4 Time", TimeView),
    "plan": ("5 Plan", PlanView),
    "log": ("6 Log", LogView),
}


class FreezeApp(App[None]):
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = False  # every action has its own key; the footer needs the room at 80 columns
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]
    BINDINGS = [
        Binding("1", "view('loss')", "views", key_display="1-6"),
        *(Binding(str(i + 2), f"view('{key}')", show=False) for i, key in enumerate(list(VIEWS)[1:])),
        Binding("p", "pause", "pause/resume"),
        Binding("s", "stop", "stop run"),
        Binding("m", "smooth", "smoothing"),
        Binding("ctrl+s,S", "save_svg", "screenshot", key_display="^s"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, source: EventSource, *, title: str = "freeze-tui", screenshot_dir: str | Path = ".") -> None:
        super().__init__()
        self.source, self.state = source, RunState()
        self.title, self.screenshot_dir = title, Path(screenshot_dir)
        self.source_error = ""
        self.source_finished = False  # the bridge has delivered everything it will
        self._dirty, self._stopping, self._quit_when_done = True, False, False

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        yield ArmsPanel(id="arms")
        with TabbedContent(id="views"):
            for key, (label, view) in VIEWS.items():
                with TabPane(label, id=f"tab-{key}"):
                    yield view(id=f"view-{key}")
        yield Footer()

    def on_mount(self) -> None:
        # Kept, not queried per tick: App.query_one searches the active screen, a dialog while one is open.
        self.header, self.arms = self.query_one(HeaderBar), self.query_one(ArmsPanel)
        self.tabs = self.query_one(TabbedContent)
        self.views: dict[str, Any] = {key: self.query_one(f"#view-{key}") for key in VIEWS}
        start_bridge(self, self.source)
        self.set_interval(REDRAW_S, self.redraw)

    async def on_events_arrived(self, message: EventsArrived) -> None:
        rest = fold(self.state, message)
        if rest is not None:
            self.post_message(rest)  # keys and redraws that arrived meanwhile go first
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

    def redraw(self) -> None:
        self.header.show(self.state, SourceView.of(self.source, self._stopping, self.source_error), self.title)
        if not self._dirty:
            return
        self._dirty = False
        self.arms.show(self.state)
        active = self.tabs.active.removeprefix("tab-")
        if active in self.views:
            self.views[active].show(self.state)  # hidden views catch up when shown

    def on_tabbed_content_tab_activated(self, _: TabbedContent.TabActivated) -> None:
        self._dirty = True

    def action_view(self, key: str) -> None:
        self.tabs.active = f"tab-{key}"

    def action_pause(self) -> None:
        self.source.resume() if self.source.paused else self.source.pause()

    def action_smooth(self) -> None:
        view = self.views["loss"]
        view.smoothed = not view.smoothed
        self._dirty = True
        self.notify(f"loss smoothing {'on' if view.smoothed else 'off'}", timeout=2)

    def action_save_svg(self) -> None:
        name = fmt.free_name(self.screenshot_dir, fmt.screenshot_name(self.state.run_id, time.localtime()))
        path = self.save_screenshot(name, str(self.screenshot_dir))
        self.notify(f"screenshot saved to {Path(path).resolve()}", markup=False, timeout=6)

    def live_running(self) -> bool:
        return self.source.mode == "live" and not self.source.done and not self.state.finished

    def action_stop(self) -> None:
        if self.source.mode != "live":
            self.notify(f"s stops a live run; this is a {self.source.mode}", severity="warning", timeout=3)
        elif self.live_running() and not self._stopping:
            self.push_screen(ConfirmScreen("Stop the run at the next step boundary?"), self._stop_confirmed)

    def _stop_confirmed(self, yes: bool | None) -> None:
        if yes:
            self._stopping = True
            self.source.stop()
            self.notify("stopping at the next step boundary… (q again: quit without waiting)", timeout=4)

    async def action_quit(self) -> None:
        if not self.live_running():
            self.source.stop()
            self.exit()
        elif self._stopping:
            self.exit()  # asked twice: quit without waiting for the run to end
        else:
            self.push_screen(
                ConfirmScreen("A run is going. Stop it and quit once its log is complete?"), self._quit_confirmed
            )

    def stop_signal(self, count: int) -> None:
        """SIGINT/SIGTERM/SIGHUP (freeze_tui.interrupts): the first is q answered yes (stop the run, quit
        once its log is complete); the second quits now. Quitting through Textual restores the terminal."""
        if count > 1 or not self.live_running():
            self.source.stop()
            self.exit()
        else:
            self._quit_confirmed(True)

    def _quit_confirmed(self, yes: bool | None) -> None:
        if yes:
            self._quit_when_done = True
            self._stop_confirmed(True)
