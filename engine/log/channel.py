"""The bounded, coalescing hand-over from the engine thread to a viewer (app or console). No torch.

`put` never blocks the training loop. When the viewer falls behind and the backlog is full,
older heartbeats are dropped first (only the latest says what the engine does), then `dw` events
(only the latest norms are shown; the log keeps them all), then the oldest step events; the count
of dropped events is kept so a view can say so.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from engine.core.control import Control
from engine.log.events import DW, Event, Heartbeat, RunEnd, Step

DEFAULT_CAPACITY = 50_000


class Channel:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._items: deque[Event] = deque()
        self._cond = threading.Condition()
        self.capacity = capacity
        self.dropped = 0
        self.closed = False
        self._last_put = time.monotonic()

    def put(self, event: Event) -> None:
        with self._cond:
            if len(self._items) >= self.capacity:
                self._make_room()
            self._items.append(event)
            self._last_put = time.monotonic()
            if isinstance(event, RunEnd):
                self.closed = True
            self._cond.notify()

    def _make_room(self) -> None:
        for kind in (Heartbeat, DW, Step):
            removable = sum(isinstance(e, kind) for e in self._items)
            if removable:
                # drop the older half of that kind, keep the newest
                drop = max(1, removable // 2)
                out: deque[Event] = deque()
                for e in self._items:
                    if drop and isinstance(e, kind):
                        drop -= 1
                        self.dropped += 1
                        continue
                    out.append(e)
                self._items = out
                return
        self._items.popleft()
        self.dropped += 1

    def get_batch(self, timeout: float, limit: int = 5000) -> list[Event]:
        """Everything waiting (up to limit), waiting at most `timeout` seconds for the first event."""
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(timeout)
            n = min(limit, len(self._items))
            return [self._items.popleft() for _ in range(n)]

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    @property
    def drained(self) -> bool:
        with self._cond:
            return self.closed and not self._items

    def idle_seconds(self) -> float:
        return time.monotonic() - self._last_put


class ChannelSource:
    """The viewers' event-source protocol (mode 'live') over a Channel and the loop's Control flags:
    whoever fills the channel (the engine thread, a benchmark's producer) gets pause/resume/stop."""

    mode = "live"

    def __init__(self) -> None:
        self.channel = Channel()
        self.control = Control()

    def get_batch(self, timeout: float) -> list[Event]:
        return self.channel.get_batch(timeout)

    @property
    def done(self) -> bool:
        return self.channel.drained

    @property
    def paused(self) -> bool:
        return self.control.pause.is_set()

    def pause(self) -> None:
        self.control.pause.set()

    def resume(self) -> None:
        self.control.pause.clear()

    def stop(self) -> None:
        self.control.stop.set()

    def idle_seconds(self) -> float:
        return self.channel.idle_seconds()
