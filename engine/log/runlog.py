"""The JSONL run log: one writer that appends whole lines, a reader, and a follower (tail -f). No torch."""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from engine.core.errors import FreezeTuiError, LogError
from engine.log.events import SCHEMA, Event, Header, decode


class LogWriter:
    """Appends one flushed line per event. Refuses to replace an existing log unless told to."""

    def __init__(self, path: str | Path, *, overwrite: bool = False, append: bool = False) -> None:
        self.path = Path(path)
        if append:  # `run --resume`: the same log goes on
            self._file = _open_to_append(self.path)
            return
        if self.path.is_dir():
            raise FreezeTuiError(f"log path {self.path} is a directory; give a file name such as {self.path}/run.jsonl")
        if self.path.exists() and not overwrite:
            raise FreezeTuiError(
                f"log {self.path} already exists; choose another --log or pass --overwrite to replace it"
            )
        blocker = next((a for a in self.path.parents if a.exists() and not a.is_dir()), None)
        if blocker is not None:
            raise FreezeTuiError(
                f"cannot write log {self.path}: {blocker} is a file, not a folder; choose a writable --log path"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # "x": never replace a log that appeared since the check above (another run's); --overwrite
            # truncates only once the lock is ours, so a live run's log is never cut under it
            self._file = open(self.path, "r+b" if overwrite and self.path.exists() else "xb")  # noqa: SIM115
            _lock(self._file, self.path)
            self._file.truncate(0)
        except FileExistsError:
            raise FreezeTuiError(
                f"log {self.path} already exists; choose another --log or pass --overwrite to replace it"
            ) from None
        except OSError as exc:
            raise FreezeTuiError(
                f"cannot write log {self.path}: {exc.strerror}; choose a writable --log path"
            ) from None

    def write(self, event: Event) -> None:
        """One whole line per call; raises OSError when the disk or file fails (the engine stops the run)."""
        from engine.log.events import encode

        self._file.write(encode(event) + b"\n")
        self._file.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()


def _open_to_append(path: Path):
    """The log of a killed run, locked, positioned after its last whole line (a line cut by the kill is
    removed: a reader skips it anyway, and the next line must start on a line of its own)."""
    try:
        f = open(path, "r+b")  # noqa: SIM115 - kept by the writer
    except OSError as exc:
        raise FreezeTuiError(f"cannot append to log {path}: {exc.strerror}; check its permissions") from None
    _lock(f, path)
    end = f.seek(0, os.SEEK_END)
    while end > 0:  # back to the last newline, a block at a time (a log can be GBs)
        start = max(0, end - (1 << 16))
        f.seek(start)
        found = f.read(end - start).rfind(b"\n")
        if found >= 0:
            end = start + found + 1
            break
        end = start
    f.seek(end)
    f.truncate()
    return f


def _lock(file, path: Path) -> None:
    """The one writer of a log holds an exclusive advisory lock on it while the run lasts (released when
    the process ends, however it ends); readers never lock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        return
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.close()
        raise FreezeTuiError(
            f"log {path} is being written by a run that is still going; choose another --log (or stop that run first)"
        ) from None


MAX_LINE = 64 << 20  # bytes; the longest line a run writes (a dw line of a large model) is far shorter


def _open(path: str | Path):
    """A run log is a regular file: a device (/dev/zero) never ends and a FIFO blocks, so both are refused."""
    p = Path(path)
    if not p.exists():
        raise LogError(f"log {p} does not exist; pass the path of a .jsonl file written by `freeze-tui run`")
    if p.is_dir():
        raise LogError(f"{p} is a directory; pass the path of a .jsonl run log inside it")
    if not p.is_file():
        raise LogError(f"{p} is not a regular file (a device, FIFO or pipe); pass a .jsonl run log file")
    try:
        f = open(p, "rb")  # noqa: SIM115 - returned to the caller
    except OSError as exc:
        raise LogError(f"cannot read log {p}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # replaced between the check and the open
        f.close()
        raise LogError(f"{p} is not a regular file; pass a .jsonl run log file")
    return f


def _too_long(path: Path, lineno: int) -> LogError:
    return LogError(f"{path}: line {lineno} is longer than {MAX_LINE >> 20} MB; is this a freeze-tui run log?")


def _check_header(event: Event, path: Path) -> None:
    if not isinstance(event, Header):
        raise LogError(f"{path}: line 1 is a {event.kind!r} event, not a header; is this a freeze-tui run log?")
    if event.schema != SCHEMA:
        raise LogError(
            f"{path} uses log schema {event.schema} ({event.producer or 'unknown producer'}); "
            f"this freeze-tui reads schema {SCHEMA}: use a matching freeze-tui version"
        )


def _decode_line(raw: bytes, lineno: int, path: Path) -> Event:
    try:
        return decode(raw)
    except LogError as exc:
        raise LogError(f"{path}: line {lineno}: {exc}; is this a freeze-tui run log?") from None


def _lines(f, path: Path) -> Iterator[tuple[bytes, bool]]:
    """(line without its newline, whether it had one) for each line of a binary file. The file is
    memory-mapped so each line is copied once: splitting multi-kB dw lines out of read chunks
    cost more than decoding them."""
    try:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except ValueError:  # an empty file cannot be mapped
        return
    with mapped:
        start, size, find, lineno = 0, len(mapped), mapped.find, 0
        while start < size:
            lineno += 1
            end = find(b"\n", start, start + MAX_LINE + 1)
            if end < 0:
                if size - start > MAX_LINE:
                    raise _too_long(path, lineno)
                yield mapped[start:size], False
                return
            yield mapped[start:end], True
            start = end + 1


def read_events(path: str | Path) -> Iterator[Event]:
    """All events of a log in order. A truncated last line (a writer killed mid-write) is skipped. Events
    a `resumed` event supersedes are left out (engine.log.supersede)."""
    from engine.log.supersede import drop_superseded

    events = _read_all(path)
    first = next(events, None)  # the file is checked (a regular file, a header) before it is scanned
    if first is None:
        return
    yield first
    yield from drop_superseded(events, _windows(path))


def read_every_event(path: str | Path) -> Iterator[Event]:
    """Every event of a log, superseded ones too (`run --resume` continues the seq after the last line)."""
    return _read_all(path)


def _windows(path: str | Path) -> list[tuple[int, int]]:
    from engine.log.supersede import superseded_windows

    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return superseded_windows(mapped)
    except (OSError, ValueError):  # missing, empty or not a file: _read_all says what is wrong
        return []


def _read_all(path: str | Path) -> Iterator[Event]:
    p = Path(path)
    with _open(p) as f:
        lineno = 0
        for raw, complete in _lines(f, p):
            lineno += 1
            if not complete:  # the last line, cut off mid-write: everything before it stands
                try:
                    event = decode(raw)
                except LogError:
                    if lineno == 1:
                        raise LogError(
                            f"log {p} holds no complete line; its writer was killed while starting"
                        ) from None
                    return
            else:
                event = _decode_line(raw, lineno, p)
            if lineno == 1:
                _check_header(event, p)
            yield event
        if lineno == 0:
            raise LogError(f"log {p} is empty; a run writes its header first, so this run never started")


class LogFollower:
    """Reads the complete lines appended since the last poll; never blocks. A log replaced under it
    (rotated, or truncated and rewritten) is an error that says so, never merged into the old run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = _open(self.path)
        self._inode = os.fstat(self._file.fileno()).st_ino
        self._partial = b""
        self._lineno = 0

    def poll(self, max_lines: int = 100_000) -> list[Event]:
        """New events (at most max_lines); [] when the writer has written nothing new."""
        out: list[Event] = []
        while len(out) < max_lines:
            raw = self._file.readline(MAX_LINE + 1 - len(self._partial))
            if not raw:
                if not out:
                    self._check_replaced()
                break
            if not raw.endswith(b"\n"):
                self._partial += raw  # the writer is mid-line: wait for the rest
                if len(self._partial) > MAX_LINE:
                    raise _too_long(self.path, self._lineno + 1)
                break
            raw, self._partial = self._partial + raw, b""
            self._lineno += 1
            event = _decode_line(raw, self._lineno, self.path)
            if self._lineno == 1:
                _check_header(event, self.path)
            elif isinstance(event, Header):  # a new run began writing this path
                raise LogError(f"log {self.path} was rewritten by another run; watch it again to follow that run")
            out.append(event)
        return out

    def _check_replaced(self) -> None:
        """Nothing new: has the path moved on to another file, or been cut below what we read?"""
        try:
            now = os.stat(self.path)
        except OSError:
            return  # moved away and not (yet) replaced: the header says "no new events"
        if now.st_ino != self._inode:
            raise LogError(f"log {self.path} was replaced by another file (rotated?); watch it again to follow that")
        if now.st_size < self._file.tell():
            raise LogError(
                f"log {self.path} was truncated and rewritten since it was opened; watch it again to follow the new run"
            )

    def close(self) -> None:
        self._file.close()
