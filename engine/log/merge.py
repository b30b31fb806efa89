"""Several run logs read as one run: their arms side by side, paired by step. No torch.

`Merger` takes each run's events in order and gives back one event stream that the one
reducer (RunState) and every view read unchanged: one header and one run_start with the arms
of all runs, one `step` (and one `dw`) event per step holding every run's arms, the other
events in step order, and one run_end once every run ended. When an arm name occurs in more
than one run, every arm is named `<run>/<arm>`, in every event kind, `<run>` the run's short name
(engine.log.short_names); run_start's `config.runs` says which run each short name is and which
settings differ between the runs. Times are shifted so that
each run starts when the first one did: a run recorded yesterday and one recorded today read
like arms of one run. `merge_events` drives it over finished logs (report, export);
`engine.log.sources.MergedSource` over live sources (replay, watch).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from engine.log import events as ev
from engine.log.short_names import settings_diff, short_names

# not compared between merged runs: the arms are listed per run, the rest differs by nature
NOT_COMPARED = frozenset({"arms", "log", "runs", "session", "overwrite", "monitor"})
STATUS_RANK = {"finished": 0, "stopped": 1, "failed": 2}
PULL = 256  # events read from one log at a time by merge_events
E = TypeVar("E", bound=ev.Event)
Key = tuple[int, int]  # (step, 0 for the step event itself / 1 for what follows it)


@dataclass
class _Run:
    name: str
    short: str  # the run's part of its arms' names when they clash (engine.log.short_names)
    queue: deque = field(default_factory=deque)  # (key, event) read but not yet merged
    header: ev.Header | None = None
    start: ev.RunStart | None = None
    end: ev.RunEnd | None = None
    last_step: int = -1
    last_key: Key = (-1, 1)
    done: bool = False  # nothing more will be read from this run
    t0: float | None = None
    names: dict[str, str] = field(default_factory=dict)  # arm name in the log -> merged name
    dw: ev.DW | None = None  # the latest dw event of this run


class Merger:
    """Feed each run's events with `feed(i, events)`, say `finish(i)` when run i has no more,
    and take the merged events from `ready()`; `blocked()` names the runs it waits for.

    parts_of_one_run: the streams are parts of one run, the arm groups of a distributed run at a sync
    point (`merge_parts`): no header or run_start to wait for, the epoch_end events of an epoch merge
    like steps, messages keep their text, and the first stream's samples before training stand for all."""

    def __init__(self, names: list[str], *, parts_of_one_run: bool = False) -> None:
        if len(set(names)) != len(names):
            raise ValueError(f"run names must differ: {names}")
        self.runs = [_Run(name, short) for name, short in zip(names, short_names(names), strict=True)]
        self.parts_of_one_run = parts_of_one_run
        self.started = parts_of_one_run
        self.ended = False
        self.seq = 0
        self.t0 = 0.0
        # the run whose samples before training stand for all (see DECISIONS.md)
        self.pre_owner = 0 if parts_of_one_run else -1

    # -- input ------------------------------------------------------------------------------------
    def feed(self, i: int, events: Iterable[ev.Event]) -> None:
        run = self.runs[i]
        for e in events:
            if run.t0 is None:
                run.t0 = e.t
            if isinstance(e, ev.Header):
                run.header = e
            elif isinstance(e, ev.RunStart) and run.start is None:
                run.start = e
            elif isinstance(e, ev.RunEnd):
                run.end, run.done = e, True  # nothing follows run_end
            elif isinstance(e, ev.Resumed):  # what it supersedes: dropped by a file reader, here from a queue
                run.queue = deque((k, q) for k, q in run.queue if not e.after_seq < q.seq < e.seq)
                run.last_step = min(run.last_step, e.step - 1)
                run.last_key = run.queue[-1][0] if run.queue else (run.last_step, 1)
            else:
                if isinstance(e, ev.Step):
                    run.last_step = e.step
                key = (run.last_step, 0 if isinstance(e, ev.Step) else 1)
                run.queue.append((key, e))
                run.last_key = key

    def finish(self, i: int) -> None:
        self.runs[i].done = True

    def blocked(self) -> list[int]:
        """Runs whose next events are needed before anything more can be merged."""
        waiting_for_start = not self.started
        return [
            i
            for i, r in enumerate(self.runs)
            if not r.done and (not r.queue or (waiting_for_start and r.start is None))
        ]

    @property
    def exhausted(self) -> bool:
        return self.ended

    # -- output -----------------------------------------------------------------------------------
    def ready(self) -> list[ev.Event]:
        """Every merged event that is certain now (in order); [] while waiting for a run."""
        out: list[ev.Event] = []
        if not self.started:
            if any(not r.done and r.start is None for r in self.runs):
                return out  # every run_start must be known before the arms are named
            out += self._preamble()
        while True:
            heads = [(r.queue[0][0], i) for i, r in enumerate(self.runs) if r.queue]
            if not heads:
                break
            key, i = min(heads)
            if any(not r.done and not r.queue and r.last_key < key for r in self.runs):
                break  # a run still being read may yet bring an event that goes first
            out += self._merge_head(key, i)
        if not self.ended and all(r.done and not r.queue for r in self.runs):
            self.ended = True
            out += self._end()
        return out

    def _out(self, event: ev.Event, **changes) -> ev.Event:
        changes.setdefault("seq", self.seq)
        self.seq += 1
        return ev.replaced(event, **changes)

    def _retimed(self, i: int, t: float) -> float:
        t0 = self.runs[i].t0
        return t - (t0 if t0 is not None else t) + self.t0

    def _preamble(self) -> list[ev.Event]:
        self.started = True
        self.t0 = next((r.t0 for r in self.runs if r.t0 is not None), 0.0)
        self._name_arms()
        first = next((r.header for r in self.runs if r.header is not None), ev.Header())
        run_ids = [str(r.header.run_id) for r in self.runs if r.header is not None]
        out = [self._out(first, t=self.t0, run_id=" + ".join(run_ids))]
        starts = [(r, r.start) for r in self.runs if r.start is not None]
        if starts:
            self.pre_owner = next(i for i, r in enumerate(self.runs) if r.start is not None)
            out.append(self._out(self._run_start(starts), t=self.t0))
            out += self._model_warning(starts)
        return out

    def _name_arms(self) -> None:
        arm_lists = [
            [a.name for a in r.start.arms if isinstance(a, ev.ArmRecord)] if r.start else [] for r in self.runs
        ]
        every = [n for names in arm_lists for n in names]
        clash = len(every) != len(set(every))
        for run, names in zip(self.runs, arm_lists, strict=True):
            run.names = {n: f"{run.short}/{n}" if clash else n for n in names}

    def _run_start(self, starts: list[tuple[_Run, ev.RunStart]]) -> ev.RunStart:
        first = starts[0][1]
        arms = [
            ev.replaced(a, name=run.names.get(a.name, a.name))
            for run, start in starts
            for a in start.arms
            if isinstance(a, ev.ArmRecord)
        ]
        models = list(dict.fromkeys(_model_name(start, "?") for _, start in starts))
        differ = settings_diff([start.config for _, start in starts], NOT_COMPARED)
        runs = [
            msgspec.to_builtins(
                ev.MergedRun(
                    name=run.name,
                    run_id=run.header.run_id if run.header else "",
                    model=start.model_info().name,
                    arms=list(run.names.values()),  # which arms are paired: times of different runs never are
                    short=run.short,
                    settings={key: values[k] for key, values in differ.items()},  # those that differ between runs
                )
            )
            for k, (run, start) in enumerate(starts)
        ]
        return ev.replaced(
            first, arms=arms, model={**first.model, "name": " | ".join(models)}, config={**first.config, "runs": runs}
        )

    def _model_warning(self, starts: list[tuple[_Run, ev.RunStart]]) -> list[ev.Event]:
        models = {_model_name(start, "None") for _, start in starts}
        if len(models) < 2:
            return []
        owner = self.runs[self.pre_owner].name
        message = f"the runs use different models; p before training and Δp of every arm compare with {owner}'s samples"
        return [self._out(ev.Warning(message=message), t=self.t0)]

    def _merge_head(self, key: Key, i: int) -> list[ev.Event]:
        head = self.runs[i].queue[0][1]
        if isinstance(head, ev.Step):
            return [self._merge_steps(key)]
        if isinstance(head, ev.DW):
            return [self._merge_dw(key, head.step)]
        if isinstance(head, ev.EpochEnd) and self.parts_of_one_run:
            return [self._merge_epoch_ends(key, head.epoch)]
        if isinstance(head, ev.StepZero):
            return [self._merge_arms(key, ev.StepZero)]
        run = self.runs[i]
        run.queue.popleft()
        event = self._translate(i, head)
        return [] if event is None else [event]

    def _take(self, key: Key, kind: type[E], match=lambda e: True) -> list[tuple[int, E]]:
        """Pop the head of every run whose head has `key`, is a `kind` and matches."""
        taken: list[tuple[int, E]] = []
        for i, run in enumerate(self.runs):
            if run.queue and run.queue[0][0] == key and isinstance(run.queue[0][1], kind) and match(run.queue[0][1]):
                taken.append((i, run.queue.popleft()[1]))
        return taken

    def _merge_steps(self, key: Key) -> ev.Event:
        taken = self._take(key, ev.Step)
        arms = {self._arm(i, name): rec for i, e in taken for name, rec in e.arms.items()}
        first_i, first = taken[0]
        t = max(self._retimed(i, e.t) for i, e in taken)
        return self._out(first, t=t, arms=arms)

    def _merge_dw(self, key: Key, step: int) -> ev.Event:
        """One dw event with every run's latest norms: a run measured less often keeps its last ones,
        as one run's arms keep theirs in RunState."""
        taken = self._take(key, ev.DW, lambda e: e.step == step)
        for i, e in taken:
            self.runs[i].dw = e
        joined = ev.joined_dw([(r.dw, r.names) for r in self.runs if r.dw is not None])
        t = max(self._retimed(i, e.t) for i, e in taken)
        return self._out(joined, t=t, step=taken[0][1].step)

    def _merge_epoch_ends(self, key: Key, epoch: int) -> ev.Event:
        return self._merge_arms(key, ev.EpochEnd, lambda e: e.epoch == epoch)

    def _merge_arms(self, key: Key, kind: type[ev.EpochEnd] | type[ev.StepZero], match=lambda e: True) -> ev.Event:
        """One event of `kind` with the arms of every run whose head is one (renamed as merged)."""
        taken = self._take(key, kind, match)
        arms = {self._arm(i, name): rec for i, e in taken for name, rec in e.arms.items()}
        t = max(self._retimed(i, e.t) for i, e in taken)
        return self._out(taken[0][1], t=t, arms=arms)

    def _translate(self, i: int, e: ev.Event) -> ev.Event | None:
        """Any other event: its arm renamed, its time shifted, its message saying which run."""
        changes: dict = {"t": self._retimed(i, e.t)}
        if isinstance(e, ev.Sample) and e.phase == "pre" and i != self.pre_owner:
            return None
        arm = getattr(e, "arm", None)
        if isinstance(arm, str) and arm in self.runs[i].names:
            changes["arm"] = self.runs[i].names[arm]
        if isinstance(e, ev.EpochEnd) and set(e.arms) <= set(self.runs[i].names):
            changes.update(arms={self._arm(i, name): value for name, value in e.arms.items()})
        message = getattr(e, "message", None)
        if isinstance(message, str) and len(self.runs) > 1 and not self.parts_of_one_run:
            changes["message"] = f"{self.runs[i].name}: {message}"
        return self._out(e, **changes)

    def _arm(self, i: int, name: str) -> str:
        return self.runs[i].names.get(name, name)

    def _end(self) -> list[ev.Event]:
        """One run_end when every run ended: the worst status, the summaries side by side."""
        ends = [(i, r.end) for i, r in enumerate(self.runs) if r.end is not None]
        if len(ends) < len(self.runs) or not self.started:
            return []  # a run without run_end: the merged run did not finish either
        status = max((str(e.status) for _, e in ends), key=lambda s: STATUS_RANK.get(s, 2))
        summary: dict[str, Any] = {part: {} for part in ev.SUMMARY_PER_ARM}
        for i, e in ends:
            for part in ev.SUMMARY_PER_ARM:
                values = e.summary.get(part) if isinstance(e.summary, dict) else None
                if isinstance(values, dict):
                    summary[part].update({self._arm(i, k): _renamed_row(v, self._arm(i, k)) for k, v in values.items()})
        steps = [e.summary.get("steps") for _, e in ends if isinstance(e.summary, dict)]
        summary["steps"] = max((s for s in steps if isinstance(s, int)), default=0)
        t = max(self._retimed(i, e.t) for i, e in ends)
        return [self._out(ends[0][1], t=t, status=status, summary=summary)]


def _model_name(start: ev.RunStart, missing: str) -> str:
    name = start.model_info().name
    return missing if name is None else name


def _renamed_row(value, name: str):
    return {**value, "arm": name} if isinstance(value, dict) and "arm" in value else value


def merge_events(streams: list[Iterable[ev.Event]], names: list[str]) -> Iterator[ev.Event]:
    """The merged events of finished logs (each stream a log's events in order)."""
    iterators = [iter(s) for s in streams]
    merger = Merger(names)
    while True:
        yield from merger.ready()
        if merger.exhausted:
            return
        blocked = merger.blocked()
        if not blocked:
            raise RuntimeError("merging logs made no progress")  # an invariant of Merger.ready
        for i in blocked:
            chunk = list(itertools.islice(iterators[i], PULL))
            merger.feed(i, chunk)
            if len(chunk) < PULL:
                merger.finish(i)


def merge_parts(parts: list[list[ev.Event]]) -> list[ev.Event]:
    """The events of one run's parts (a distributed run's arm groups, gathered at a sync point) as one
    process would have emitted them: a step (dw, epoch_end) of every part becomes one event with all
    arms; any other event keeps its place relative to them, the parts' in part order."""
    merger = Merger([str(i) for i in range(len(parts))], parts_of_one_run=True)
    for i, events in enumerate(parts):
        merger.feed(i, events)
        merger.finish(i)
    return merger.ready()


def run_names(paths: list[str]) -> list[str]:
    """Short, distinct names for runs from their log paths: the file stem, with parent folders
    added while two are equal, then a number."""
    from pathlib import Path

    parts = [Path(p).with_suffix("").parts for p in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [f"{n}#{i + 1}" for i, n in enumerate(names)]


class MergedSource:
    """The event-source protocol (engine.log.sources.EventSource) over several sources of one
    mode (replay or watch): the merged stream of their runs. Waits for the slowest run, so arms
    stay paired by step."""

    POLL_S = 0.02

    def __init__(self, sources: list, names: list[str]) -> None:
        self.sources, self.merger, self.names = sources, Merger(names), names
        self.mode = sources[0].mode
        self.paused = False
        self._stopped = False
        self._outbox: deque[ev.Event] = deque()
        self._lock = threading.Lock()  # a seek (UI thread) replaces the merger the reader thread uses

    @property
    def done(self) -> bool:
        return self._stopped or (self.merger.exhausted and not self._outbox)

    @property
    def started(self) -> bool:
        return all(getattr(s, "started", True) for s in self.sources)

    def get_batch(self, timeout: float) -> list[ev.Event]:
        from engine.log.sources import BATCH_CAP

        deadline = time.monotonic() + timeout
        while not self._outbox and not self.done:
            with self._lock:
                for i in self.merger.blocked():
                    source = self.sources[i]
                    self.merger.feed(i, source.get_batch(0))
                    if source.done:
                        self.merger.finish(i)
                self._outbox.extend(self.merger.ready())
            left = deadline - time.monotonic()
            if self._outbox or left <= 0:
                break
            time.sleep(min(self.POLL_S, left))
        with self._lock:
            n = min(len(self._outbox), BATCH_CAP)
            return [self._outbox.popleft() for _ in range(n)]

    @property
    def speed(self) -> float | None:
        return getattr(self.sources[0], "speed", None)

    def set_speed(self, speed: float | None) -> None:
        for s in self.sources:
            s.set_speed(speed)

    def seek_to(self, step: float, rewind: bool | None = None) -> None:
        """Every run seeks (engine.log.sources.ReplaySource.seek_to); back, all start over and so does
        the merge."""
        with self._lock:
            back = any(step < s.step for s in self.sources) if rewind is None else rewind
            for s in self.sources:
                s.seek_to(step, rewind=back)
            if back:
                self.merger = Merger(self.names)
                self._outbox.clear()

    def pause(self) -> None:
        self.paused = True
        for s in self.sources:
            s.pause()

    def resume(self) -> None:
        self.paused = False
        for s in self.sources:
            s.resume()

    def stop(self) -> None:
        self._stopped = True
        for s in self.sources:
            s.stop()

    def idle_seconds(self) -> float:
        """The slowest run's silence: it holds the others back."""
        live = [s.idle_seconds() for s, r in zip(self.sources, self.merger.runs, strict=True) if not r.done]
        return max(live, default=0.0)

    def close(self) -> None:
        for s in self.sources:
            if hasattr(s, "close"):
                s.close()
