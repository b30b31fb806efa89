"""Faults during a run (issue 6): an exception in the engine thread, CUDA OOM, Ctrl-C and SIGTERM,
SIGKILL, a log that cannot be written any more, and watching a log whose writer died.

The promise in every case: the terminal gets a clear line (never a traceback), the run ends
(no hang), and the log stays a valid log that says how the run ended (or, after SIGKILL,
reads up to its last complete line).
"""

from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from engine.log.runlog import LogWriter, read_events
from engine.log.sources import WatchSource
from engine.log.state import RunState
from engine.run.config import RunConfig
from engine.train.session import OOM_HINT, RunSession
from freeze_tui.cli.headless import run_headless
from tests import forked
from tests.engine.conftest import run_cli_in_process
from tests.synthetic_log import synthetic_events


def config(tiny, **kw) -> RunConfig:
    model, corpus = tiny
    base = dict(
        model=str(model),
        data=(str(corpus),),
        epochs=1,
        batch_size=2,
        block_size=16,
        samples=0,
        max_steps=6,
        norm_every=1,
    )
    return RunConfig(**{**base, **kw}).validate()


def headless(session: RunSession) -> tuple[int, str]:
    """run_headless in-process with its console on a string; the session must end within seconds."""
    out = io.StringIO()
    code = run_headless(session.start(), Console(file=out, width=120, color_system=None))
    assert session.join(timeout=10), "the engine thread did not end"
    return code, out.getvalue()


def fail_at_step(monkeypatch, step: int, exc: Exception) -> None:
    from engine.train.experiment import Experiment

    original = Experiment._one_step

    def one_step(self, *args, **kwargs):
        if self.step == step:
            raise exc
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Experiment, "_one_step", one_step)


# -- an exception inside the engine thread ----------------------------------------------------------------
def test_exception_in_the_engine_thread(tiny, tmp_path, monkeypatch):
    fail_at_step(monkeypatch, 2, RuntimeError("boom at step 2"))
    log = tmp_path / "run.jsonl"
    session = RunSession(config(tiny), log, producer="test")
    code, out = headless(session)
    assert code == 1
    assert "Traceback" not in out and 'File "' not in out
    assert "The run failed after 2 steps" in out
    assert [line for line in out.splitlines() if line.startswith("error:")] == ["error: RuntimeError: boom at step 2"]
    assert session.failure is None  # not bad input: exit 1, not 2
    events = list(read_events(log))
    assert [e.step for e in events if e.kind == "step"] == [0, 1]
    (error,) = [e for e in events if e.kind == "error"]
    assert error.fatal and error.message == "RuntimeError: boom at step 2"
    assert error.detail.startswith("Traceback") and "boom at step 2" in error.detail and "_one_step" in error.detail
    assert events[-1].kind == "run_end" and events[-1].status == "failed"
    assert set(events[-1].summary["arms"]) == {"full", "targeted"}  # what ran is still summarised


def test_cuda_out_of_memory_says_what_to_do(tiny, tmp_path, monkeypatch):
    fail_at_step(
        monkeypatch,
        1,
        RuntimeError(
            "CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.15 GiB "
            "total capacity; 70.01 GiB already allocated)"
        ),
    )
    log = tmp_path / "run.jsonl"
    code, out = headless(RunSession(config(tiny), log, producer="test"))
    assert code == 1 and "Traceback" not in out
    for hint in ("out of memory", "--batch-size", "--block-size", "--dtype bf16", "fewer arms"):
        assert hint in OOM_HINT
    assert f"error: {OOM_HINT}" in " ".join(out.split())  # the console may wrap the line
    events = list(read_events(log))
    (error,) = [e for e in events if e.kind == "error"]
    assert error.fatal and error.message == OOM_HINT and "CUDA out of memory" in error.detail
    assert events[-1].status == "failed"


# -- non-finite losses that end the run (one arm's NaN under the default is in test_run.py) -------------------
@pytest.mark.parametrize("on_nan,poisoned", [("stop-run", ("full",)), ("stop-arm", ("full", "targeted"))])
def test_a_run_ended_by_non_finite_losses_failed(tiny, tmp_path, monkeypatch, on_nan, poisoned):
    """Not 'stopped' (exit 130 says the user interrupted it): the run failed, exit 1."""
    import engine.train.experiment

    real_step = engine.train.experiment.train_step

    def step(arm, batch, **kw):
        loss, mark = real_step(arm, batch, **kw)
        return (loss * float("inf") if arm.name in poisoned and kw["rng_seed"] > 2 else loss), mark

    monkeypatch.setattr(engine.train.experiment, "train_step", step)
    log = tmp_path / "run.jsonl"
    code, out = headless(RunSession(config(tiny, on_nan=on_nan, max_steps=8), log, producer="test"))
    assert code == 1 and "The run failed after" in out and "loss is inf at step 2" in out
    events = list(read_events(log))
    assert events[-1].status == "failed" and max(e.step for e in events if e.kind == "step") == 2


# -- the log cannot be written any more (disk full) ---------------------------------------------------------
def test_log_unwritable_mid_run_stops_the_run_cleanly(tiny, tmp_path, monkeypatch):
    written = {"n": 0}
    original = LogWriter.write

    def write(self, event):
        if written["n"] >= 8:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written["n"] += 1
        original(self, event)

    monkeypatch.setattr(LogWriter, "write", write)
    log = tmp_path / "run.jsonl"
    session = RunSession(config(tiny, max_steps=0, epochs=50), log, producer="test")  # would run for minutes
    started = time.monotonic()
    code, out = headless(session)
    assert time.monotonic() - started < 30
    assert code == 1 and "Traceback" not in out
    said = " ".join(out.split())  # the console wraps the line where the temp path's length puts it
    assert "cannot be written any more" in said and "No space left on device" in said
    assert "No space left on device" in session.log_failure
    assert session.state.status == "failed" and session.failure is None
    fatal = [m for m in session.state.messages if m.level == "error" and m.fatal]
    assert fatal and "cannot be written any more" in fatal[-1].message
    events = list(read_events(log))  # what was written stays a valid log, without run_end
    assert len(events) == 8 and events[-1].kind != "run_end"


# -- signals to a real headless process --------------------------------------------------------------------
def start_run(tiny, log: Path) -> subprocess.Popen:
    model, corpus = tiny
    argv = [
        sys.executable,
        "-m",
        "freeze_tui",
        "run",
        "--headless",
        "--model",
        str(model),
        "--data",
        str(corpus),
        "--log",
        str(log),
        "--epochs",
        "500",
        "--batch-size",
        "2",
        "--block-size",
        "16",
        "--samples",
        "0",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TERM": "dumb"}
    return forked.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )


@pytest.fixture(scope="module")
def signalled(tiny, tmp_path_factory) -> dict:
    """Two runs started side by side (each pays torch's start-up), then SIGINT and SIGTERM, each sent as
    soon as its run has 3 steps (in turn, the second would train on while the first stops)."""
    root = tmp_path_factory.mktemp("signals")
    sigs = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}
    runs = {name: (root / f"{name}.jsonl", start_run(tiny, root / f"{name}.jsonl")) for name in sigs}
    results, sent, ended = {}, {}, {}
    try:
        deadline = time.monotonic() + 150
        while len(ended) < len(runs):
            for name, (log, proc) in runs.items():
                if name not in sent and log.exists() and log.read_bytes().count(b'"kind":"step"') >= 3:
                    proc.send_signal(sigs[name])
                    sent[name] = time.monotonic()
                if name not in ended and proc.poll() is not None:
                    ended[name] = time.monotonic()
                    if name not in sent:
                        pytest.fail(f"the run ended early: {proc.communicate()}")
            if time.monotonic() > deadline:
                pytest.fail(f"signalled {sorted(sent)}, ended {sorted(ended)} after 150 s")
            time.sleep(0.05)
        for name, (log, proc) in runs.items():  # the few lines a stopped run prints fit the pipe
            out, err = proc.communicate(timeout=60)
            results[name] = dict(code=proc.returncode, out=out, err=err, log=log, seconds=ended[name] - sent[name])
    finally:
        for _, proc in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_interrupt_stops_at_a_step_boundary_with_a_complete_log(signalled, name):
    r = signalled[name]
    assert r["code"] == 130, r["err"]
    assert r["seconds"] < 30
    assert "Traceback" not in r["err"] + r["out"]
    assert "stopping at the next step boundary" in r["out"] and "The run stopped after" in r["out"]
    events = list(read_events(r["log"]))
    assert events[-1].kind == "run_end" and events[-1].status == "stopped"
    assert [e.seq for e in events] == list(range(len(events)))
    steps = [e.step for e in events if e.kind == "step"]
    assert steps == list(range(len(steps))) and len(steps) >= 3


class StuckSource:
    """An engine that does not get to its next step boundary (a long model load, a slow step)."""

    mode = "live"
    failure = None

    def __init__(self) -> None:
        self.done, self.stops, self.calls = False, 0, 0

    def get_batch(self, timeout: float) -> list:
        self.calls += 1
        if self.calls in (2, 3):  # the user presses Ctrl-C, waits a moment, presses it again
            raise KeyboardInterrupt
        time.sleep(0.01)
        return []

    def stop(self) -> None:
        self.stops += 1


def test_a_second_interrupt_quits_without_waiting():
    out, source = io.StringIO(), StuckSource()
    code = run_headless(source, Console(file=out, width=200, color_system=None))
    assert code == 130 and source.stops == 1 and not source.done
    text = out.getvalue()
    assert "interrupt again to quit at once" in text and "quitting now" in text and "Traceback" not in text


# A writer process that appends a run's events through the run's own LogWriter, slowly, without
# loading torch (a third `freeze-tui run` would cost ~15 s of start-up for the same file state).
WRITER = """
import sys, time
from engine.log.runlog import LogWriter
from tests.synthetic_log import synthetic_events
writer = LogWriter(sys.argv[1])
for i, event in enumerate(synthetic_events(steps=100_000)):
    writer.write(event)
    if i % 50 == 0:
        time.sleep(0.01)
"""


def test_sigkill_leaves_a_readable_log_and_report_says_it_did_not_finish(tmp_path):
    log = tmp_path / "killed.jsonl"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(log)], cwd=root)
    try:
        deadline = time.monotonic() + 150  # a start-up on a loaded 2-core box can take a minute
        while not (log.exists() and log.read_bytes().count(b'"kind":"step"') >= 200):
            assert proc.poll() is None and time.monotonic() < deadline, "the writer did not get going"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    data = log.read_bytes()
    events = list(read_events(log))
    assert events and events[-1].kind != "run_end"
    assert len(events) == data.count(b"\n")  # every complete line is read
    cut = tmp_path / "cut.jsonl"  # killed in the middle of a write: the half line is skipped
    cut.write_bytes(data + b'{"kind":"step","seq":99999,"t":1.0,"step":9999,"epoch":0,"arms":{"full":{"lo')
    assert len(list(read_events(cut))) == len(events)
    for path in (log, cut):  # `report` needs no process of its own: in-process through main
        result = run_cli_in_process("report", str(path), cwd=tmp_path)
        assert result.returncode == 0 and result.stderr == ""
        assert "did not finish" in result.stdout and "| full |" in result.stdout


# -- watch on a log whose writer died ------------------------------------------------------------------------
def test_watch_of_a_dead_writer_shows_it_is_idle(tmp_path):
    path = tmp_path / "dead.jsonl"
    events = list(synthetic_events(steps=30, finished=False))
    writer = LogWriter(path)
    for e in events[:-5]:
        writer.write(e)
    source = WatchSource(path, poll_interval=0.02)
    state = RunState()
    while batch := source.get_batch(0.1):
        state.apply_all(batch)
    assert state.n_events == len(events) - 5 and state.status == "running"
    idle = source.idle_seconds()
    time.sleep(0.4)
    assert source.get_batch(0.05) == []
    assert source.idle_seconds() >= idle + 0.4  # grows while nothing arrives: the header says "no new events"
    assert not source.done and not state.finished
    for e in events[-5:]:  # the writer comes back (or another one appends): idle resets
        writer.write(e)
    writer.close()
    state.apply_all(source.get_batch(0.5))
    assert state.n_events == len(events) and source.idle_seconds() < 0.4
    assert not source.done  # no run_end: still not finished
    source.close()
