"""One or several run logs as one source of events, for `replay`, `watch`, `report` and `export`.

Several logs are merged (engine.log.merge): their arms side by side, paired by step, prefixed
by their run when names clash. A run is named NAME=LOG on the command line, else after its
file. Each log is opened, and so checked, before anything starts: a bad one fails with its
own one-line error. No torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from engine.core.errors import FreezeTuiError
from engine.log.events import Event
from engine.log.merge import MergedSource, merge_events, run_names
from engine.log.runlog import read_events
from engine.log.state import RunState


def named(args) -> tuple[list[str], list[str]]:
    """(paths, run names) from LOG or NAME=LOG arguments; a run without a name is called after
    its file (see engine.log.merge.run_names)."""
    pairs = []
    for arg in args:
        name, sep, path = arg.partition("=")
        if sep and name and "/" not in name and not Path(arg).exists():
            pairs.append((name, path))
        else:
            pairs.append(("", arg))
    paths = [p for _, p in pairs]
    if len({Path(p).resolve() for p in paths}) < len(paths):
        raise FreezeTuiError("the same log is given twice; pass each run log once")
    names = [given or default for (given, _), default in zip(pairs, run_names(paths), strict=True)]
    if len(set(names)) < len(names):
        raise FreezeTuiError(f"two runs are named alike ({', '.join(names)}); give each its own NAME=LOG")
    return paths, names


def events_of(logs) -> Iterator[Event]:
    """All events of one log, or the merged events of several."""
    paths, names = named(logs)
    if len(paths) == 1:
        return _checked(paths[0])
    return merge_events([_checked(p) for p in paths], names)


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
    paths, names = named(logs)
    if len(paths) == 1:
        return open_one(paths[0])
    return MergedSource([open_one(p) for p in paths], names)


def title_of(logs) -> str:
    paths, names = named(logs)
    if len(paths) == 1:
        return Path(paths[0]).name
    defaults = run_names(paths)
    return " + ".join(
        Path(path).name if name == default else f"{name}={Path(path).name}"
        for name, path, default in zip(names, paths, defaults, strict=True)
    )
