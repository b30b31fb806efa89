"""Replay keys: speed up / down, seek back and forward, jump to the end; a finished replay offers no pause."""

from __future__ import annotations

import math

import pytest

from engine.log.events import Header, Step
from engine.log.merge import MergedSource
from engine.log.sources import ReplaySource
from freeze_tui.app.app import FreezeApp
from freeze_tui.app.replay_keys import next_speed
from tests.app.helpers import quiet, shown
from tests.synthetic_log import write_synthetic_log

pytestmark = pytest.mark.anyio
SLOW = 1e-4  # a step every few hours: nothing plays unless sought


def _steps(events) -> list[int]:
    return [e.step for e in events if isinstance(e, Step)]


def _drain(source, rounds: int = 5) -> list:
    out = []
    for _ in range(rounds):
        out += source.get_batch(0.02)
    return out


def test_the_speed_ladder():
    assert next_speed(20.0, 1) == 50.0 and next_speed(20.0, -1) == 10.0
    assert next_speed(1000.0, 1) is None and next_speed(None, 1) is None and next_speed(None, -1) == 1000.0
    assert next_speed(0.5, -1) == 0.5 and next_speed(3.0, 1) == 5.0


@pytest.mark.parametrize("merged", [False, True])
def test_a_replay_seeks_forward_and_back(tmp_path, merged):
    logs = [write_synthetic_log(tmp_path / f"run{i}.jsonl", steps=40, seed=i) for i in range(2 if merged else 1)]
    sources = [ReplaySource(log, speed=SLOW) for log in logs]
    source = MergedSource(sources, ["a", "b"]) if merged else sources[0]
    first = _drain(source)
    assert max(_steps(first), default=-1) <= 0  # the slow clock plays the start only
    source.seek_to(9)
    assert max(_steps(_drain(source))) == 9  # up to step 9 at once, then the clock again
    source.seek_to(4, rewind=True)
    again = _drain(source)
    assert isinstance(again[0], Header) and max(_steps(again)) == 4  # started over: the header first
    source.seek_to(math.inf)
    rest = _drain(source, 20)
    assert max(_steps(rest)) == 39 and source.done


async def test_replay_keys_in_the_app(tmp_path):
    log = write_synthetic_log(tmp_path / "run.jsonl", steps=60)
    app = quiet(FreezeApp(ReplaySource(log, speed=SLOW)))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        await pilot.press("full_stop", "full_stop")
        await _until(pilot, lambda: app.state.step == 19)
        await pilot.press("comma")
        await _until(pilot, lambda: app.state.step == 9)
        assert len(app.state.steps) == 10  # folded afresh, not appended to what was shown
        await pilot.press("greater_than_sign")
        assert app.source.speed == 0.5
        app.redraw()
        assert "REPLAY ×0.5" in shown(app.header)
        await pilot.press("less_than_sign", "less_than_sign")
        assert app.source.speed == 0.5
        await pilot.press("e")
        await _until(pilot, lambda: app.source_finished and app.state.finished)
        app.redraw()
        await pilot.pause()
        footer = {b.binding.action for b in app.screen.active_bindings.values() if b.binding.show}
        assert "pause('replay')" not in footer and not app.check_action("replay_speed", (1,))  # nothing left to play
        assert app.check_action("seek", (-10,)) and not app.check_action("seek", (10,))
        app.source.set_speed(SLOW)
        await pilot.press("comma")  # back from the end: the reading starts again
        await _until(pilot, lambda: app.state.step == 49 and not app.source_finished)
        assert app.source.paused is False and not app.state.finished


async def _until(pilot, condition, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not reached")
