"""SVG snapshots of the app at 80x24 and 160x50: every view, help, each mode, hidden arms, zoom,
and the ΔW table scrolled and paged by keyboard.

Everything shown comes from the log's own clock (fixed times), so snapshots do not depend on
when they are taken. Update with `pytest tests/app/test_snapshots.py --snapshot-update` and look
at the SVGs in __snapshots__ before committing them.
"""

from pathlib import Path

import pytest

from engine.log.merge import MergedSource
from engine.log.sources import ReplaySource, WatchSource
from freeze_tui.app.app import FreezeApp
from tests.app.helpers import FakeLiveSource, play_to_end, quiet
from tests.synthetic_log import synthetic_events, write_synthetic_log

VIEWS = {"loss": "1", "dw": "2", "samples": "3", "time": "4", "plan": "5", "log": "6", "run": "7"}
SIZES = {"small": (80, 24), "large": (160, 50)}
# Keys pressed after the replay ended, for each scene beyond the plain views.
SCENES = {
    "help": ["question_mark"],
    "hidden-arm-zoom": ["a", "down", "space", "escape", "z", "z"],
    "tokens-raw": ["x", "m"],
    "dw-keys": ["2", "pagedown", "down", "right_square_bracket"],
    "difference": ["d"],
    "samples-side-by-side": ["3", "c", "n"],
    "log-y": ["l"],
}


def _replayed(keys):
    async def run_before(pilot):
        await play_to_end(pilot)
        for key in keys:
            await pilot.press(key)
            await pilot.pause()  # the layout a key changes (a view switch) settles before the next key reads it
        await play_to_end(pilot)
        pilot.app.clear_notifications()  # toasts expire on a timer: keep them out of snapshots
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("view", VIEWS)
def test_view_snapshot(snap_compare, log_path, view, size):
    app = quiet(FreezeApp(ReplaySource(log_path, None)))
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_replayed([VIEWS[view]]))


@pytest.fixture
def three_arms(tmp_path):
    return write_synthetic_log(tmp_path / "three.jsonl", steps=300, arms=("full", "targeted", "reverse"))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("scene", SCENES)
def test_scene_snapshot(snap_compare, three_arms, scene, size):
    app = quiet(FreezeApp(ReplaySource(three_arms, None)))
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_replayed(SCENES[scene]))


@pytest.mark.parametrize("size", SIZES)
def test_live_mode_snapshot(snap_compare, size):
    source = FakeLiveSource()
    source.feed(list(synthetic_events(steps=150))[:-1])  # no run_end: still running

    async def run_before(pilot):
        while pilot.app.state.step < 149:
            await pilot.pause(0.05)
        await play_to_end_of_live(pilot)

    assert snap_compare(quiet(FreezeApp(source)), terminal_size=SIZES[size], run_before=run_before)


async def play_to_end_of_live(pilot):
    pilot.app.redraw()
    for view in pilot.app.views.values():
        while getattr(view, "pending", False):
            await pilot.pause(0.05)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_frontier_snapshot(snap_compare, tmp_path, size):
    """The Frontier view of a study-like run: arms with intervals, random controls as a cloud."""
    arms = ("full", "targeted", "reverse", "random-1", "random-2", "random-3")
    log = write_synthetic_log(tmp_path / "study.jsonl", steps=120, arms=arms, retain=True)
    app = quiet(FreezeApp(ReplaySource(log, None)))
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_replayed(["8"]))


@pytest.mark.parametrize("size", SIZES)
def test_finished_watch_snapshot(snap_compare, log_path, size):
    app = quiet(FreezeApp(WatchSource(log_path, poll_interval=0.02)))
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_replayed([]))


SAMPLE_RUNS = Path(__file__).resolve().parents[2] / "sample_runs"
THREE_ARM_VIEWS = {"loss": "1", "dw": "2", "time": "4"}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("view", THREE_ARM_VIEWS)
def test_three_arm_sample_snapshot(snap_compare, view, size):
    """full, targeted and lora (sample_runs/): cards, ΔW side by side, one-line r intervals, y = x named at 80x24."""
    app = quiet(FreezeApp(ReplaySource(SAMPLE_RUNS / "demo-full-targeted-lora.jsonl", None)))
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_replayed([THREE_ARM_VIEWS[view]]))


@pytest.mark.parametrize("size", SIZES)
def test_merged_runs_snapshot(snap_compare, size):
    """Two sample runs merged: six arms named lora/… and vs/… on cards and the legend."""
    logs = [SAMPLE_RUNS / "demo-full-targeted-lora.jsonl", SAMPLE_RUNS / "demo-full-vs-targeted.jsonl"]
    source = MergedSource([ReplaySource(log, None) for log in logs], [log.stem for log in logs])
    assert snap_compare(quiet(FreezeApp(source)), terminal_size=SIZES[size], run_before=_replayed(["1"]))
