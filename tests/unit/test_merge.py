"""Several runs read as one: arms renamed in every event kind, paired by step, one reducer unchanged."""

from __future__ import annotations

import math
import time
from pathlib import Path

from engine.log import events as ev
from engine.log.merge import MergedSource, Merger, merge_events, run_names
from engine.log.runlog import read_events
from engine.log.sources import ReplaySource
from engine.log.state import RunState
from tests.synthetic_log import synthetic_events

# the two runs of full + targeted (+ reverse), in this order
SAMPLES = [
    Path(__file__).resolve().parents[2] / "sample_runs" / name
    for name in ("demo-full-targeted-reverse.jsonl", "demo-full-vs-targeted.jsonl")
]
DAY = 86_400.0


def later(events, seconds: float):
    """The same run recorded `seconds` later."""
    return [ev.replaced(e, t=e.t + seconds) for e in events]


def with_plan_change(events, arm: str, step: int):
    """A plan_change before `step` (gradual unfreezing), as the engine emits it."""
    at = next(i for i, e in enumerate(events) if e.kind == "step" and e.step == step)
    change = ev.PlanChange(seq=0, t=events[at].t, step=step, arm=arm, trainable=123, rule="+mlp@step 5")
    return [*events[:at], change, *events[at:]]


def merged(*runs, names=None):
    names = names or [f"run{chr(65 + i)}" for i in range(len(runs))]
    return list(merge_events(list(runs), names))


def test_clashing_arm_names_are_prefixed_in_every_event_kind():
    a = with_plan_change(list(synthetic_events(steps=40, seed=1)), "targeted", 5)
    b = later(list(synthetic_events(steps=40, seed=2)), DAY)
    events = merged(a, b)
    names = ["runA/full", "runA/targeted", "runB/full", "runB/targeted"]
    kinds = [e.kind for e in events]
    assert kinds[:2] == ["header", "run_start"] and kinds.count("header") == kinds.count("run_start") == 1
    assert kinds[-1] == "run_end" and kinds.count("run_end") == 1
    assert [a.name for a in events[1].arms] == names
    assert [e.seq for e in events] == list(range(len(events)))
    steps = [e for e in events if e.kind == "step"]
    assert len(steps) == 40 and all(sorted(e.arms) == sorted(names) for e in steps)
    assert all(set(e.by_arm()) == set(names) for e in events if e.kind == "dw")
    assert all(r.drift and r.rel for e in events if e.kind == "dw" for r in e.by_arm().values())
    assert {n for e in events if e.kind == "epoch_end" for n in e.arms} == set(names)
    assert {e.arm for e in events if e.kind == "sample" and e.phase != "pre"} == set(names)
    assert [(e.arm, e.step) for e in events if e.kind == "plan_change"] == [("runA/targeted", 5)]
    assert all(e.message.startswith(("runA: ", "runB: ")) for e in events if e.kind == "warning")
    assert set(events[-1].summary["arms"]) == set(names) and set(events[-1].summary["r"]) == set(names)


def test_the_one_reducer_reads_a_merged_run_like_one_run():
    a = list(synthetic_events(steps=40, seed=1))
    b = later(list(synthetic_events(steps=40, seed=2)), DAY)
    state = RunState().apply_all(merged(a, b))
    alone = RunState().apply_all(a)
    assert state.n_skipped == 0 and state.status == "finished"
    assert list(state.steps) == list(alone.steps)
    assert list(state.arms["runA/full"].losses) == list(alone.arms["full"].losses)
    assert state.arms["runB/targeted"].dw  # the latest norms of each run's arms
    assert state.elapsed < DAY  # yesterday's run and today's share a clock
    assert state.arm_time("runA/full") == alone.arm_time("full")
    assert state.saving("runB/targeted") == (alone.arm_time("full") - state.arm_time("runB/targeted")) / alone.arm_time(
        "full"
    )
    assert len(state.pre_samples.samples) == len(alone.pre_samples.samples)  # the first run's, not both


def test_arms_without_a_clash_keep_their_names():
    a = list(synthetic_events(steps=20, arms=("full", "targeted")))
    b = list(synthetic_events(steps=20, arms=("reverse",), seed=3))
    state = RunState().apply_all(merged(a, b))
    assert list(state.arms) == ["full", "targeted", "reverse"] and state.baseline == "full"


def test_runs_of_different_length_pair_by_step():
    a = list(synthetic_events(steps=60, seed=1))
    b = list(synthetic_events(steps=30, seed=2))
    state = RunState().apply_all(merged(a, b))
    assert list(state.steps) == list(range(60))
    losses = state.arms["runB/full"].losses
    assert not math.isnan(losses[29]) and all(math.isnan(x) for x in losses[30:])
    assert state.status == "finished"


def test_a_run_without_run_end_leaves_the_merge_unfinished():
    a = list(synthetic_events(steps=20, seed=1))
    b = list(synthetic_events(steps=20, seed=2, finished=False))
    state = RunState().apply_all(merged(a, b))
    assert state.status == "running" and len(state.steps) == 20


def test_all_sample_runs_merge():
    runs = sorted(Path(__file__).resolve().parents[2].glob("sample_runs/*.jsonl"))
    events = list(merge_events([read_events(p) for p in runs], run_names([str(p) for p in runs])))
    state = RunState().apply_all(events)
    arms = sum(len(next(e for e in read_events(p) if e.kind == "run_start").arms) for p in runs)
    assert state.n_skipped == 0 and state.status == "finished" and len(state.arms) == arms
    assert all(len(arm.losses) == len(state.steps) for arm in state.arms.values())


def test_the_sample_runs_merge():
    events = list(merge_events([read_events(p) for p in SAMPLES], run_names([str(p) for p in SAMPLES])))
    state = RunState().apply_all(events)
    assert state.n_skipped == 0 and state.status == "finished" and len(state.arms) == 6
    assert all(len(arm.losses) == len(state.steps) for arm in state.arms.values())


def test_run_names_are_short_and_distinct():
    assert run_names(["a/x.jsonl", "b/y.jsonl"]) == ["x", "y"]
    assert run_names(["a/run.jsonl", "b/run.jsonl"]) == ["a/run", "b/run"]


class Trickle:
    """A watch-like source: a run that arrives a few events at a time, at its own pace."""

    mode = "watch"

    def __init__(self, events, per_batch: int) -> None:
        self.events, self.per_batch = list(events), per_batch
        self.done = self.paused = False

    def get_batch(self, timeout: float) -> list[ev.Event]:
        batch, self.events = self.events[: self.per_batch], self.events[self.per_batch :]
        self.done = not self.events
        return batch

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def stop(self) -> None:
        self.done = True

    def idle_seconds(self) -> float:
        return 0.0


def test_a_merged_watch_waits_for_the_slower_run_so_every_step_is_paired():
    a = Trickle(synthetic_events(steps=50, seed=1), per_batch=40)
    b = Trickle(synthetic_events(steps=50, seed=2), per_batch=3)
    source = MergedSource([a, b], ["a", "b"])
    events, deadline = [], time.monotonic() + 30
    while not source.done:
        assert time.monotonic() < deadline
        events += source.get_batch(0.01)
    steps = [e for e in events if e.kind == "step"]
    assert [e.step for e in steps] == list(range(50))
    assert all(len(e.arms) == 4 for e in steps)
    assert RunState().apply_all(events).status == "finished"


def test_merged_replay_sources_play_to_the_end(tmp_path):
    source = MergedSource([ReplaySource(p, None) for p in SAMPLES], ["one", "two"])
    events = []
    while not source.done:
        events += source.get_batch(0.1)
    state = RunState().apply_all(events)
    assert state.status == "finished" and "one/reverse" in state.arms and state.n_skipped == 0


def test_merger_waits_for_every_run_start():
    merger = Merger(["a", "b"])
    a = list(synthetic_events(steps=5, seed=1))
    merger.feed(0, a)
    merger.finish(0)
    assert merger.ready() == [] and merger.blocked() == [1]
    merger.feed(1, list(synthetic_events(steps=5, seed=2)))
    out = merger.ready()
    assert [e.kind for e in out[:2]] == ["header", "run_start"] and out[-1].kind == "run_end"
