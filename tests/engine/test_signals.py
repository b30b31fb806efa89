"""Signals, closed pipes and detached runs, each in a real process (issue 13: the second interrupt;
issue 14: cases 5, 6, 8 and 11). One exit-code policy: finished 0, failed 1, bad input 2, stopped 130.

Each process pays torch's start-up, so the runs of a module start side by side in one fixture.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.log.runlog import read_events

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TERM": "dumb"}

# `freeze-tui` whose steps from step 3 on are stuck inside torch (a slow step, a long model load):
# the engine thread never reaches another step boundary, so only a second interrupt ends the process.
# It touches STUCK_MARK once stuck: a first interrupt sent before that could still stop the run at the
# step boundary, and the second would then land in interpreter shutdown (seen once in CI as exit -2).
STUCK = """
import os, sys, torch
from pathlib import Path
from engine.train import experiment
original = experiment.Experiment._one_step
def one_step(self, *args, **kwargs):
    if self.step >= 3:
        Path(os.environ["STUCK_MARK"]).touch()
        x = torch.randn(300, 300)
        for _ in range(10**6):
            x = torch.tanh(x @ x)
    return original(self, *args, **kwargs)
experiment.Experiment._one_step = one_step
from freeze_tui.cli.main import main
main(sys.argv[1:])
"""


def run_args(tiny, log: Path, *extra: str) -> list[str]:
    model, corpus = tiny
    base = ["run", "--model", str(model), "--data", str(corpus), "--log", str(log), "--batch-size", "2"]
    return [*base, "--block-size", "16", "--samples", "0", *extra]


def start(args: list[str], *, code: str | None = None, **kw) -> subprocess.Popen:
    argv = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "freeze_tui", *args]
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("env", ENV)
    return subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, **kw)


def _wait_stuck(mark: Path, proc: subprocess.Popen, timeout: float = 150) -> None:
    deadline = time.monotonic() + timeout
    while not mark.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the run never got stuck at step 3: {proc.communicate()}")
        time.sleep(0.05)


def wait_for(log: Path, what: bytes, proc: subprocess.Popen, n: int = 1, timeout: float = 150) -> None:
    deadline = time.monotonic() + timeout
    while not (log.exists() and log.read_bytes().count(what) >= n):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what!r} in {log}: {proc.communicate()}")
        time.sleep(0.05)


def whole_lines(log: Path) -> list:
    data = log.read_bytes()
    assert data.endswith(b"\n"), "the log ends in a cut line"
    events = list(read_events(log))
    assert len(events) == data.count(b"\n") and [e.seq for e in events] == list(range(len(events)))
    return events


@pytest.fixture(scope="module")
def ran(tiny, tmp_path_factory) -> dict:
    """Four processes side by side: stuck + two SIGINTs, SIGHUP, a closed stdout, the app + SIGTERM."""
    root = tmp_path_factory.mktemp("procs")
    logs = {name: root / f"{name}.jsonl" for name in ("twice", "hup", "pipe", "app", "gone")}
    procs = {
        "twice": start(
            run_args(tiny, logs["twice"], "--headless", "--epochs", "50"),
            code=STUCK,
            env={**ENV, "STUCK_MARK": str(root / "stuck")},
        ),
        "hup": start(run_args(tiny, logs["hup"], "--headless", "--epochs", "500")),
        "pipe": start(run_args(tiny, logs["pipe"], "--headless", "--epochs", "1", "--max-steps", "40")),
    }
    app_pid, app_fd = live_app(tiny, logs["app"])
    gone_pid, gone_fd = live_app(tiny, logs["gone"])
    results: dict = {"logs": logs}
    try:
        _drain_pty_until_steps(gone_fd, logs["gone"])
        os.close(gone_fd)  # the terminal goes away (SSH dropped): the kernel sends SIGHUP
        gone_fd = -1
        # a closed stdout: the reader takes the first line and goes away (| head -1)
        results["pipe_first"] = procs["pipe"].stdout.readline()
        procs["pipe"].stdout.close()
        wait_for(logs["twice"], b'"kind":"step"', procs["twice"], n=3)
        _wait_stuck(root / "stuck", procs["twice"])
        procs["twice"].send_signal(signal.SIGINT)
        time.sleep(1.0)
        procs["twice"].send_signal(signal.SIGINT)
        wait_for(logs["hup"], b'"kind":"step"', procs["hup"], n=3)
        procs["hup"].send_signal(signal.SIGHUP)
        results["screen"] = _drain_pty_until_steps(app_fd, logs["app"])
        os.kill(app_pid, signal.SIGTERM)
        results["screen_end"], results["app_code"] = _drain_pty_until_exit(app_fd, app_pid)
        for name in ("twice", "hup"):
            out, err = procs[name].communicate(timeout=60)
            results[name] = dict(code=procs[name].returncode, out=out.decode(), err=err.decode())
        results["gone_code"] = _wait_exit(gone_pid)
        err = procs["pipe"].stderr.read()
        procs["pipe"].wait(timeout=120)
        results["pipe"] = dict(code=procs["pipe"].returncode, err=err.decode())
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for pid, code in ((app_pid, "app_code"), (gone_pid, "gone_code")):
            if results.get(code) is None:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
    return results


def live_app(tiny, log: Path) -> tuple[int, int]:
    """The live app on a terminal of its own (a pty that is its controlling terminal)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(ROOT)
        os.execve(
            sys.executable,
            [sys.executable, "-m", "freeze_tui", *run_args(tiny, log, "--epochs", "500")],
            {**ENV, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"},
        )
    return pid, fd


def _wait_exit(pid: int, timeout: float = 90) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.1)
    pytest.fail("the live app did not end after its terminal went away")


def _drain_pty_until_steps(fd: int, log: Path, timeout: float = 150) -> bytes:
    seen, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            seen += os.read(fd, 65536)
        if log.exists() and log.read_bytes().count(b'"kind":"step"') >= 3:
            return seen
    pytest.fail("the live app's run did not get going")


def _drain_pty_until_exit(fd: int, pid: int, timeout: float = 60) -> tuple[bytes, int]:
    seen, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            with contextlib.suppress(OSError):  # the child closed its terminal
                seen += os.read(fd, 65536)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return seen, os.waitstatus_to_exitcode(status)
    pytest.fail("the live app did not end after SIGTERM")


def test_a_second_interrupt_quits_with_130_and_no_abort(ran):
    r = ran["twice"]
    assert r["code"] == 130, r
    assert "terminate called" not in r["err"] and "Traceback" not in r["err"] + r["out"]
    assert "quitting now" in r["out"] and "did not finish" not in r["out"]
    events = whole_lines(ran["logs"]["twice"])
    assert [e.step for e in events if e.kind == "step"] == [0, 1, 2]
    assert events[-1].kind == "run_end" and events[-1].status == "stopped"  # issue 21: even on the fast exit


def test_sighup_stops_a_headless_run_like_ctrl_c(ran):
    r = ran["hup"]
    assert r["code"] == 130 and "Traceback" not in r["err"], r
    assert "stopping at the next step boundary" in r["out"]
    events = whole_lines(ran["logs"]["hup"])
    assert events[-1].kind == "run_end" and events[-1].status == "stopped"


def test_a_closed_stdout_does_not_stop_training(ran):
    assert ran["pipe_first"].startswith(b"log: ")
    assert ran["pipe"]["code"] == 0 and ran["pipe"]["err"] == "", ran["pipe"]
    events = whole_lines(ran["logs"]["pipe"])
    assert events[-1].kind == "run_end" and events[-1].status == "finished"
    assert sum(e.kind == "step" for e in events) == 40


def test_sigterm_closes_the_live_app_and_restores_the_terminal(ran):
    assert ran["app_code"] == 130
    assert b"\x1b[?1049h" in ran["screen"]  # it had the alternate screen
    end = ran["screen_end"]
    assert b"\x1b[?1049l" in end and b"\x1b[?1000l" in end  # … and gave it back, mouse reporting off
    assert b"Traceback" not in end
    events = whole_lines(ran["logs"]["app"])
    assert events[-1].kind == "run_end" and events[-1].status == "stopped"


def test_a_live_app_whose_terminal_goes_away_stops_the_run_and_exits(ran):
    assert ran["gone_code"] == 130
    events = whole_lines(ran["logs"]["gone"])
    assert events[-1].kind == "run_end" and events[-1].status == "stopped"
