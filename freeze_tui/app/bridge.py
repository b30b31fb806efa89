"""The one bridge from an event source to the UI (README.md, "How it is built").

A thread worker loops `source.get_batch(POLL_S)` and posts one `EventsArrived` per
batch. It waits for the app to acknowledge a batch before posting the next one, so a
fast source (replay at max speed) can never pile up messages ahead of key presses;
a live source coalesces in its own bounded channel meanwhile.
"""

from __future__ import annotations

import threading
import time
from functools import partial

from textual.app import App
from textual.message import Message
from textual.worker import Worker, get_current_worker

from engine.core.errors import FreezeTuiError
from engine.log.events import Event
from engine.log.sources import EventSource
from engine.log.state import RunState

POLL_S = 0.1
FOLD_BUDGET_S, FOLD_CHUNK = 0.03, 250  # keeps keys responsive while a replay runs at max speed


class EventsArrived(Message):
    """A batch of events, in order. The receiver calls `done()` once it has applied them."""

    def __init__(self, events: list[Event], applied: threading.Event | None = None) -> None:
        super().__init__()
        self.events = events
        self._applied = applied or threading.Event()

    def rest(self, events: list[Event]) -> EventsArrived:
        """The unapplied tail of this batch as a new message; the bridge waits until it is done too."""
        return EventsArrived(events, self._applied)

    def done(self) -> None:
        self._applied.set()


class SourceDone(Message):
    """No more events will come (run_end seen, file ended, or reading stopped)."""


class SourceFailed(Message):
    """The source could not deliver (e.g. a corrupt line in the middle of a log)."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


def pump(app: App, source: EventSource) -> None:
    """The worker body: move batches from the source to the app until done or cancelled."""
    worker = get_current_worker()
    while not worker.is_cancelled and not source.done:
        try:
            batch = source.get_batch(POLL_S)
        except FreezeTuiError as exc:
            app.post_message(SourceFailed(str(exc)))
            return
        if batch and not _deliver(app, worker, EventsArrived(batch)):
            return
    if not worker.is_cancelled:
        app.post_message(SourceDone())


def _deliver(app: App, worker: Worker, message: EventsArrived) -> bool:
    """Post one batch and wait until it is applied; False when the app is going away."""
    if not app.post_message(message):
        return False
    while not message._applied.wait(POLL_S):
        if worker.is_cancelled:
            return False
    return True


def start_bridge(app: App, source: EventSource) -> Worker:
    return app.run_worker(partial(pump, app, source), name="event-bridge", group="bridge", thread=True, exclusive=True)


def fold(state: RunState, message: EventsArrived, budget: float = FOLD_BUDGET_S) -> EventsArrived | None:
    """Apply a batch to the state for at most `budget` seconds (UI thread). Returns the unapplied
    rest as a new message to queue, or None once the whole batch is in (the bridge may go on)."""
    events, deadline = message.events, time.perf_counter() + budget
    for start in range(0, len(events), FOLD_CHUNK):
        state.apply_all(events[start : start + FOLD_CHUNK])
        if time.perf_counter() > deadline and start + FOLD_CHUNK < len(events):
            return message.rest(events[start + FOLD_CHUNK :])
    message.done()
    return None
