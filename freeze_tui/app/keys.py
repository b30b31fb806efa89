"""The app's keys and what they do, kept out of app.py. The bindings come from the one key table
(modes.KEYS); which keys the footer offers follows the mode and view: check_action hides what does
not apply, e.g. `s` outside a live run, `m` outside the Loss view."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.binding import Binding, BindingType
from textual.widgets import TabbedContent

from engine.log.sources import EventSource
from engine.log.state import RunState
from freeze_tui.app import modes, replay_keys
from freeze_tui.app.screens.arms import ArmsScreen
from freeze_tui.app.screens.help import HelpScreen
from freeze_tui.draw import charts
from freeze_tui.draw.fmt import screenshot_name
from freeze_tui.draw.series import next_weight

BINDINGS: list[BindingType] = [
    Binding(b.keys, b.action, b.label, show=b.shown, key_display=b.display) for key in modes.KEYS for b in key.binds
]

if TYPE_CHECKING:  # a mixin of FreezeApp: type-check it as the App it is part of
    _Base = App[None]
else:
    _Base = object


class KeyActions(_Base):
    """Mixed into FreezeApp: every action bound above."""

    source: EventSource
    state: RunState
    chart: charts.ChartOptions
    views: dict[str, Any]
    tabs: TabbedContent
    screenshot_dir: Path
    _dirty: bool
    _last_weight: float
    view_paused: bool

    if TYPE_CHECKING:

        def run_mode(self) -> str: ...
        def active_view(self) -> str: ...
        def live_running(self) -> bool: ...
        def watch_running(self) -> bool: ...
        def replay_offers(self, action: str, parameters: tuple) -> bool: ...

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        mode = self.run_mode()
        if action == "pause":
            return parameters[0] == mode and not self.source.done and not self.display_paused()
        if action == "resume":  # the footer offers "p resume" while paused, not "p pause"
            return parameters[0] == mode and not self.source.done and self.display_paused()
        if action == "stop":
            return self.live_running() or self.watch_running()
        if action in replay_keys.ACTIONS:
            return self.replay_offers(action, parameters)
        if action == "arm_page":  # only when some arms are on another page
            return self.active_view() == modes.DW and self.views[modes.DW].pages > 1
        if action == "sample":  # only side by side
            return self.active_view() == modes.SAMPLES and self.views[modes.SAMPLES].compare
        if action in modes.VIEW_ACTIONS:
            return modes.VIEW_ACTIONS[action] == self.active_view()
        return True

    def action_view(self, key: str) -> None:
        self.tabs.active = modes.tab_id(key)
        view = self.views[key]
        target = view.focus_target() if hasattr(view, "focus_target") else view
        if target.can_focus:
            target.focus()  # arrows then scroll the view instead of switching tabs

    def action_help(self) -> None:
        view = self.active_view()
        title = f"Keys: {modes.mode_label(self.run_mode(), getattr(self.source, 'speed', None))}, {view} view"
        self.push_screen(HelpScreen(modes.keys_for(self.run_mode(), view), title))

    def action_pause(self, mode: str) -> None:
        if mode == modes.LIVE:  # the screen freezes, the run trains on: events still fold into the state
            self.view_paused = True
        else:
            self.source.pause()
        self.refresh_bindings()

    def action_resume(self, _mode: str) -> None:
        self.view_paused, self._dirty = False, True
        if self.source.paused:
            self.source.resume()
        self.refresh_bindings()

    def display_paused(self) -> bool:
        return self.view_paused or self.source.paused

    def set_chart(self, note: str, **changes) -> None:
        self.chart = dataclasses.replace(self.chart, **changes)
        self._dirty = True
        self.notify(f"loss chart: {note}", timeout=2)

    def action_smooth(self) -> None:
        on = not self.chart.smoothing
        weight = (self._last_weight if on else 0.0) or charts.ChartOptions.smoothing
        if not on:
            self._last_weight, weight = self.chart.smoothing, 0.0
        self.set_chart(f"smoothing {weight:.2f}" if weight else "raw (smoothing off)", smoothing=weight)

    def action_weight(self, direction: int) -> None:
        weight = next_weight(self.chart.smoothing, direction)
        self.set_chart(f"smoothing {weight:.2f}" if weight else "raw (smoothing off)", smoothing=weight)

    def action_axis(self) -> None:
        axes = [a for a in charts.AXES if a != "tokens" or self.state.tokens_per_step == self.state.tokens_per_step]
        axis = axes[(axes.index(self.chart.axis) + 1) % len(axes)] if self.chart.axis in axes else axes[0]
        self.set_chart(f"x axis {axis}", axis=axis)

    def action_zoom(self) -> None:
        n = len(self.state.steps)
        zooms = [z for z in charts.ZOOMS if z == 0 or z < n]
        zoom = zooms[(zooms.index(self.chart.zoom) + 1) % len(zooms)] if self.chart.zoom in zooms else 0
        self.set_chart(f"last {zoom} steps" if zoom else "all steps", zoom=zoom)

    def action_arms(self) -> None:
        def chosen(hidden: frozenset[str] | None) -> None:
            if hidden is not None and hidden != self.chart.hidden:
                self.set_chart(f"{len(hidden)} arm(s) hidden" if hidden else "every arm shown", hidden=hidden)

        self.push_screen(ArmsScreen(list(self.state.arms), self.chart.hidden), chosen)

    def action_difference(self) -> None:
        on = not self.chart.difference
        self.set_chart("paired difference arm − baseline" if on else "loss curves", difference=on)

    def action_compare(self) -> None:
        on = self.views[modes.SAMPLES].toggle_compare()
        self._dirty = True
        self.refresh_bindings()  # `n` / `N` are offered side by side only
        self.notify("samples side by side: one prompt and seed" if on else "samples: the list", timeout=2)

    def action_sample(self, direction: int) -> None:
        self.views[modes.SAMPLES].move(direction)
        self._dirty = True

    def action_arm_page(self, direction: int) -> None:
        self.views[modes.DW].turn_page(direction)

    def action_save_screenshot(self) -> None:
        if self.is_web:  # served: the visitor gets the SVG in their browser; nothing is written on the server
            self.deliver_screenshot(free_name(Path("."), self.state.run_id).name)
            self.notify("screenshot sent to your browser", timeout=6)
            return
        try:
            self.screenshot_dir.mkdir(parents=True, exist_ok=True)
            saved = self.save_screenshot(
                free_name(self.screenshot_dir, self.state.run_id).name, str(self.screenshot_dir)
            )
        except OSError as exc:
            self.notify(f"screenshot not saved: {exc}", severity="error", markup=False, timeout=8)
            return
        self.notify(f"screenshot saved to {Path(saved).resolve()}", markup=False, timeout=6)

    def action_log_y(self) -> None:
        on = not self.chart.log_y
        self.set_chart("log y (the paired difference stays linear)" if on else "linear y", log_y=on)


def free_name(folder: Path, run_id: str) -> Path:
    """A screenshot path in `folder` not taken yet: two in the same second must not overwrite each other."""
    name = Path(screenshot_name(run_id, time.localtime()))
    path, n = folder / name, 2
    while path.exists():
        path, n = folder / f"{name.stem}-{n}{name.suffix}", n + 1
    return path
