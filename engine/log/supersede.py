"""The supersede rule of a resumed log (issue 21), in one place. No torch.

`run --resume` appends to the log of a killed run a `resumed` event naming the last event its checkpoint
covers (`after_seq`). What the killed run wrote after that (steps it logged past the checkpoint, their dw,
epoch ends, samples, warnings) is superseded: every file reader drops the events whose seq lies between
`after_seq` and the `resumed` event's own seq, so replay, report, export and merge see one value per step.
A follower (watch) has seen them already; RunState undoes them when the `resumed` event arrives.
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.log.events import Event, Resumed, decode, line_mark

MARK = line_mark(Resumed)


def superseded_windows(data) -> list[tuple[int, int]]:
    """(after_seq, seq) of every `resumed` line in the log's bytes `data` (bytes or mmap): the events with
    after_seq < seq' < seq are superseded. A cut or malformed line is no window."""
    windows = []
    start = data.find(MARK)
    while start >= 0:
        line_start = data.rfind(b"\n", 0, start) + 1
        end = data.find(b"\n", start)
        if end < 0:
            break  # a cut last line: the reader skips it too
        try:
            event = decode(bytes(data[line_start:end]))
        except Exception:  # the reader reports a malformed line with its number
            event = None
        if isinstance(event, Resumed):
            windows.append((int(event.after_seq), int(event.seq)))
        start = data.find(MARK, end)
    return windows


def is_superseded(seq: int, windows: list[tuple[int, int]]) -> bool:
    return any(after < seq < resumed for after, resumed in windows)


def drop_superseded(events: Iterator[Event], windows: list[tuple[int, int]]) -> Iterator[Event]:
    """The events that stand: those of no window."""
    if not windows:
        yield from events
        return
    for event in events:
        if not is_superseded(event.seq, windows):
            yield event
