"""`s` in WATCH stops a detached run on this host (asks first, signals its writer, follows the log to
run_end "stopped"); where it cannot, it says the command to run. The same real run checks --notify:
its command gets the run's end (JSON on stdin, FREEZE_TUI_* variables) and, failing, costs one warning line."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time

import pytest

from engine.log import events as ev
from engine.log.liveness import WriterWatch
from engine.log.runlog import read_events
from engine.log.sources import WatchSource
from freeze_tui.app.app import FreezeApp
from freeze_tui.cli.detach import child_argv
from tests import forked
from tests.app.helpers import quiet, shown
from tests.tiny_models import WORDS, make_tiny_model

pytestmark = pytest.mark.anyio


async def _until(pilot, condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.1)


async def test_s_in_watch_stops_a_detached_run_on_this_host(tmp_path):
    model = make_tiny_model(tmp_path, "gpt2", n_layer=1)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(" ".join(random.Random(0).choice(WORDS[2:40]) for _ in range(1500)))
    log = tmp_path / "detached.jsonl"
    args = ["run", "--model", str(model), "--data", str(corpus), "--epochs", "200"]
    args += ["--block-size", "16", "--batch-size", "2", "--samples", "0"]
    got = tmp_path / "notified.txt"  # the command writes what it got, then fails: the run must not mind
    args += ["--notify", f'(cat; echo; echo "$FREEZE_TUI_ALERT_KIND $FREEZE_TUI_RUN_STATUS") > {got}; exit 3']
    with open(tmp_path / "detached.out", "wb") as out:  # started as `run --detach` starts it
        proc = forked.Popen(
            child_argv(args, log),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while not (log.exists() and log.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.2)
        app = quiet(FreezeApp(WatchSource(log, poll_interval=0.05)))
        async with app.run_test(size=(100, 30)) as pilot:
            await _until(pilot, lambda: app.state.step >= 2, 150)
            assert app.check_action("stop", ())  # offered in WATCH while the run goes on
            await pilot.press("s")
            await pilot.pause(0.2)
            assert f"pid {proc.pid}" in str(app.screen.query_one("#confirm-question").render())
            await pilot.press("n")  # asks first: no is no
            await pilot.pause(0.5)
            assert proc.poll() is None
            await pilot.press("s")
            await pilot.pause(0.2)
            await pilot.press("y")
            await _until(pilot, lambda: app.state.finished, 60)
            app.redraw()
            assert app.state.status == "stopped" and "stopped" in shown(app.header)
            assert not app.check_action("stop", ())
        assert proc.wait(timeout=30) == 130  # exit_codes.INTERRUPTED: stopped on request
        events = list(read_events(log))
        assert events[-1].kind == "run_end"
        payload, env_line = got.read_text().splitlines()
        sent = json.loads(payload)
        run_id = events[0].run_id
        assert (sent["kind"], sent["status"], sent["run_id"], sent["log"]) == ("run_end", "stopped", run_id, str(log))
        assert sent["message"].startswith(f"run {run_id} stopped at step ") and env_line == "run_end stopped"
        output = (tmp_path / "detached.out").read_text()
        assert output.count("warning: --notify command failed with exit code 3 (run_end alert)") == 1, output[-500:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _watching(pid: int, host: str, t_first: float = 0.0) -> WriterWatch:
    watch = WriterWatch(host="here")
    watch.saw([ev.Header(t=t_first or time.time()), ev.Heartbeat(t=time.time(), pid=pid, host=host, phase="step")])
    return watch


def test_a_writer_elsewhere_or_unknown_is_not_signalled_and_the_command_is_said():
    other = _watching(4242, "gpu-node-7")
    assert other.stop_refusal() == (
        "the run is on host gpu-node-7, pid 4242; stop it there: ssh gpu-node-7 kill -TERM 4242"
    )
    assert other.signal_stop() == other.stop_refusal()
    old = WriterWatch(host="here")
    old.saw([ev.Header(t=1.0)])  # no heartbeats: no pid to signal
    assert "no writer process" in old.stop_refusal()
    # this host, our own pid, but a log begun before this process was: a recycled pid, never signalled
    recycled = _watching(os.getpid(), "here", t_first=time.time() - 3600)
    assert recycled.stop_refusal() == f"the writer (pid {os.getpid()}) has exited; there is nothing to stop"
    assert _watching(os.getpid(), "here", t_first=time.time()).stop_refusal() == ""


async def test_a_read_only_watch_offers_no_stop(tmp_path):
    from engine.log.runlog import LogWriter
    from freeze_tui.app.screens.confirm import ConfirmScreen
    from freeze_tui.cli.commands.serve import serve_command
    from tests.synthetic_log import synthetic_events

    path = tmp_path / "half.jsonl"
    writer = LogWriter(path)
    for e in list(synthetic_events(steps=10, finished=False)):
        writer.write(e)
    writer.close()
    assert "watch --read-only" in serve_command((str(path),), watch=True)  # what a browser session runs
    app = quiet(FreezeApp(WatchSource(path, poll_interval=0.02)))
    app.writer_stoppable = False
    async with app.run_test() as pilot:
        await _until(pilot, lambda: app.state.step == 9, 60)
        assert not app.check_action("stop", ())
        await pilot.press("s")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ConfirmScreen)
        app.writer_stoppable = True
        assert app.check_action("stop", ())
        await pilot.press("s")  # a log from a writer without heartbeats: how to stop it, no question
        await _until(pilot, lambda: any("no writer process" in n.message for n in app._notifications), 20)
        assert not isinstance(app.screen, ConfirmScreen)
        app.source.stop()


def test_a_writer_asked_to_stop_that_dies_instead_is_called_gone_not_stopping():
    from engine.log.state import RunState
    from freeze_tui.app.widgets.header_bar import SourceView, status_label
    from tests.synthetic_log import synthetic_events

    state = RunState().apply_all(synthetic_events(steps=5, finished=False))
    assert status_label(state, SourceView(mode="watch", stopping=True)) == "stopping…"
    gone = SourceView(mode="watch", stopping=True, gone="writer gone (pid 9 exited)")
    assert status_label(state, gone) == "writer gone (pid 9 exited)"
