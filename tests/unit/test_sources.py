"""Replay and watch sources: eager validation, timing, pause, done, never blocking past the timeout."""

import threading
import time

import pytest

from engine.core.errors import LogError
from engine.log.events import Header, RunEnd, Step
from engine.log.runlog import LogWriter
from engine.log.sources import EventSource, ReplaySource, WatchSource
from tests.synthetic_log import synthetic_events, write_synthetic_log


def _drain(source, timeout=0.05, limit=10_000):
    events = []
    for _ in range(limit):
        if source.done:
            break
        events += source.get_batch(timeout)
    return events


def test_both_satisfy_the_protocol(tmp_path):
    path = write_synthetic_log(tmp_path / "run.jsonl", steps=10)
    assert isinstance(ReplaySource(path), EventSource)
    assert isinstance(WatchSource(path), EventSource)


def test_replay_at_max_speed_delivers_everything_in_order(tmp_path):
    path = write_synthetic_log(tmp_path / "run.jsonl", steps=50)
    source = ReplaySource(path, None)
    events = _drain(source)
    assert source.done and isinstance(events[-1], RunEnd)
    assert [e.seq for e in events] == list(range(len(events)))


def test_replay_rejects_a_bad_log_before_starting(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "step", "seq": 0}\n')
    with pytest.raises(LogError, match="not a header"):
        ReplaySource(bad)
    with pytest.raises(LogError, match="does not exist"):
        ReplaySource(tmp_path / "missing.jsonl")


def _timed_log(path, gaps):
    writer = LogWriter(path)
    t = 100.0
    writer.write(Header(seq=0, t=t, run_id="timed"))
    for i, gap in enumerate(gaps, start=1):
        t += gap
        writer.write(Step(seq=i, t=t, step=i))
    writer.write(RunEnd(seq=len(gaps) + 1, t=t))
    writer.close()
    return path


def test_replay_keeps_the_original_timing_divided_by_speed(tmp_path):
    path = _timed_log(tmp_path / "run.jsonl", [0.0, 1.0, 1.0])  # 2 s of log
    source = ReplaySource(path, speed=10.0)  # -> 0.2 s
    start = time.monotonic()
    first = source.get_batch(0.05)
    assert [e.seq for e in first] == [0, 1]  # due at once
    events = first + _drain(source, timeout=0.05)
    elapsed = time.monotonic() - start
    assert [e.seq for e in events] == [0, 1, 2, 3, 4]
    assert 0.15 <= elapsed < 1.5


def test_replay_get_batch_never_blocks_past_timeout(tmp_path):
    path = _timed_log(tmp_path / "run.jsonl", [0.0, 100.0])
    source = ReplaySource(path, speed=1.0)
    source.get_batch(0.01)
    start = time.monotonic()
    assert source.get_batch(0.1) == []
    assert time.monotonic() - start < 0.5


def test_replay_pause_holds_events_and_resume_continues(tmp_path):
    path = _timed_log(tmp_path / "run.jsonl", [0.0, 0.3])
    source = ReplaySource(path, speed=1.0)
    assert len(source.get_batch(0.01)) == 2
    source.pause()
    assert source.paused
    start = time.monotonic()
    assert source.get_batch(0.5) == []  # the step due at 0.3 s stays held while paused
    assert time.monotonic() - start >= 0.45
    source.resume()
    rest = _drain(source)
    assert [e.seq for e in rest] == [2, 3]


def test_replay_stop_ends_reading(tmp_path):
    source = ReplaySource(write_synthetic_log(tmp_path / "run.jsonl", steps=20), speed=1.0)
    source.stop()
    assert source.done and source.get_batch(0.01) == []


def test_replay_of_a_log_without_run_end_is_done_at_end_of_file(tmp_path):
    path = write_synthetic_log(tmp_path / "run.jsonl", steps=20, finished=False)
    source = ReplaySource(path)
    events = _drain(source)
    assert source.done and not any(isinstance(e, RunEnd) for e in events)


def test_watch_follows_a_growing_log_until_run_end(tmp_path):
    path = tmp_path / "run.jsonl"
    events = list(synthetic_events(steps=30))
    writer = LogWriter(path)
    writer.write(events[0])
    source = WatchSource(path, poll_interval=0.01)
    assert source.started

    def write_rest():
        for e in events[1:]:
            writer.write(e)
            time.sleep(0.001)
        writer.close()

    thread = threading.Thread(target=write_rest)
    thread.start()
    got = _drain(source, timeout=0.05)
    thread.join()
    assert source.done
    assert [e.seq for e in got] == [e.seq for e in events]


def test_watch_waits_for_data_and_reports_idle_time(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_bytes(b"")
    source = WatchSource(path, poll_interval=0.01)
    assert not source.started
    start = time.monotonic()
    assert source.get_batch(0.1) == []
    assert time.monotonic() - start < 0.5
    assert source.idle_seconds() >= 0.1 and not source.done


def test_watch_rejects_a_file_that_is_not_a_log(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(LogError, match="line 1"):
        WatchSource(path)
