"""Alerts in the app: a live run's divergence and end are a toast and a bell each, and --notify's
command is told; a replay toasts no run end and rings no bell."""

from __future__ import annotations

import time

import pytest

from engine.log import events as ev
from engine.log.alerts import Alert
from engine.log.sources import ReplaySource
from freeze_tui.app.app import FreezeApp
from tests.app.helpers import FakeLiveSource, play_to_end, quiet
from tests.unit.test_alerts import BLOWS, FULL, run_events

pytestmark = pytest.mark.anyio


class Recorded:
    def __init__(self) -> None:
        self.sent: list[tuple[Alert, str]] = []
        self.warn = None

    def send(self, alert: Alert, run_id: str = "") -> None:
        self.sent.append((alert, run_id))


def _toasts(app) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


async def test_a_live_alert_is_a_toast_a_bell_and_a_notification():
    source, notifier = FakeLiveSource(), Recorded()
    app = quiet(FreezeApp(source, notifier=notifier))
    bells: list[int] = []
    app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
    now = time.time()
    events = [ev.stamped(e, e.seq, now) for e in run_events({"full": FULL, "hot": BLOWS}, end="finished")]
    async with app.run_test(size=(100, 30)) as pilot:
        source.feed(events)
        await play_to_end(pilot)
        await pilot.pause(0.2)
        toasts = _toasts(app)
    assert [a.kind for a, _ in notifier.sent] == ["diverging", "run_end"] and notifier.sent[0][1] == "r1"
    assert toasts[0].startswith("loss diverging: arm hot: loss diverging at step 80")
    assert toasts[1].startswith("run ended: run r1 finished at step 120") and len(bells) == 2


async def test_a_replay_rings_no_bell_and_toasts_no_run_end(log_path):
    app = quiet(FreezeApp(ReplaySource(log_path, None)))
    bells: list[int] = []
    app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
    async with app.run_test() as pilot:
        await play_to_end(pilot)
        await pilot.pause(0.2)
        assert app.state.finished and _toasts(app) == [] and bells == []
