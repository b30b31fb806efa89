"""The JSONL run log: one writer that appends whole lines, a reader, and a follower (tail -f). No torch."""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Iterator
from pathlib import Path

from engine.errors import FreezeTuiError, LogError
from engine.log.events import SCHEMA, Event, Header, decode


class LogWriter:
    """Appends one flushed line per event. Refuses to replace an existing log unless told to."""

    def __init__(self, path: str | Path, *, overwrite: bool = False) -> None:
        self.path = Path(path)
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
            # "x": never replace a log that appeared since the check above (another run's)
            self._file = open(self.path, "wb" if overwrite else "xb")  # noqa: SIM115 - closed by close()
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


def _open(path: str | Path):
    p = Path(path)
    if not p.exists():
        raise LogError(f"log {p} does not exist; pass the path of a .jsonl file written by `freeze-tui run`")
    if p.is_dir():
        raise LogError(f"{p} is a directory; pass the path of a .jsonl run log inside it")
    try:
        return open(p, "rb")
    except OSError as exc:
        raise LogError(f"cannot read log {p}: {exc.strerror}") from None


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


def _lines(f) -> Iterator[tuple[bytes, bool]]:
    """(line without its newline, whether it had one) for each line of a binary file. The file is
    memory-mapped so each line is copied once: splitting multi-kB dw lines out of read chunks
    cost more than decoding them."""
    try:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except ValueError:  # an empty file cannot be mapped
        return
    with mapped:
        start, size, find = 0, len(mapped), mapped.find
        while start < size:
            end = find(b"\n", start)
            if end < 0:
                yield mapped[start:size], False
                return
            yield mapped[start:end], True
            start = end + 1


def read_events(path: str | Path) -> Iterator[Event]:
    """All events of a log in order. A truncated last line (a writer killed mid-write) is skipped."""
    p = Path(path)
    with _open(p) as f:
        lineno = 0
        for raw, complete in _lines(f):
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
    """Reads the complete lines appended since the last poll; never blocks."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = _open(self.path)
        self._partial = b""
        self._lineno = 0

    def poll(self, max_lines: int = 100_000) -> list[Event]:
        """New events (at most max_lines); [] when the writer has written nothing new."""
        out: list[Event] = []
        while len(out) < max_lines:
            raw = self._file.readline()
            if not raw:
                break
            if not raw.endswith(b"\n"):
                self._partial += raw  # the writer is mid-line: wait for the rest
                break
            raw, self._partial = self._partial + raw, b""
            self._lineno += 1
            event = _decode_line(raw, self._lineno, self.path)
            if self._lineno == 1:
                _check_header(event, self.path)
            out.append(event)
        return out

    def close(self) -> None:
        self._file.close()
