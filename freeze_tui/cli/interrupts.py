"""Stop requests from outside: Ctrl-C (SIGINT), SIGTERM and SIGHUP (an SSH connection or a tmux
session gone) are one request everywhere. The first asks the run to stop at its next step boundary
(the log ends with `run_end` "stopped"); the second quits at once, keeping every line written so far.

Handlers only count and notify: nothing is raised inside whatever the main thread was doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import sys
import threading
from collections.abc import Callable

from engine.core.control import STOP_SIGNALS


class Interrupts:
    """Counts stop signals while installed (main thread only); `listener(count)` hears each one."""

    def __init__(self) -> None:
        self.count = 0
        self.listener: Callable[[int], None] | None = None
        self._previous: dict = {}

    def install(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread() and not self._previous:
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def __enter__(self) -> Interrupts:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.restore()

    def _on_signal(self, signum, frame) -> None:
        self.note()

    def note(self) -> None:
        """One more stop request (a signal, or a KeyboardInterrupt caught by the caller)."""
        self.count += 1
        if self.listener is not None:
            self.listener(self.count)


class Guarded:
    """A text stream that outlives its reader: when a write fails (`| head -1` closed the pipe, the SSH
    terminal hung up), the rest is dropped and the descriptor is pointed at /dev/null, so training goes
    on and Python's own flush at exit cannot fail either. The run log is the record."""

    def __init__(self, stream) -> None:
        self._stream = stream
        # Unbuffered (python -u, PYTHONUNBUFFERED): TextIOWrapper writes straight to the raw file and drops
        # the rest of a short write (at a `ulimit -f` limit) without an error. A buffered writer over
        # the same descriptor retries the rest, so the EFBIG/ENOSPC that follows is raised.
        self._flush_each = isinstance(getattr(stream, "buffer", None), io.RawIOBase)
        if self._flush_each:
            self._stream = _buffered_twin(stream)
        self.gone = False
        self.error: OSError | None = None  # why, unless the reader only went away (EPIPE): see lost_output
        self.target = "standard output"

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self._stream.write(text)
                if self._flush_each:
                    self._stream.flush()
            except (OSError, ValueError) as exc:
                self._lost(exc)
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._stream.flush()
            except (OSError, ValueError) as exc:
                self._lost(exc)

    def _lost(self, exc: Exception) -> None:
        self.gone = True
        if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
            self.error = exc  # a full disk or a file size limit: the output is cut, that must not pass as done
            self.target = _target(self._stream)  # before silence() points the descriptor at /dev/null
        silence(self._stream)

    def isatty(self) -> bool:
        return not self.gone and self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def __getattr__(self, name: str):  # encoding, errors, buffer …: as the real stream
        return getattr(self._stream, name)


def _buffered_twin(stream):
    """A buffered text stream on `stream`'s descriptor that never closes it (the original stays usable)."""
    raw = io.FileIO(stream.fileno(), "w", closefd=False)
    return io.TextIOWrapper(
        io.BufferedWriter(raw), encoding=stream.encoding, errors=stream.errors, line_buffering=stream.line_buffering
    )


def lost_output() -> str | None:
    """Why stdout lost output, when that was not its reader going away (`| head`: EPIPE stays silent)."""
    error = getattr(sys.stdout, "error", None)
    if error is None:
        return None
    target = getattr(sys.stdout, "target", "standard output")
    return (
        f"writing the output to {target} failed ({error.strerror or error}); it is incomplete:"
        " free space or raise the file size limit (ulimit -f) and run the command again"
    )


def _target(stream) -> str:
    """Where `stream` writes (the file behind a redirect, on Linux), for the error line."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        path = os.readlink(f"/proc/self/fd/{stream.fileno()}")
        if path.startswith("/"):
            return path
    return "standard output"


def ignore_file_size_signal() -> None:
    """A write past `ulimit -f` then fails with EFBIG (reported, exit 2) instead of SIGXFSZ killing the
    process with a cut file (CPython ignores it at start-up; an embedding host may not)."""
    if hasattr(signal, "SIGXFSZ") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def silence(stream) -> None:
    """Point `stream`'s descriptor at /dev/null (whatever it held is lost with its reader)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def flush_std() -> None:
    """Flush stdout and stderr; a stream whose reader is gone is silenced instead of failing."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            silence(stream)
            with contextlib.suppress(OSError, ValueError):
                stream.flush()


def exit_now(code: int) -> None:
    """Leave without interpreter shutdown: the engine thread may be inside torch (a step, a model load),
    and tearing the runtime down under it aborts the process ('terminate called without an active
    exception', exit 134). The caller has closed the log; stdout and stderr are flushed here."""
    flush_std()
    os._exit(code)


APP_CLOSE_GRACE_S = 5.0


def run_app(app, interrupts: Interrupts, ended: Callable[[], bool] = lambda: True, on_stuck=None) -> None:
    """Run a Textual app with stop signals delivered to its `stop_signal(count)` on its own loop: it
    closes through Textual, so the terminal leaves the alternate screen and mouse mode on SIGTERM too.

    After a signal the terminal may be gone (SIGHUP), and Textual can then block for good writing its
    goodbye to it: once `ended()` (the run's log is complete), the app gets APP_CLOSE_GRACE_S seconds
    to close, then `on_stuck()` leaves without it."""
    returned = threading.Event()
    watchdog = threading.Thread(target=_watch_close, args=(returned, ended, on_stuck), daemon=True)

    def deliver(count: int) -> None:
        if on_stuck is not None and not watchdog.is_alive() and count == 1:
            watchdog.start()
        try:
            loop = asyncio.get_running_loop()  # the handler runs on the main thread, inside the app's loop
        except RuntimeError:  # not started yet or already closing: the count is still kept
            return
        loop.call_soon_threadsafe(app.stop_signal, count)

    interrupts.listener = deliver
    try:
        app.run()
    finally:
        returned.set()
        interrupts.listener = None


def _watch_close(returned: threading.Event, ended: Callable[[], bool], on_stuck) -> None:
    while not returned.wait(0.2):
        if ended():
            if not returned.wait(APP_CLOSE_GRACE_S):
                on_stuck()
            return
