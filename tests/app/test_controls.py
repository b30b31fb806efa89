"""Keyboard controls: pause, stop (live only, asks first), quit (asks during a live run), screenshot."""

import asyncio

import pytest

from engine.log.events import RunEnd
from engine.log.sources import ReplaySource
from freeze_tui.app.app import FreezeApp
from freeze_tui.app.screens.confirm import ConfirmScreen
from tests.app.helpers import FakeLiveSource, play_to_end, quiet, shown
from tests.synthetic_log import synthetic_events

pytestmark = pytest.mark.anyio


async def _wait_for(pilot, condition, timeout=10.0):
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not reached")


async def test_pause_and_resume_a_replay(log_path):
    app = quiet(FreezeApp(ReplaySource(log_path, speed=10.0)))  # the run lasts ~5 s: mid-way when paused
    async with app.run_test(size=(120, 40)) as pilot:
        await _wait_for(pilot, lambda: app.state.step >= 0)
        await pilot.press("p")
        assert app.source.paused
        await pilot.pause(0.3)
        assert "paused" in shown(app.header)
        await pilot.press("p")
        assert not app.source.paused
        await pilot.press("q")  # a replay quits without asking
        await pilot.pause()
    assert app.source.done and app.return_code == 0


async def test_stop_is_for_live_runs_only(log_path):
    app = quiet(FreezeApp(ReplaySource(log_path, None)))
    async with app.run_test() as pilot:
        await play_to_end(pilot)
        assert "s" not in app.screen.active_bindings  # the footer does not offer it either
        await pilot.press("s")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen) and app.is_running


async def test_screenshot_is_saved_and_its_path_shown(log_path, tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    app = quiet(FreezeApp(ReplaySource(log_path, None), screenshot_dir=shots))
    async with app.run_test() as pilot:
        await play_to_end(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause()
        files = list(shots.glob("freeze-tui-synthetic-0-*.svg"))
        assert len(files) == 1 and "<svg" in files[0].read_text()
        assert any(str(files[0]) in str(n.message) for n in app._notifications)


def _live_events(steps=6):
    events = list(synthetic_events(steps=steps, finished=True))
    return events[:-1], events[-1]


async def test_live_stop_asks_then_stops_at_a_step_boundary():
    source = FakeLiveSource()
    running, _ = _live_events()
    source.feed(running)
    app = quiet(FreezeApp(source))
    async with app.run_test() as pilot:
        await _wait_for(pilot, lambda: app.state.step >= 0)
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert not source.stop_requested.is_set()
        await pilot.press("s")
        await pilot.press("y")
        assert source.stop_requested.is_set()
        await pilot.pause(0.2)
        assert "stopping" in shown(app.header)
        source.feed([RunEnd(seq=10_000, t=app.state.t_last + 1, status="stopped")])
        await _wait_for(pilot, lambda: app.state.status == "stopped")
        app.redraw()
        assert "stopped" in shown(app.header)


async def test_quitting_a_live_run_stops_it_and_waits_for_its_end():
    source = FakeLiveSource()
    running, end = _live_events()
    source.feed(running)
    app = quiet(FreezeApp(source))
    async with app.run_test() as pilot:
        await _wait_for(pilot, lambda: app.state.step >= 0)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        assert source.stop_requested.is_set()
        await pilot.pause(0.3)
        assert app.is_running  # still waiting for the run to end cleanly
        source.feed([end])
        for _ in range(100):
            if not app.is_running:
                break
            await asyncio.sleep(0.05)
    assert app.state.status == "finished"


async def test_a_corrupt_line_mid_log_is_reported_not_fatal(tmp_path):
    path = tmp_path / "broken.jsonl"
    lines = tmp_path / "ok.jsonl"
    from tests.synthetic_log import write_synthetic_log

    write_synthetic_log(lines, steps=20)
    content = lines.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(content[:10]) + b"{not json}\n" + b"".join(content[10:]))
    app = quiet(FreezeApp(ReplaySource(path, None)))
    async with app.run_test() as pilot:
        await play_to_end(pilot)
        assert "log unreadable" in shown(app.header)
        await pilot.press("6")
        app.redraw()
        await pilot.pause()
        assert "line 11" in shown(app.views["log"].query_one("#log-text"))


async def test_redraws_are_coalesced(tmp_path, monkeypatch):
    """A fast source (20k steps as fast as possible) must not redraw more than ~10 times a second."""
    from freeze_tui.app.widgets.arms_panel import ArmsPanel
    from tests.synthetic_log import write_synthetic_log

    path = write_synthetic_log(tmp_path / "big.jsonl", steps=20_000)
    calls = []
    original = ArmsPanel.show
    monkeypatch.setattr(ArmsPanel, "show", lambda self, state: (calls.append(1), original(self, state)))
    app = quiet(FreezeApp(ReplaySource(path, None)))
    loop = asyncio.get_running_loop()
    async with app.run_test() as pilot:
        start = loop.time()
        await play_to_end(pilot, timeout=60)
        elapsed = loop.time() - start
        assert app.state.step == 19_999
    assert len(calls) <= 12 * elapsed + 3


async def test_the_quit_question_follows_the_run_to_its_end():
    """q during the last validation: the run finishes under the open dialog, which then asks 'Quit?'; y quits."""
    source = FakeLiveSource()
    running, end = _live_events()
    source.feed(running)
    app = quiet(FreezeApp(source))
    async with app.run_test() as pilot:
        await _wait_for(pilot, lambda: app.state.step >= 0)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        source.feed([end])
        await _wait_for(pilot, lambda: app.state.finished)
        await _wait_for(pilot, lambda: app.screen.question.endswith("Quit?"))
        assert app.screen.question == "The run has finished. Quit?"
        await pilot.press("y")
        for _ in range(100):
            if not app.is_running:
                break
            await asyncio.sleep(0.05)
        assert not app.is_running


async def test_the_stop_question_closes_when_the_run_ends():
    source = FakeLiveSource()
    running, end = _live_events()
    source.feed(running)
    app = quiet(FreezeApp(source))
    async with app.run_test() as pilot:
        await _wait_for(pilot, lambda: app.state.step >= 0)
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        source.feed([end])
        await _wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert app.is_running and not source.stop_requested.is_set()


async def test_live_p_pauses_the_display_only():
    """LIVE `p` freezes the screen while the run trains on (the source is never paused); the header says
    so, the footer offers resume, and resuming shows the steps that arrived meanwhile."""
    source = FakeLiveSource()
    events = list(synthetic_events(steps=20, finished=True))
    cut = [i for i, e in enumerate(events) if e.kind == "step"][3]  # steps 0-2 first
    source.feed(events[:cut])
    app = quiet(FreezeApp(source))
    async with app.run_test(size=(120, 40)) as pilot:
        await _wait_for(pilot, lambda: app.state.step >= 2)
        app.redraw()
        await pilot.press("p")
        assert app.view_paused and not source.paused  # training is not paused
        app.redraw()
        await pilot.pause()
        assert "view paused — training continues" in shown(app.header)
        assert app.check_action("resume", ("live",)) and not app.check_action("pause", ("live",))
        drawn: list[int] = []
        show = app.arms.show
        app.arms.show = lambda state: (drawn.append(state.step), show(state))  # type: ignore[method-assign]
        source.feed(events[cut:-1])
        await _wait_for(pilot, lambda: app.state.step >= 19)  # the state keeps folding
        app.redraw()
        await pilot.pause()
        assert drawn == []  # the screen does not
        await pilot.press("p")
        assert not app.view_paused
        app.redraw()
        await pilot.pause()
        assert drawn and drawn[-1] == 19 and "view paused" not in shown(app.header)
        assert app.check_action("pause", ("live",)) and not app.check_action("resume", ("live",))


async def test_a_redraw_tick_while_the_app_closes_is_harmless(log_path):
    # Textual pops the screens before it stops the timers: a tick in between must not raise (CI saw one)
    app = quiet(FreezeApp(ReplaySource(log_path, None)))
    async with app.run_test(size=(100, 30)) as pilot:
        await play_to_end(pilot)
    assert not app.screen_stack
    app.redraw()
