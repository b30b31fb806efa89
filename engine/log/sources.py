"""Where events come from: the one protocol the app reads, and the replay and watch sources. No torch.

Live, replay and watch differ only in their source (README.md, "How it is built"); the live
engine provides its own object with the same protocol (a bounded coalescing channel).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from engine.log.events import Event, RunEnd, Step
from engine.log.liveness import WriterWatch
from engine.log.runlog import LogFollower, read_events

BATCH_CAP = 5000  # events per batch: bounds the UI thread's work per message


@runtime_checkable
class EventSource(Protocol):
    mode: str  # "live" | "replay" | "watch"
    done: bool  # no more events will come
    paused: bool

    def get_batch(self, timeout: float) -> list[Event]:
        """Wait up to `timeout` seconds for events; return all available (at most BATCH_CAP)."""

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def stop(self) -> None:
        """live: stop the run at the next step boundary; replay/watch: stop reading."""

    def idle_seconds(self) -> float:
        """Seconds since the last event arrived."""


class _Pausable:
    """Pause bookkeeping shared by the file sources; `_running` wakes a sleeper on resume/stop."""

    def __init__(self) -> None:
        self.done = False
        self.paused = False
        self._running = threading.Event()
        self._running.set()
        self._last_arrival = time.monotonic()

    def pause(self) -> None:
        self.paused = True
        self._running.clear()

    def resume(self) -> None:
        self.paused = False
        self._running.set()

    def idle_seconds(self) -> float:
        return time.monotonic() - self._last_arrival

    def _arrived(self, events: list[Event]) -> list[Event]:
        if events:
            self._last_arrival = time.monotonic()
            if any(isinstance(e, RunEnd) for e in events):
                self.done = True
        return events


class ReplaySource(_Pausable):
    """Plays a saved log with its original timing divided by `speed` (None: as fast as possible)."""

    mode = "replay"

    def __init__(self, path: str | Path, speed: float | None = None) -> None:
        super().__init__()
        if speed is not None and not speed > 0:
            raise ValueError("speed must be positive or None (max)")
        self.speed = speed
        self.path = path
        self._events: Iterator[Event] = read_events(path)
        # Read the header and the next event now: a bad log fails before the app starts.
        self._ahead: list[Event] = list(itertools.islice(self._events, 2))
        self._t0 = self._ahead[0].t
        self._clock_start = time.monotonic()  # wall time that maps to log time t0
        self._paused_at: float | None = None
        # seeking and speed changes come from the UI thread while the bridge thread reads (see seek_to)
        self._lock = threading.Lock()
        self._wake = threading.Event()  # cuts a wait for the next event short
        self.step = -1  # the last step event played
        self._t_played = self._t0  # log time of the last event played
        self._until: float | None = None  # catching up: every event up to this step is due now

    def pause(self) -> None:
        if not self.paused:
            self._paused_at = time.monotonic()
        super().pause()

    def resume(self) -> None:
        if self._paused_at is not None:
            self._clock_start += time.monotonic() - self._paused_at  # the paused time does not count
            self._paused_at = None
        super().resume()

    def stop(self) -> None:
        self.done = True
        self._running.set()

    def _peek(self) -> Event | None:
        if not self._ahead:
            self._ahead.extend(itertools.islice(self._events, 1))
        return self._ahead[0] if self._ahead else None

    def _due_in(self, event: Event) -> float:
        """Seconds of wall time until `event` should be played (<= 0: now)."""
        if self._until is not None:
            if not (isinstance(event, Step) and event.step > self._until):
                return 0.0
            self._until = None  # caught up: from the last event played on, at the speed
            if self.speed is not None:
                now = self._paused_at if self._paused_at is not None else time.monotonic()
                self._clock_start = now - (self._t_played - self._t0) / self.speed
            if self.paused:
                return math.inf
        if self.speed is None:
            return 0.0
        return self._clock_start + (event.t - self._t0) / self.speed - time.monotonic()

    def get_batch(self, timeout: float) -> list[Event]:
        deadline = time.monotonic() + timeout
        while not self.done:
            if self.paused and self._until is None:  # a seek plays up to its step even while paused
                self._running.wait(max(0.0, deadline - time.monotonic()))
                if self.paused or time.monotonic() >= deadline:
                    return []
                continue
            with self._lock:
                batch = self._take_due()
                if batch:
                    return self._arrived(batch)
                nxt = self._peek()
                if nxt is None:
                    self.done = True  # the file ended (a log without run_end ends here too)
                    return []
                wait = min(self._due_in(nxt), deadline - time.monotonic())
            if wait <= 0 and time.monotonic() >= deadline:
                return []
            self._wake.wait(max(0.0, wait))
            self._wake.clear()
        return []

    def _take_due(self) -> list[Event]:
        batch: list[Event] = []
        while len(batch) < BATCH_CAP:
            nxt = self._peek()
            if nxt is None or self._due_in(nxt) > 0:
                break
            batch.append(self._ahead.pop(0))
            self._t_played = nxt.t
            if isinstance(nxt, Step):
                self.step = nxt.step
        return batch

    # -- speed and seeking (the replay keys) ------------------------------------------------------
    def set_speed(self, speed: float | None) -> None:
        """Play on at `speed` (None: as fast as possible) from where the replay is."""
        with self._lock:
            self.speed = speed
            if speed is not None:  # the last event played maps to now (to the pause, while paused)
                now = self._paused_at if self._paused_at is not None else time.monotonic()
                self._clock_start = now - (self._t_played - self._t0) / speed
            self._wake.set()

    def seek_to(self, step: float, rewind: bool | None = None) -> None:
        """Play every event up to step `step` at once (math.inf: to the end), then go on at the speed.
        Back (`rewind`, by default when `step` was played already) starts the log over: its header
        comes again, which tells the reader to start from a fresh state."""
        with self._lock:
            if step < self.step if rewind is None else rewind:
                self._events = read_events(self.path)
                self._ahead = list(itertools.islice(self._events, 1))
                self.step, self._t_played, self.done = -1, self._t0, False
            self._until = step
            self._wake.set()


class WatchSource(_Pausable):
    """Follows a log another process is still writing (tail -f); done at run_end."""

    mode = "watch"

    def __init__(self, path: str | Path, poll_interval: float = 0.2) -> None:
        super().__init__()
        self.poll_interval = poll_interval
        self._follower = LogFollower(path)
        # Check the header now if it is there: a file that is not a run log fails before the app starts.
        self._ahead: list[Event] = self._follower.poll(max_lines=1)
        self.started = bool(self._ahead)  # False until the header arrived: "waiting for data"
        self.writer = WriterWatch()  # whether the writing process still lives, from its heartbeats

    def stop(self) -> None:
        self.done = True
        self._running.set()

    def get_batch(self, timeout: float) -> list[Event]:
        deadline = time.monotonic() + timeout
        while not self.done:
            if self.paused:
                self._running.wait(max(0.0, deadline - time.monotonic()))
                return []
            polled = self._follower.poll(BATCH_CAP)
            batch, self._ahead = self._ahead + polled, []
            self.writer.saw(batch, at_end=len(polled) < BATCH_CAP)
            if batch:
                self.started = True
                return self._arrived(batch)
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            time.sleep(min(self.poll_interval, left))
        return []

    def writer_gone(self) -> str:
        """Why the writer is known to be gone (engine.log.liveness), or ""."""
        return "" if self.done else self.writer.gone()

    def close(self) -> None:
        self._follower.close()
