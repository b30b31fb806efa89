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
from tests import forked

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
    return forked.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, **kw)


def whole_lines(log: Path) -> list:
    data = log.read_bytes()
    assert data.endswith(b"\n"), "the log ends in a cut line"
    events = list(read_events(log))
    assert len(events) == data.count(b"\n") and [e.seq for e in events] == list(range(len(events)))
    return events


@pytest.fixture(scope="module")
def ran(tiny, tmp_path_factory) -> dict:
    """Five processes side by side: stuck + two SIGINTs, SIGHUP, a closed stdout, the app + SIGTERM, the
    app whose terminal goes away. Each is acted on as soon as it is ready (not in turn: a process kept
    waiting for another's turn would train on, on the same two cores)."""
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
    app, app_fd = live_app(tiny, logs["app"])
    gone, gone_fd = live_app(tiny, logs["gone"])
    ptys = {"app": app_fd, "gone": gone_fd}
    results: dict = {"logs": logs}
    try:
        screens = _act_when_ready(procs, logs, root / "stuck", results, ptys, app)
        results["screen"] = screens["app"]
        end, results["app_code"] = _drain_pty_until_exit(app_fd, app)
        results["screen_end"] = screens["app_end"] + end
        for name in ("twice", "hup"):
            out, err = procs[name].communicate(timeout=60)
            results[name] = dict(code=procs[name].returncode, out=out.decode(), err=err.decode())
        results["gone_code"] = _wait_exit(gone)
        err = procs["pipe"].stderr.read()
        procs["pipe"].wait(timeout=120)
        results["pipe"] = dict(code=procs["pipe"].returncode, err=err.decode())
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if "gone" in ptys:
            os.close(ptys.pop("gone"))
        for proc in (app, gone):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def _steps(log: Path) -> int:
    return log.read_bytes().count(b'"kind":"step"') if log.exists() else 0


def _act_when_ready(procs: dict, logs: dict, stuck: Path, results: dict, ptys: dict, app: subprocess.Popen) -> dict:
    """Poll every process and act on each once it is ready: the pipe's reader takes the first line and
    goes away (| head -1); `twice` gets SIGINT once stuck and another 1 s later; `hup` SIGHUP and the app
    SIGTERM after 3 steps; `gone`'s terminal closes after 3 steps. The ptys are read all along (an app
    whose terminal is not read blocks); what the app shows before and after its SIGTERM is returned.
    Closing `gone`'s terminal is the terminal going away (SSH dropped): the kernel sends SIGHUP."""
    screens = {"app": b"", "app_end": b"", "gone": b""}
    pending, first_sigint = {"pipe", "twice", "twice again", "hup", "app", "gone"}, 0.0
    deadline = time.monotonic() + 150
    while pending:
        for name, fd in list(ptys.items()):
            if select.select([fd], [], [], 0)[0]:
                with contextlib.suppress(OSError):  # the app closed its terminal
                    screens["app_end" if name == "app" and "app" not in pending else name] += os.read(fd, 65536)
        if "gone" in pending and _steps(logs["gone"]) >= 3:
            os.close(ptys.pop("gone"))
            pending.discard("gone")
        if "pipe" in pending and select.select([procs["pipe"].stdout], [], [], 0)[0]:
            results["pipe_first"] = procs["pipe"].stdout.readline()
            procs["pipe"].stdout.close()
            pending.discard("pipe")
        if "twice" in pending and _steps(logs["twice"]) >= 3 and stuck.exists():
            procs["twice"].send_signal(signal.SIGINT)
            first_sigint = time.monotonic()
            pending.discard("twice")
        elif "twice again" in pending and "twice" not in pending and time.monotonic() - first_sigint >= 1.0:
            procs["twice"].send_signal(signal.SIGINT)
            pending.discard("twice again")
        if "hup" in pending and _steps(logs["hup"]) >= 3:
            procs["hup"].send_signal(signal.SIGHUP)
            pending.discard("hup")
        if "app" in pending and _steps(logs["app"]) >= 3:
            app.send_signal(signal.SIGTERM)
            pending.discard("app")
        ended = [n for n in ("pipe", "twice", "hup") if n in pending and procs[n].poll() is not None]
        if ended or time.monotonic() > deadline:
            for proc in procs.values():
                proc.kill()
            pytest.fail(f"not ready: {sorted(pending)}; ended early: {ended}")
        time.sleep(0.05)
    return screens


def live_app(tiny, log: Path) -> tuple[subprocess.Popen, int]:
    """The live app on a terminal of its own (a pty that is its controlling terminal, as pty.fork gives)."""
    leader, follower = pty.openpty()
    app = forked.Popen(
        [sys.executable, "-m", "freeze_tui", *run_args(tiny, log, "--epochs", "500")],
        cwd=ROOT,
        env={**ENV, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"},
        stdin=follower,
        stdout=follower,
        stderr=follower,
        controlling_terminal=True,
    )
    os.close(follower)  # the app holds the terminal alone: closing `leader` is the terminal going away
    return app, leader


def _wait_exit(app: subprocess.Popen, timeout: float = 90) -> int:
    try:
        return app.wait(timeout)
    except subprocess.TimeoutExpired:
        pytest.fail("the live app did not end after its terminal went away")


def _drain_pty_until_exit(fd: int, app: subprocess.Popen, timeout: float = 60) -> tuple[bytes, int]:
    seen, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            with contextlib.suppress(OSError):  # the child closed its terminal
                seen += os.read(fd, 65536)
        if app.poll() is not None:
            return seen, app.returncode
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
