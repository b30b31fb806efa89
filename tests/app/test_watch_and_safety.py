"""Watching a log that grows; untrusted text shown literally; the app never imports torch."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.log import events as ev
from engine.log.runlog import LogWriter
from engine.log.sources import ReplaySource, WatchSource
from freeze_tui.app.app import FreezeApp
from tests.app.helpers import play_to_end, quiet, shown
from tests.synthetic_log import synthetic_events

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


async def _until(pilot, condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.05)


async def test_watch_shows_new_steps_then_finished(tmp_path):
    path = tmp_path / "growing.jsonl"
    events = list(synthetic_events(steps=60))
    first_steps = next(i for i, e in enumerate(events) if isinstance(e, ev.Step) and e.step == 10)
    writer = LogWriter(path)
    for e in events[:first_steps]:
        writer.write(e)
    go = threading.Event()

    def write_rest():
        go.wait(10)
        for e in events[first_steps:]:
            writer.write(e)
            time.sleep(0.002)
        writer.close()

    thread = threading.Thread(target=write_rest, daemon=True)
    thread.start()
    app = quiet(FreezeApp(WatchSource(path, poll_interval=0.02)))
    async with app.run_test(size=(120, 40)) as pilot:
        await _until(pilot, lambda: app.state.step == 9)
        app.redraw()
        assert "step 10/60" in shown(app.header) and "running" in shown(app.header)
        go.set()
        await _until(pilot, lambda: app.state.status == "finished")
        await play_to_end(pilot)
        assert "step 60/60" in shown(app.header) and "finished" in shown(app.header)
    thread.join(5)


async def test_watch_of_an_empty_file_waits_for_data(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    app = quiet(FreezeApp(WatchSource(path, poll_interval=0.02)))
    async with app.run_test() as pilot:
        await pilot.pause(0.3)
        assert "waiting for data" in shown(app.header)


MARKUP = "[bold red]x[/]"
ESCAPE = "\x1b[2J\x1b]0;pwned\x07"


def _hostile_log(path):
    """A log whose texts try Rich markup and terminal escapes everywhere a log can carry text."""
    base = list(synthetic_events(steps=4, finished=False))
    start = base[1]
    arms = list(start.arms)
    model = {**start.model, "name": f"model{MARKUP}{ESCAPE}"}
    hostile = [
        base[0],
        ev.RunStart(
            seq=1,
            t=start.t,
            config={**start.config, "name": f"[link=x]run[/link]{ESCAPE}"},
            model=model,
            data=start.data,
            common_tokens=start.common_tokens,
            arms=arms,
        ),
        ev.Sample(
            seq=2,
            t=start.t,
            phase="pre",
            prompt=f"prompt {MARKUP}",
            text="",
            p=0.5,
            tokens=[[f" tok{ESCAPE}", True], [f" {MARKUP}", False], [" line\nbreak", False]],
        ),
        ev.Warning(seq=3, t=start.t, message=f"warn {MARKUP} {ESCAPE}", arm="full"),
        ev.RunEnd(seq=4, t=start.t + 1, status="finished", summary={}),
    ]
    writer = LogWriter(path)
    for e in hostile:
        writer.write(e)
    writer.close()
    return path


async def test_markup_and_escapes_from_a_log_are_shown_literally(tmp_path):
    app = quiet(FreezeApp(ReplaySource(_hostile_log(tmp_path / "hostile.jsonl"), None)))
    async with app.run_test(size=(200, 50)) as pilot:
        await play_to_end(pilot)
        await pilot.press("3")
        await play_to_end(pilot)
        samples = shown(app.views["samples"].query_one("#samples-text"))
        await pilot.press("6")
        await play_to_end(pilot)
        log = shown(app.views["log"].query_one("#log-text"))
        header = shown(app.header)
        svg = app.export_screenshot()
    assert f"prompt {MARKUP}" in samples and "tok␛[2J␛]0;pwned␇" in samples and "line⏎break" in samples
    assert f"warn {MARKUP} ␛[2J" in log
    assert f"model{MARKUP}␛[2J" in header and "[link=x]run[/link]" in header
    assert "\x1b" not in samples + log + header and "\x1b" not in svg and "\x07" not in svg


def test_importing_the_app_does_not_import_torch():
    code = (
        "import sys, freeze_tui.app.app, freeze_tui.app.bridge, engine.log.sources; "
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
