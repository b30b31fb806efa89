"""Heartbeats (issue 11): what the engine does, folded by RunState, worded for the header; whether a
log's writer lives; GPU readings through a fake NVML. Pure parts, no torch, no sleeping."""

from __future__ import annotations

import dataclasses
import math
import sys
import types

import msgspec
import pytest

from engine.core.activity import Activity
from engine.log import events as ev
from engine.log.channel import Channel
from engine.log.liveness import GONE_AFTER_S, WriterWatch
from engine.log.state import RunState
from engine.run.gpu import GpuSampler
from engine.run.heartbeat import HeartbeatThread
from freeze_tui.app.activity import activity_label, gpu_brief, gpu_lines
from freeze_tui.app.widgets.header_bar import SourceView, progress_line, status_label
from freeze_tui.app.widgets.time_view import time_renderable
from tests.synthetic_log import synthetic_events

GIB = 2**30


def running_state(steps: int = 20) -> RunState:
    return RunState().apply_all(synthetic_events(steps=steps, finished=False))


def beat(state: RunState, phase: str, seconds: float, *, step: int = -1, epoch: int = -1, **kw) -> RunState:
    """A heartbeat written at the log's latest time."""
    state.apply(
        ev.Heartbeat(seq=state.n_events, t=state.t_last, phase=phase, seconds=seconds, step=step, epoch=epoch, **kw)
    )
    return state


# -- the engine side ---------------------------------------------------------------------------------------
def test_activity_reports_the_phase_and_its_age(monkeypatch):
    clock = iter([100.0, 100.0, 112.5])
    monkeypatch.setattr("engine.core.activity.time.monotonic", lambda: next(clock))
    activity = Activity()
    activity.enter("step", 36, 1)
    assert activity.read() == ("step", 36, 1, 12.5)


def test_heartbeat_carries_activity_pid_host_and_gpus_now_and_then(monkeypatch):
    emitted = []
    activity = Activity()
    activity.enter("load_model")
    thread = HeartbeatThread(activity, emitted.append)

    class FakeGpus:
        reads = 0

        def read(self):
            self.reads += 1
            return [{"index": 0, "mem_used": 1, "mem_total": 2, "util": 50.0}]

        def close(self):
            self.closed = True

    gpus = thread.gpus = FakeGpus()
    now = [0.0]
    monkeypatch.setattr("engine.run.heartbeat.time.monotonic", lambda: now[0])
    for t in (0.0, 1.0, 2.0, 3.0):  # GPUs every GPU_EVERY_S (3 s), not on every beat
        now[0] = t
        thread.beat()
    assert [len(e.gpus) for e in emitted] == [1, 0, 0, 1]
    first = emitted[0]
    assert (
        first.kind == "heartbeat" and first.phase == "load_model" and first.step == -1 and first.pid > 0 and first.host
    )
    thread.halt()  # never started: halting is still fine, and closes NVML
    assert gpus.closed and thread.gpus is None


def test_heartbeat_thread_beats_at_once_and_stops_when_halted():
    emitted = []
    thread = HeartbeatThread(Activity(), emitted.append, interval=3600)
    thread.start()
    thread.halt()
    assert not thread.is_alive() and [e.phase for e in emitted] == ["starting"]


def test_a_failing_emit_ends_the_heartbeat_quietly():
    def broken(event):
        raise RuntimeError("channel closed")

    thread = HeartbeatThread(Activity(), broken, interval=0.01)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()


def test_channel_drops_old_heartbeats_before_anything_else():
    channel = Channel(capacity=6)
    for i in range(4):
        channel.put(ev.Heartbeat(seq=i, phase="step"))
    channel.put(ev.Step(seq=4, step=0))
    channel.put(ev.DW(seq=5, step=0))
    channel.put(ev.Step(seq=6, step=1))
    kinds = [e.kind for e in channel.get_batch(0)]
    assert kinds.count("step") == 2 and kinds.count("dw") == 1 and channel.dropped == 2


def test_heartbeat_round_trips_through_the_codec():
    event = ev.Heartbeat(seq=3, t=1.5, phase="sample", seconds=2.25, epoch=1, pid=42, host="box", gpus=[{"index": 0}])
    assert ev.decode(ev.encode(event)) == event
    old_reader_view = ev.decode(b'{"kind":"heartbeat","seq":1,"t":2.0,"phase":"step"}')  # every field optional
    assert old_reader_view.step == -1 and old_reader_view.gpus == []


# -- RunState and the words -------------------------------------------------------------------------------------
def test_state_folds_the_latest_activity_and_keeps_the_latest_gpu_reading():
    state = running_state()
    steps = len(state.steps)
    beat(
        state,
        "step",
        1.0,
        step=20,
        epoch=1,
        pid=7,
        host="h",
        gpus=[{"index": 0, "mem_used": GIB, "mem_total": 2 * GIB}],
    )
    beat(state, "validate", 0.5, epoch=1)
    assert state.activity.phase == "validate" and state.activity.epoch == 1 and state.activity.pid == 0
    assert state.gpus == [{"index": 0, "mem_used": GIB, "mem_total": 2 * GIB}]  # a beat without readings keeps them
    assert len(state.steps) == steps and state.step == 19  # heartbeats count no steps


def test_a_malformed_heartbeat_is_skipped_not_fatal():
    state = running_state()
    state.apply(ev.Heartbeat(seq=99, t=state.t_last, phase="step", step="x"))
    assert state.n_skipped == 1 and state.activity is None


@pytest.mark.parametrize(
    ("phase", "seconds", "kw", "label"),
    [
        ("load_model", 14.2, {}, "loading model 14 s"),
        ("tokenize", 3.0, {}, "tokenizing data 3 s"),
        ("sample", 5.4, {"epoch": -1}, "sampling before training · 5 s"),
        ("sample", 5.4, {"epoch": 1}, "sampling after epoch 2 · 5 s"),
        ("validate", 4.0, {"epoch": 0}, "validating epoch 1 · 4 s"),
        ("step", 12.0, {"step": 36}, "step 37 running 12 s"),
        ("step", 0.4, {"step": 36}, ""),  # a fast step: plain "running"
        ("step", 125.0, {"step": 36}, "step 37 running 2m 05s"),
        ("save", 6.0, {}, "saving weights 6 s"),
        ("paused", 8.0, {"step": 36}, "paused at step 37 · 8 s"),
        ("from-the-future", 8.0, {}, ""),  # a phase this version does not know: plain status
    ],
)
def test_activity_words(phase, seconds, kw, label):
    assert activity_label(beat(running_state(), phase, seconds, **kw)) == label


def test_activity_age_counts_log_time_and_ticking():
    state = beat(running_state(), "load_model", 2.0)
    state.apply(ev.Warning(seq=999, t=state.t_last + 3.0, message="later"))
    assert activity_label(state) == "loading model 5 s"
    assert activity_label(state, ticking=4.0) == "loading model 9 s"


def test_off_cpu_a_step_is_slow_against_the_steps_the_engine_waits_for_at_once():
    cuda = running_state()
    cuda.settings = msgspec.structs.replace(cuda.settings, device="cuda:0")
    usual = sum(a.dt_ema for a in cuda.arms.values())  # the synthetic run's steps: ~0.2 s for both arms
    waits = 3 * 20 * usual
    assert activity_label(beat(cuda, "step", waits - 0.5, step=20)) == ""  # the 20th step waits for 19 more
    assert activity_label(beat(cuda, "step", waits + 0.5, step=20)).startswith("step 21 running")
    cpu = running_state()
    assert activity_label(beat(cpu, "step", 3.0, step=20)) == "step 21 running 3 s"


def test_a_step_whose_event_arrived_is_not_called_running():
    state = beat(running_state(steps=20), "step", 30.0, step=19)  # step 19's event is already folded
    assert activity_label(state) == ""


def test_status_label_uses_heartbeats_and_falls_back_for_old_logs():
    old = running_state()
    assert status_label(old, SourceView(mode="watch", idle=12.4)) == "no new events for 12 s"
    busy = beat(running_state(), "step", 6.0, step=20)
    assert status_label(busy, SourceView(mode="watch", idle=0.5)) == "step 21 running 6 s"
    fast = beat(running_state(), "step", 0.1, step=20)
    assert status_label(fast, SourceView(mode="watch", idle=0.5)) == "running"
    # 12 s after its last line, a writer that beats is on a slow step, never "no new events"
    assert status_label(fast, SourceView(mode="watch", idle=12.4)) == "step 21 running 12 s"
    assert status_label(busy, SourceView(mode="replay", idle=100.0)) == "step 21 running 6 s"  # replay: no ticking
    gone = SourceView(mode="watch", idle=0.5, gone="writer gone (pid 9 exited)")
    assert status_label(busy, gone) == "writer gone (pid 9 exited)"
    assert "paused" in status_label(busy, dataclasses.replace(gone, paused=True))  # the display froze: no verdict
    assert "writer gone" in progress_line(busy, gone).plain


def test_source_view_asks_a_watch_source_about_its_writer():
    class Source:
        mode, paused, done = "watch", False, False

        def idle_seconds(self):
            return 1.0

        def writer_gone(self):
            return "writer gone (no heartbeat for 12 s)"

    assert SourceView.of(Source()).gone == "writer gone (no heartbeat for 12 s)"
    del Source.writer_gone
    assert SourceView.of(Source()).gone == ""


# -- the writer's liveness ---------------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def hb(t: float, host: str = "here", pid: int = 42) -> ev.Heartbeat:
    return ev.Heartbeat(t=t, phase="step", pid=pid, host=host)


def test_a_writer_on_another_host_is_gone_after_the_timeout_only():
    clock = Clock()
    watch = WriterWatch(clock=clock, wall=clock, host="here", alive=lambda pid: False)
    watch.saw([hb(5.0, host="gpu-box")])
    clock.now += GONE_AFTER_S - 0.5
    assert watch.gone() == ""  # the pid means nothing on another host
    watch.saw([ev.Step(t=6.0)])  # any line is a sign of life
    clock.now += GONE_AFTER_S - 0.5
    assert watch.gone() == ""
    clock.now += 1.0
    assert watch.gone() == f"writer gone (no heartbeat for {int(GONE_AFTER_S + 0.5)} s)"


def test_a_writer_on_this_host_is_gone_as_soon_as_its_pid_exited_and_it_stopped_beating():
    clock, alive = Clock(), {42: True}
    watch = WriterWatch(clock=clock, wall=clock, host="here", alive=lambda pid: alive[pid])
    watch.saw([hb(clock.now)])
    clock.now += 2.0
    assert watch.gone() == ""
    alive[42] = False
    assert watch.gone() == "writer gone (pid 42 exited)"


def test_a_dead_pid_that_still_beats_is_not_called_gone():
    """Another pid namespace (a container with the same host name): its pid looks dead here."""
    clock = Clock()
    watch = WriterWatch(clock=clock, wall=clock, host="here", alive=lambda pid: False)
    watch.saw([hb(clock.now)])
    clock.now += 1.0
    assert watch.gone() == ""


def test_an_old_log_on_this_host_is_judged_by_the_writer_clock():
    clock = Clock()
    watch = WriterWatch(clock=clock, wall=lambda: 5000.0, host="here", alive=lambda pid: True)
    watch.saw([hb(1000.0)], at_end=False)  # a backlog being read: no verdict yet
    assert watch.gone() == ""
    watch.saw([], at_end=True)
    assert watch.gone() == "writer gone (no heartbeat for 4000 s)"


def test_no_heartbeats_no_verdict():
    clock = Clock()
    watch = WriterWatch(clock=clock, wall=clock, host="here", alive=lambda pid: False)
    watch.saw(list(synthetic_events(steps=5, finished=False)))
    clock.now += 3600
    assert not watch.beating and watch.gone() == ""


# -- GPU readings through a fake NVML ----------------------------------------------------------------------------
class NVMLError(Exception):
    pass


def fake_nvml(*, fail_init=False, uuids=("GPU-aaa", "GPU-bbb"), util_fails=False) -> types.ModuleType:
    nvml = types.ModuleType("pynvml")
    nvml.NVMLError = NVMLError
    nvml.shutdowns = 0

    def init():
        if fail_init:
            raise NVMLError("Driver Not Loaded")

    def by_uuid(uuid):
        if uuid not in uuids:
            raise NVMLError("Not Found")
        return uuids.index(uuid)

    def by_index(i):
        if i >= len(uuids):
            raise NVMLError("Invalid Argument")
        return i

    def util(handle):
        if util_fails:
            raise NVMLError("Not Supported")
        return types.SimpleNamespace(gpu=90 + handle, memory=10)

    def shutdown():
        nvml.shutdowns += 1

    nvml.nvmlInit, nvml.nvmlShutdown = init, shutdown
    nvml.nvmlDeviceGetHandleByUUID, nvml.nvmlDeviceGetHandleByIndex = by_uuid, by_index
    nvml.nvmlDeviceGetName = lambda handle: b"NVIDIA H200" if handle == 0 else "NVIDIA A100"
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=(h + 1) * GIB, total=140 * GIB, free=0)
    nvml.nvmlDeviceGetUtilizationRates = util
    return nvml


def test_gpu_readings_by_uuid_and_by_visible_index(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml())
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    sampler = GpuSampler.open([(0, "bbb"), (1, "")])  # torch's uuid lacks NVML's "GPU-" prefix; cuda:1 is physical 0
    readings = sampler.read()
    assert readings == [
        {"index": 0, "name": "NVIDIA A100", "mem_used": 2 * GIB, "mem_total": 140 * GIB, "util": 91.0},
        {"index": 1, "name": "NVIDIA H200", "mem_used": GIB, "mem_total": 140 * GIB, "util": 90.0},
    ]
    sampler.close()
    assert sys.modules["pynvml"].shutdowns == 1


@pytest.mark.parametrize(
    "nvml",
    [None, fake_nvml(fail_init=True), fake_nvml(uuids=())],
    ids=["not installed", "no driver", "device unknown"],
)
def test_no_gpu_readings_and_no_error_without_nvml(monkeypatch, nvml):
    monkeypatch.setitem(sys.modules, "pynvml", nvml)  # None: `import pynvml` raises ImportError
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert GpuSampler.open([(0, "zzz")]) is None
    assert GpuSampler.open([]) is None  # CPU: nothing to sample


def test_a_reading_that_fails_is_left_out(monkeypatch):
    nvml = fake_nvml(util_fails=True)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    sampler = GpuSampler.open([(0, "GPU-aaa")])
    assert sampler.read()[0]["util"] is None  # a MIG slice has no utilisation: memory still shows
    nvml.nvmlDeviceGetMemoryInfo = lambda h: (_ for _ in ()).throw(NVMLError("GPU is lost"))
    assert sampler.read() == []


def test_gpu_text_for_the_header_and_the_time_view():
    state = beat(
        running_state(),
        "step",
        0.1,
        step=20,
        gpus=[{"index": 0, "name": "NVIDIA H200", "mem_used": 61.25 * GIB, "mem_total": 139.75 * GIB, "util": 97.0}],
    )
    assert gpu_brief(state) == "GPU 61.2/139.8 GiB 97 %"
    assert "GPU 61.2/139.8 GiB 97 %" in progress_line(state, SourceView(mode="live")).plain
    assert gpu_lines(state) == ["cuda:0  NVIDIA H200  memory 61.2/139.8 GiB (44 %)  utilisation 97 %"]
    two = [{"index": i, "mem_used": GIB, "mem_total": 2 * GIB, "util": None} for i in range(3)]
    state.gpus = two
    assert gpu_brief(state) == "GPU0 1.0/2.0 GiB · GPU1 1.0/2.0 GiB · +1"
    assert "utilisation" not in gpu_lines(state)[0]
    from rich.console import Console

    console = Console(width=100, record=True, color_system=None)
    console.print(time_renderable(state))
    assert "GPU (latest reading)" in console.export_text()


def test_no_gpu_text_on_cpu():
    state = running_state()
    assert gpu_brief(state) == "" and gpu_lines(state) == [] and "GPU" not in progress_line(state, SourceView()).plain
    assert math.isnan(state.gpus_t)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="zombies are read from /proc")
def test_pid_alive_knows_a_zombie_is_dead():
    import os
    import subprocess
    import time

    from engine.log.liveness import pid_alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    while True:  # exited but not reaped: os.kill still finds the pid
        try:
            if os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
                break
        except ChildProcessError:
            break
        time.sleep(0.01)
    assert pid_alive(os.getpid()) and not pid_alive(child.pid)
    child.wait()
    assert not pid_alive(child.pid)
