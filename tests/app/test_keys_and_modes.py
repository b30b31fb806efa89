"""Help, modes, the footer per mode, the loss chart's keys, keyboard scrolling of ΔW, the Run view."""

import pytest

from engine.log.sources import ReplaySource, WatchSource
from freeze_tui.app.app import FreezeApp
from freeze_tui.app.screens.arms import ArmsScreen
from freeze_tui.app.screens.help import HelpScreen
from tests.app.helpers import FakeLiveSource, play_to_end, quiet, shown
from tests.synthetic_log import synthetic_events, write_synthetic_log

pytestmark = pytest.mark.anyio


def _footer(app) -> dict[str, str]:
    """The keys the footer offers now, with their descriptions."""
    return {key: b.binding.description for key, b in app.screen.active_bindings.items() if b.binding.show}


async def _wait_for(pilot, condition, timeout=10.0):
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not reached")


def _help_text(app) -> str:
    assert isinstance(app.screen, HelpScreen)
    return shown(app.screen.query_one("#help-text"))


async def test_replay_mode_help_and_footer(log_path):
    app = quiet(FreezeApp(ReplaySource(log_path, speed=5.0)))
    async with app.run_test(size=(80, 24)) as pilot:
        await _wait_for(pilot, lambda: app.state.step >= 0)
        app.redraw()
        await pilot.pause()
        assert "REPLAY ×5 " in shown(app.header)
        footer = _footer(app)
        assert footer["p"] == "pause replay" and "s" not in footer and footer["question_mark"] == "help"
        await pilot.press("p")
        app.redraw()
        assert "replay paused" in shown(app.header)
        await pilot.pause()
        assert _footer(app)["p"] == "resume"
        await pilot.press("question_mark")
        text = _help_text(app)
        assert "pause / resume the replay" in text and "stop the run" not in text and "smoothing weight" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("2", "f1")
        text = _help_text(app)
        assert "previous / next arms" in text and "smoothing" not in text
        await pilot.press("q")
        await pilot.press("q")
    assert app.return_code == 0


async def test_live_mode_offers_stop_then_finished_does_not():
    source = FakeLiveSource()
    events = list(synthetic_events(steps=6))
    source.feed(events[:-1])
    app = quiet(FreezeApp(source))
    async with app.run_test(size=(80, 24)) as pilot:
        await _wait_for(pilot, lambda: app.state.step >= 0)
        app.redraw()
        await pilot.pause()
        assert "LIVE" in shown(app.header)
        assert _footer(app)["s"] == "stop run" and _footer(app)["p"] == "pause view"  # the display only
        await pilot.press("p")
        await pilot.pause()
        assert _footer(app)["p"] == "resume"  # while paused, p offers to resume
        await pilot.press("p")
        await pilot.press("question_mark")
        assert "stop the run at the next step boundary" in _help_text(app)
        await pilot.press("escape")
        source.feed(events[-1:])
        await play_to_end(pilot)
        app.redraw()
        await pilot.pause()
        assert "FINISHED" in shown(app.header)
        assert "s" not in _footer(app) and "p" not in _footer(app)


async def test_watch_mode_pause_is_only_the_display(tmp_path):
    path = tmp_path / "half.jsonl"
    events = list(synthetic_events(steps=20))
    from engine.log.runlog import LogWriter

    writer = LogWriter(path)
    for e in events[:-1]:
        writer.write(e)
    writer.close()
    app = quiet(FreezeApp(WatchSource(path, poll_interval=0.02)))
    async with app.run_test(size=(80, 24)) as pilot:
        await _wait_for(pilot, lambda: app.state.step == 19)
        app.redraw()
        await pilot.pause()
        assert "WATCH" in shown(app.header) and _footer(app)["p"] == "pause display" and _footer(app)["s"] == "stop run"
        await pilot.press("p")
        app.redraw()
        assert "display paused (training continues)" in shown(app.header)
        app.source.stop()


async def test_smoothing_zoom_axis_and_hidden_arms(tmp_path):
    path = write_synthetic_log(tmp_path / "three.jsonl", steps=300, arms=("full", "targeted", "reverse"))
    app = quiet(FreezeApp(ReplaySource(path, None)))
    async with app.run_test(size=(160, 50)) as pilot:
        await play_to_end(pilot)
        chart = app.views["loss"].query_one("#loss-chart")
        assert app.chart.smoothing == 0.9
        await pilot.press("minus", "minus")
        assert app.chart.smoothing == 0.7
        await pilot.press("m")
        assert app.chart.smoothing == 0.0
        await pilot.press("m")
        assert app.chart.smoothing == 0.7
        await pilot.press("plus")
        assert app.chart.smoothing == 0.8
        await pilot.press("z")
        assert app.chart.zoom == 200
        await pilot.press("x")
        assert app.chart.axis == "tokens"
        await play_to_end(pilot)
        text = chart.render().plain
        assert "smoothing 0.80, last 200 steps" in text and "tokens seen" in text
        await pilot.press("a")
        assert isinstance(app.screen, ArmsScreen)
        await pilot.press("space")  # the first arm, highlighted
        await pilot.press("escape")
        assert app.chart.hidden == frozenset({"full"})
        await play_to_end(pilot)
        legend = chart.render().plain
        assert "targeted" in legend and "reverse" in legend and "full" not in legend.split("\n", 3)[2]
        scatter = app.views["loss"].query_one("#scatter-chart").render().plain
        assert "y = x (no difference)" in scatter


async def test_dw_scrolls_by_keyboard_and_pages_arms_at_80_columns(tmp_path):
    arms = ("full", "targeted", "reverse", "lora", "snr", "fisher", "random-1")  # past what 80 columns hold
    path = write_synthetic_log(tmp_path / "seven.jsonl", steps=60, arms=arms)
    app = quiet(FreezeApp(ReplaySource(path, None)))
    async with app.run_test(size=(80, 24)) as pilot:
        await play_to_end(pilot)
        await pilot.press("2")
        await play_to_end(pilot)
        view = app.views["dw"]
        table = view.table
        assert app.focused is table
        labels = [str(c.label) for c in table.columns.values()]
        assert labels == ["blk", "W", *(f"{arm} ΔW" for arm in arms[:5])]  # ΔW only, five arms a page
        assert sum(c.get_render_width(table) for c in table.columns.values()) <= 78  # fits, no cut column
        await pilot.press("down", "down", "pagedown")
        assert table.cursor_row > 2
        await pilot.press("end")
        assert table.cursor_row == table.row_count - 1 or table.scroll_y == table.max_scroll_y
        await pilot.press("home")
        assert table.cursor_row == 0 or table.scroll_y == 0
        await pilot.press("right", "right")
        assert app.tabs.active == "tab-dw"  # arrows moved the table, not the tabs
        await pilot.press("right_square_bracket")
        assert [str(c.label) for c in table.columns.values()][2] == "fisher ΔW"
        assert "page 2/2" in shown(view.query_one("#dw-caption"))
        await pilot.press("right_square_bracket")
        assert [str(c.label) for c in table.columns.values()][2] == "full ΔW"
        assert table.fixed_columns == 2


async def test_run_view_lists_every_setting(log_path):
    app = quiet(FreezeApp(ReplaySource(log_path, None), log_path=log_path))
    async with app.run_test(size=(160, 50)) as pilot:
        await play_to_end(pilot)
        await pilot.press("7")
        await play_to_end(pilot)
        text = shown(app.views["run"].query_one("#run-text"))
    for expected in ("learning rate", "batch size", "block size", "seed", "dtype", "device", "epochs"):
        assert expected in text
    assert str(log_path) in text and "freeze-tui" in text and "started" in text and "demo-gpt2-tiny" in text


async def test_two_screenshots_in_one_second_are_both_kept(log_path, tmp_path):
    shots = tmp_path / "new" / "shots"  # created on demand
    app = quiet(FreezeApp(ReplaySource(log_path, None), screenshot_dir=shots))
    async with app.run_test() as pilot:
        await play_to_end(pilot)
        await pilot.press("ctrl+s", "ctrl+s")
        await pilot.pause()
        files = sorted(shots.glob("*.svg"))
        assert len(files) == 2
        messages = " ".join(str(n.message) for n in app._notifications)
        assert all(str(f) in messages for f in files)


async def test_screenshots_go_next_to_the_log_by_default(tmp_path):
    (tmp_path / "logs").mkdir()
    path = write_synthetic_log(tmp_path / "logs" / "run.jsonl", steps=10)
    app = quiet(FreezeApp(ReplaySource(path, None), log_path=path))
    async with app.run_test() as pilot:
        await play_to_end(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert len(list((tmp_path / "logs").glob("freeze-tui-*.svg"))) == 1
