"""The one emitter of a run: stamp (seq, t) -> fold (RunState) -> hand to every sink. No torch.

A live run (engine thread), a distributed run's rank 0 and the `Recorder` of a user's own loop all
emit through it; what differs is only the sinks: the log writer, the channel to a viewer, a gather
buffer. Nothing is emitted after `run_end` (the log's last line), nor after `close()`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from engine.log import events as ev
from engine.log.runlog import LogWriter
from engine.log.state import RunState

Sink = Callable[[ev.Event], None]


def run_time() -> str:
    """`YYYYmmdd-HHMMSS`, now: a run's start time as its id and its default log name spell it."""
    return time.strftime("%Y%m%d-%H%M%S")


def new_run_id() -> str:
    """`YYYYmmdd-HHMMSS-xxxxxx`: the start time, and 3 random bytes so that two runs started in the same
    second differ."""
    return f"{run_time()}-{os.urandom(3).hex()}"


def stamped(event: ev.Event, seq: int) -> ev.Event:
    """The event as it leaves: its place in the stream and the time it left."""
    return ev.stamped(event, seq, time.time())


class Emitter:
    """Stamps, folds into `state`, then calls every sink in order. Thread-safe: the engine thread, the
    heartbeat and a failure watcher emit through the same lock (re-entrant: a sink that fails may emit
    the error that says so)."""

    def __init__(self, sinks: list[Sink] | None = None, state: RunState | None = None) -> None:
        self.sinks: list[Sink] = list(sinks or [])
        self.state = state if state is not None else RunState()
        self.lock = threading.RLock()
        self.seq = 0
        self.ended = False  # run_end went out: nothing follows it
        self.closed = False  # abandoned: nothing more is folded or handed on

    def emit(self, event: ev.Event) -> None:
        with self.lock:
            if self.ended or self.closed:
                return
            event = stamped(event, self.seq)
            self.seq += 1
            self.state.apply(event)
            for sink in list(self.sinks):
                sink(event)  # a log sink that fails here may still say why (a re-entrant emit)
            self.ended = self.ended or isinstance(event, ev.RunEnd)

    def close(self, timeout: float = 5.0, last: Callable[[], ev.Event] | None = None) -> None:
        """No more events; a line being written is finished first (waits at most `timeout`). `last()`: the
        event that ends the stream when nothing ended it yet (a run quit before its run_end)."""
        locked = self.lock.acquire(timeout=timeout)
        try:
            if last is not None and locked and not self.ended and self.seq > 0:
                with contextlib.suppress(Exception):  # a sink that cannot take it keeps what it has
                    self.emit(last())
            self.closed = True
        finally:
            if locked:
                self.lock.release()


class LogSink:
    """The run log as a sink. A write that fails (disk full) closes the file as it is (every line so far
    whole) and calls `on_broken(exc)` once; later events are not written."""

    def __init__(
        self, path: str | Path, *, overwrite: bool = False, on_broken: Callable[[Exception], None], append: bool = False
    ) -> None:
        self.path = Path(path)
        self.writer: LogWriter | None = LogWriter(path, overwrite=overwrite, append=append)
        self.on_broken = on_broken

    def __call__(self, event: ev.Event) -> None:
        if self.writer is None:
            return
        try:
            self.writer.write(event)
        except (OSError, ValueError) as exc:
            self.close()  # quietly: its file may refuse even that
            self.on_broken(exc)

    def close(self) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()
