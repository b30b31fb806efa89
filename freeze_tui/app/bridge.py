"""The one bridge from an event source to the UI (README.md, "How it is built").

A thread worker loops `source.get_batch(POLL_S)` and appends each batch to the app's `Inbox`: one
pending list under a lock, bounded (the worker waits for room, so a replay at max speed never runs
ahead of the screen by more than about a batch, and a live source coalesces in its own bounded
channel meanwhile). It posts one `EventsArrived`, a message that carries nothing, only when none is
on its way: the UI comes back for the rest until it finds the inbox empty. The UI thread `fold`s what is pending in
FOLD_CHUNK slices for at most FOLD_BUDGET_S and, with events left, posts `EventsArrived` again, so key
presses and redraws queued meanwhile go first. Nothing is dropped: events leave the inbox only into
the state. `SourceDone` / `SourceFailed` are posted once the inbox is empty, after every event.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial

from textual.app import App
from textual.message import Message
from textual.worker import Worker, get_current_worker

from engine.core.errors import FreezeTuiError
from engine.log.events import Event, Header
from engine.log.sources import BATCH_CAP, EventSource
from engine.log.state import RunState

POLL_S = 0.1
FOLD_BUDGET_S, FOLD_CHUNK = 0.03, 250  # keeps keys responsive while a replay runs at max speed
PENDING_LIMIT = BATCH_CAP  # events the worker may have read ahead of the state before it waits


class EventsArrived(Message):
    """Events are pending in the app's inbox. One queued is enough: a later one replaces it."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EventsArrived)


class SourceDone(Message):
    """No more events will come (run_end seen, file ended, or reading stopped)."""


class SourceFailed(Message):
    """The source could not deliver (e.g. a corrupt line in the middle of a log)."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class Inbox:
    """Events read by the worker and not yet folded by the UI, in order, at most about `limit` of them."""

    def __init__(self, limit: int = PENDING_LIMIT) -> None:
        self.limit = limit
        self._events: deque[Event] = deque()
        self._changed = threading.Condition()
        self._told = False  # an EventsArrived is on its way or being handled: the UI will come back

    def put(self, events: list[Event], cancelled: Callable[[], bool]) -> bool | None:
        """Append a batch once there is room. True: tell the UI (no EventsArrived is on its way);
        None: cancelled while waiting (the batch is not added)."""
        with self._changed:
            while len(self._events) >= self.limit:
                if cancelled():
                    return None
                self._changed.wait(POLL_S)
            self._events.extend(events)
            tell, self._told = not self._told, True
            return tell

    def take(self, limit: int) -> list[Event]:
        """Up to `limit` events from the front, never past a header: a header after events (a replay
        sought back) starts a slice of its own, so `fold` can start the state over there. Empty: the
        UI has caught up, and the next batch tells it again."""
        with self._changed:
            events = self._events
            out = [events.popleft()] if events else []
            while events and len(out) < limit and not isinstance(events[0], Header):
                out.append(events.popleft())
            self._told = bool(out)
            self._changed.notify_all()
            return out

    def __len__(self) -> int:
        return len(self._events)

    def wait_empty(self, cancelled: Callable[[], bool]) -> bool:
        """Block until the UI has folded everything; False when cancelled first."""
        with self._changed:
            while self._events:
                if cancelled():
                    return False
                self._changed.wait(POLL_S)
            return True


def pump(app: App, source: EventSource, inbox: Inbox) -> None:
    """The worker body: move batches from the source to the inbox until done or cancelled."""
    worker = get_current_worker()

    def cancelled() -> bool:
        return worker.is_cancelled

    while not worker.is_cancelled and not source.done:
        try:
            batch = source.get_batch(POLL_S)
        except FreezeTuiError as exc:
            _last_word(app, inbox, cancelled, SourceFailed(str(exc)))
            return
        if not batch:
            continue
        told = inbox.put(batch, cancelled)
        if told is None or (told and not app.post_message(EventsArrived())):
            return  # cancelled, or the app is going away
    _last_word(app, inbox, cancelled, SourceDone())


def _last_word(app: App, inbox: Inbox, cancelled: Callable[[], bool], message: Message) -> None:
    """Post `message` after the UI has folded every event before it."""
    if inbox.wait_empty(cancelled):
        app.post_message(message)


def start_bridge(app: App, source: EventSource, inbox: Inbox) -> Worker:
    worker = partial(pump, app, source, inbox)
    return app.run_worker(worker, name="event-bridge", group="bridge", thread=True, exclusive=True)


def fold(state: RunState, inbox: Inbox, budget: float = FOLD_BUDGET_S) -> bool:
    """Fold pending events into the state, FOLD_CHUNK at a time, for at most `budget` seconds (UI
    thread). True when events are left: the caller posts EventsArrived again to go on after the keys."""
    deadline = time.perf_counter() + budget
    while chunk := inbox.take(FOLD_CHUNK):
        restart_if_rewound(state, chunk)
        state.apply_all(chunk)
        if time.perf_counter() > deadline:
            return len(inbox) > 0
    return False


def restart_if_rewound(state: RunState, events: list[Event]) -> bool:
    """A header after events means the replay started over (a seek back): fold from a fresh state.
    In place, since every widget holds this state."""
    if not events or not isinstance(events[0], Header) or state.n_events == 0:
        return False
    vars(state).clear()
    vars(state).update(vars(RunState()))
    return True
