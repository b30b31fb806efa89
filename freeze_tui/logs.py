"""One or several run logs as one source of events, for `replay`, `watch`, `report` and `export`.

Several logs are merged (engine.log.merge): their arms side by side, paired by step, prefixed
by their run (the log's file name) when names clash. Each log is opened, and so checked, before
anything starts: a bad one fails with its own one-line error. No torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from engine.errors import FreezeTuiError
from engine.log.events import Event
from engine.log.merge import MergedSource, merge_events, run_names
from engine.log.runlog import read_events
from engine.log.state import RunState


def _distinct(logs: tuple[str, ...] | list[str]) -> list[str]:
    logs = list(logs)
    seen = {Path(p).resolve() for p in logs}
    if len(seen) < len(logs):
        raise FreezeTuiError("the same log is given twice; pass each run log once")
    return logs


def events_of(logs) -> Iterator[Event]:
    """All events of one log, or the merged events of several."""
    logs = _distinct(logs)
    if len(logs) == 1:
        return _checked(logs[0])
    return merge_events([_checked(p) for p in logs], run_names(logs))


def _checked(path: str) -> Iterator[Event]:
    """A log's events, its first one read now (a missing or foreign file fails here)."""
    events = read_events(path)
    first = next(events)
    return _chain(first, events)


def _chain(first: Event, rest: Iterator[Event]) -> Iterator[Event]:
    yield first
    yield from rest


def state_of(logs) -> RunState:
    return RunState().apply_all(events_of(logs))


def source_of(logs, open_one: Callable):
    """`open_one(path)` for one log; a MergedSource over each log's own source for several."""
    logs = _distinct(logs)
    if len(logs) == 1:
        return open_one(logs[0])
    return MergedSource([open_one(p) for p in logs], run_names(logs))


def title_of(logs) -> str:
    return " + ".join(Path(p).name for p in logs)
