"""Every view of the app, driven by replaying a log at max speed (Pilot)."""

import re
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from engine.log.sources import ReplaySource
from freeze_tui.app.app import FreezeApp
from tests.app.helpers import play_to_end, quiet, shown

pytestmark = pytest.mark.anyio  # async tests run on asyncio through anyio's pytest plugin

SAMPLE_RUNS = sorted(Path(__file__).resolve().parents[2].glob("sample_runs/*.jsonl"))


def _app(path):
    return quiet(FreezeApp(ReplaySource(path, None)))


async def _view_text(path, key: str, view: str):
    """Replay `path` to its end, switch to a view by its key, and return (app, the view's text)."""
    app = _app(path)
    async with app.run_test(size=(160, 50)) as pilot:
        await play_to_end(pilot)
        await pilot.press(key)
        await play_to_end(pilot)
        return app, shown(app.views[view].query_one(Static))


async def test_header_and_arm_columns(log_path):
    app = _app(log_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await play_to_end(pilot)
        header = shown(app.header)
        assert "finished" in header and "step 200/200" in header and "demo-gpt2-tiny" in header
        cards = [shown(card) for card in app.arms.children]
        assert len(cards) == 2
        assert "full" in cards[0] and "targeted" in cards[1] and "6.6 % trained" in cards[1]
        assert "targeted  spec targeted" in cards[1]
        assert "tok/s" in cards[1] and "epoch 2" in cards[1]


async def test_loss_view_and_smoothing(log_path):
    app = _app(log_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await play_to_end(pilot)
        loss = app.views["loss"]
        chart = loss.query_one("#loss-chart").render().plain
        scatter = loss.query_one("#scatter-chart").render().plain
        assert "loss per step (smoothing 0.90; ◆ val loss)" in chart and "full" in chart and "targeted" in chart
        assert "L_arm vs L_full" in scatter and "y = x (no difference)" in scatter
        await pilot.press("m")
        await play_to_end(pilot)
        assert app.chart.smoothing == 0 and "loss per step (raw" in loss.query_one("#loss-chart").render().plain


async def test_difference_toggle_shows_the_paired_difference_and_validation_table(log_path):
    app = _app(log_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await play_to_end(pilot)
        await pilot.press("d")
        await play_to_end(pilot)
        loss = app.views["loss"]
        chart = loss.query_one("#loss-chart").render().plain
        assert "targeted − full per step" in chart and "◆ validation gap" in chart
        assert not loss.query_one("#scatter-chart").display and loss.query_one("#gap-table-scroll").display
        table = shown(loss.query_one("#gap-table", Static))
        assert "ep2" in table and "(baseline)" in table and "targeted" in table
        await pilot.press("d")
        await play_to_end(pilot)
        back = loss.query_one("#loss-chart").render().plain
        assert loss.query_one("#scatter-chart").display and "loss per step" in back


async def test_samples_side_by_side_steps_through_prompts_and_seeds(log_path):
    app = _app(log_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await play_to_end(pilot)
        for key in ("3", "c", "n"):
            await pilot.press(key)
        await play_to_end(pilot)
        text = shown(app.views["samples"].query_one(Static))
        assert "sample 2 of" in text and "targeted" in text and "after epoch 2" in text
        await pilot.press("N", "N")
        await play_to_end(pilot)
        assert re.search(r"sample (\d+) of \1:", shown(app.views["samples"].query_one(Static)))  # wrapped to the last


async def test_dw_view_marks_frozen_matrices(log_path):
    app = _app(log_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await play_to_end(pilot)
        await pilot.press("2")
        await play_to_end(pilot)
        table = app.views["dw"].table
        assert isinstance(table, DataTable) and table.row_count == 24
        first = [str(c) for c in table.get_row_at(0)]
        assert first[:2] == ["0", "q"] and first[5] == "frozen" and first[2] != "frozen"
        last = [str(c) for c in table.get_row_at(23)]
        assert last[1] == "o" and last[5] == "frozen"
        assert [str(c) for c in table.get_row_at(20)][5] != "frozen"  # block 5, q: targeted trains it


async def test_samples_view(log_path):
    _, text = await _view_text(log_path, "3", "samples")
    assert "before training" in text and "after epoch 2" in text
    assert text.count("Δp = ") == 2 and "Call me Ishmael." in text


async def test_time_view(log_path):
    app, text = await _view_text(log_path, "4", "time")
    assert "t_1" in text and "t_2" in text and "r measured" in text and "baseline" in text
    assert f"{100 * app.state.saving('targeted'):.1f} %" in text and "28.0 %" in text


async def test_plan_view(log_path):
    _, text = await _view_text(log_path, "5", "plan")
    assert "spec targeted" in text and "attn.qkv" in text and "···■■■" in text
    assert "no plan changes" in text


async def test_log_view(log_path):
    _, text = await _view_text(log_path, "6", "log")
    assert "loss spike in targeted at step 100" in text


async def test_small_terminal_every_view_and_four_arms(tmp_path):
    from tests.synthetic_log import write_synthetic_log

    path = write_synthetic_log(tmp_path / "four.jsonl", steps=120, arms=("full", "targeted", "reverse", "late"))
    app = _app(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await play_to_end(pilot)
        assert app.screen.has_class("-short") and app.screen.has_class("-narrow")
        for key, view in zip("1234567", ["loss", "dw", "samples", "time", "plan", "log", "run"]):
            await pilot.press(key)
            await play_to_end(pilot)
            assert app.tabs.active == f"tab-{view}"
        assert len(app.arms.children) == 4
        assert "finished" in shown(app.header)


@pytest.mark.parametrize("path", SAMPLE_RUNS, ids=[p.name for p in SAMPLE_RUNS])
async def test_recorded_sample_runs_replay(path):
    app = _app(path)
    async with app.run_test(size=(160, 50)) as pilot:
        await play_to_end(pilot, timeout=60)
        for key in "1234567":
            await pilot.press(key)
            await play_to_end(pilot)
        assert app.state.n_events > 0
