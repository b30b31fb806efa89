"""Shared helpers of the app tests: play a source to its end, read what a widget shows, a fake live source."""

from __future__ import annotations

import threading
import time

from rich.console import Console

from engine.log.events import Event


def quiet(app):
    """No animations in tests: tab underlines would otherwise animate after every key press."""
    app.animation_level = "none"
    return app


async def play_to_end(pilot, timeout: float = 30.0) -> None:
    """Wait until the bridge delivered every event, then let one redraw happen."""
    app = pilot.app
    deadline = time.monotonic() + timeout
    while not app.source_finished:
        assert time.monotonic() < deadline, "the source did not finish in time"
        await pilot.pause(0.05)
    app.redraw()
    while any(getattr(view, "pending", False) for view in app.views.values()):
        await pilot.pause(0.05)  # a throttled redraw is due shortly
    await pilot.pause()


def shown(widget) -> str:
    """The plain text a Static-based widget currently shows (content, not terminal output)."""
    content = widget.content if hasattr(widget, "content") else widget.render()
    console = Console(width=400, color_system=None, legacy_windows=False)
    with console.capture() as cap:
        console.print(content)
    return cap.get()


class FakeLiveSource:
    """The live protocol with a run you drive by hand: feed() events, stop() is recorded."""

    mode = "live"

    def __init__(self) -> None:
        self.done = False
        self.paused = False
        self.stop_requested = threading.Event()
        self._pending: list[Event] = []
        self._lock = threading.Lock()

    def feed(self, events: list[Event]) -> None:
        with self._lock:
            self._pending += events

    def get_batch(self, timeout: float) -> list[Event]:
        time.sleep(min(timeout, 0.02))
        with self._lock:
            batch, self._pending = self._pending, []
        if any(e.kind == "run_end" for e in batch):
            self.done = True
        return batch

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def stop(self) -> None:
        self.stop_requested.set()

    def idle_seconds(self) -> float:
        return 0.0
