"""What each view draws, computed from a RunState without an App."""

import math

import msgspec
import pytest
from rich.style import Style

from engine.log import events as ev
from engine.log.state import RunState
from engine.plans.plan_record import PlanGrid
from freeze_tui.app.widgets.arm_card import arm_card_text
from freeze_tui.app.widgets.header_bar import SourceView, progress_line, run_line, status_label
from freeze_tui.app.widgets.log_view import log_text
from freeze_tui.app.widgets.samples_view import samples_text
from freeze_tui.app.widgets.time_view import time_table
from freeze_tui.draw import charts
from freeze_tui.draw.colors import Palette
from freeze_tui.draw.dw_cells import dw_table, grid_trains, is_frozen, parse_matrix
from tests.synthetic_log import synthetic_events


@pytest.fixture(scope="module")
def state():
    return RunState().apply_all(synthetic_events(steps=200, arms=("full", "targeted", "reverse")))


def test_loss_series_are_decimated_and_nan_free(state):
    raw = charts.ChartOptions(smoothing=0.0)
    series = charts.loss_series(state, raw, max_points=50)
    assert [s.label for s in series] == ["full", "targeted", "reverse"]
    assert all(len(s.xs) == len(s.ys) <= 100 for s in series)  # each bucket's min and max
    assert series[0].xs[0] <= 3 and series[0].xs[-1] >= 196
    both = charts.loss_series(state, charts.ChartOptions(smoothing=0.9), max_points=50)
    assert [s.label for s in both] == ["", "", "", "full", "targeted", "reverse"]  # raw (unlabelled) first
    assert both[3].ys != series[0].ys and both[0].rgb != both[3].rgb


def test_a_spike_survives_decimation():
    s = RunState().apply_all(synthetic_events(steps=2000, arms=("full", "targeted")))
    s.arms["targeted"].losses[1234] = 99.0
    series = charts.loss_series(s, charts.ChartOptions(smoothing=0.0), max_points=100)
    assert max(series[1].ys) == 99.0 and 1234.0 in series[1].xs


def test_hidden_arms_zoom_and_axes(state):
    opts = charts.ChartOptions(smoothing=0.0, hidden=frozenset({"full"}), zoom=50)
    series = charts.loss_series(state, opts)
    assert [s.label for s in series] == ["targeted", "reverse"]
    assert series[0].xs[0] == 150 and series[0].xs[-1] == 199
    assert [s.label for s in charts.scatter_series(state, opts=opts)] == ["targeted", "reverse"]
    assert [s.label for s in charts.scatter_series(state, opts=charts.ChartOptions(hidden=frozenset({"reverse"})))] == [
        "targeted"
    ]
    tokens = charts.loss_series(state, charts.ChartOptions(smoothing=0.0, axis="tokens"))
    assert tokens[0].xs[0] == state.tokens_per_step and tokens[0].xs[-1] == 200 * state.tokens_per_step
    times = charts.loss_series(state, charts.ChartOptions(smoothing=0.0, axis="time"))
    assert times[0].xs[0] >= 0 and times[0].xs == sorted(times[0].xs)
    assert charts.epoch_marks(state, charts.ChartOptions(zoom=50)) == []  # epoch 2 began at step 100
    assert charts.epoch_marks(state, charts.ChartOptions(axis="tokens")) == [101 * state.tokens_per_step]
    assert charts.step_ticks(0, 4000, 80, "time")[1][0] == "0.00s"


def test_scatter_pairs_every_arm_with_the_baseline(state):
    series = charts.scatter_series(state)
    assert [s.label for s in series] == ["targeted", "reverse"]
    lo, hi = charts.diagonal(series)
    assert lo < 3.0 < hi


def test_epoch_marks_and_ticks(state):
    assert charts.epoch_marks(state) == [100.0]
    ticks, labels = charts.step_ticks(0, 199, 80)
    assert ticks == [0, 50, 100, 150] and labels[0] == "0"
    assert charts.step_ticks(12, 4986, 90)[0] == [1000, 2000, 3000, 4000]
    assert charts.step_ticks(5, 5, 90)[0] == [5]
    assert charts.step_label(250_000) == "250k" and charts.step_label(1_500_000) == "1.5M"


def test_matrix_names_and_grid_lookup():
    assert parse_matrix("h.6.attn.q") == (6, "q")
    assert parse_matrix("model.layers.11.self_attn.o") == (11, "o")
    grid = PlanGrid.read(
        {"blocks": 2, "roles": ["attn.qkv", "attn.o"], "cells": [["frozen", "train"], ["later", "partial"]]}
    )
    assert grid_trains(grid, 0, "q") is False
    assert grid_trains(grid, 0, "o") is True
    assert grid_trains(grid, 1, "k") is None  # "later": the history decides
    assert grid_trains(PlanGrid.read({}), 0, "q") is None
    assert grid_trains(grid, 7, "q") is None and grid_trains(grid, -1, "q") is None


def test_frozen_needs_an_exact_zero():
    assert is_frozen(0.0, [0.1], False)
    assert is_frozen(0.0, [0.0, 0.0], None)
    assert not is_frozen(0.0, [0.0, 0.2], None)  # a trained matrix that did not move this time
    assert not is_frozen(1e-9, [0.0], False)


def test_dw_table_marks_frozen_cells(state):
    table = dw_table(state)
    assert table.columns[:2] == ["blk", "W"]
    assert len(table.columns) == 2 + 3 * 3
    assert len(table.rows) == 6 * 4
    first = table.rows[0]  # block 0, q: targeted freezes it, full and reverse train it
    assert [c.plain for c in first[:2]] == ["0", "q"]
    assert first[2].plain != "frozen" and first[5].plain == "frozen" and first[8].plain != "frozen"
    upper_o = table.rows[5 * 4 + 3]  # block 5, o: reverse freezes the upper attention
    assert upper_o[1].plain == "o" and upper_o[8].plain == "frozen"


def test_status_labels(state):
    assert status_label(state, SourceView()) == "finished"
    fresh = RunState()
    assert status_label(fresh, SourceView(mode="watch")) == "waiting for data"
    assert status_label(fresh, SourceView(mode="live")) == "loading"
    running = RunState().apply_all(synthetic_events(steps=20, finished=False))
    assert status_label(running, SourceView(paused=True)) == "replay paused"
    assert status_label(running, SourceView(mode="watch", paused=True)) == "display paused (training continues)"
    assert (
        status_label(running, SourceView(mode="live", paused=True)) == "view paused — training continues"
    )  # LIVE p pauses the display only
    assert status_label(running, SourceView(mode="watch", idle=12.4)) == "no new events for 12 s"
    assert status_label(running, SourceView(mode="replay", idle=12.4)) == "running"
    assert status_label(running, SourceView(done=True)) == "log ended (no run_end)"
    assert status_label(running, SourceView(mode="live", stopping=True)) == "stopping…"
    assert status_label(running, SourceView(mode="live", idle=30.0)) == "running"  # busy (validating), not gone
    started = RunState().apply_all(e for e in synthetic_events(steps=20, finished=False) if e.kind != "step")
    assert status_label(started, SourceView(mode="live")) == "sampling before training"


def test_header_lines(state):
    run = run_line(state, "freeze-tui").plain
    assert "synthetic-0" in run and "demo-gpt2-tiny" in run and "cpu" in run and "102.4k tokens" in run
    progress = progress_line(state, SourceView()).plain
    assert "finished" in progress and "epoch 2/2" in progress and "step 200/200" in progress
    assert "elapsed" in progress and "trust_remote_code" not in progress


def test_trust_remote_code_is_shown():
    s = RunState().apply_all(synthetic_events(steps=4, finished=False))
    s.settings = msgspec.structs.replace(s.settings, trust_remote_code=True)
    assert "trust_remote_code on" in progress_line(s, SourceView()).plain


def test_arm_card(state):
    text = arm_card_text(state, "targeted", 40).plain
    assert "targeted" in text and "trained" in text and "loss 2." in text and "tok/s" in text
    assert text.splitlines()[0] == "● targeted  spec targeted" and "speed " in text
    assert len(arm_card_text(state, "targeted", 40, compact=True).plain.splitlines()) == 3


def test_arm_card_notes_a_stopped_arm():
    s = RunState().apply_all(synthetic_events(steps=4, finished=False))
    s.apply(ev.Error(seq=99, t=s.t_last, message="loss is NaN at step 3", arm="targeted"))
    assert "stopped: loss is NaN at step 3" in arm_card_text(s, "targeted", 60).plain


def test_samples_text(state):
    palette = Palette(named={"in-s": Style(color="#e8c15a")})
    text = samples_text(state, palette)
    plain = text.plain
    assert "before training" in plain and "after epoch 2" in plain and "Δp" in plain
    assert any("#e8c15a" in str(span.style) for span in text.spans)  # tokens of S are highlighted
    assert not text.style and all("dim" not in str(span.style) for span in text.spans if "#e8c15a" in str(span.style))


def test_time_table_and_prediction(state):
    assert state.arms["targeted"].predicted_saving == pytest.approx(0.28)
    table = time_table(state)
    assert [c.header for c in table.columns] == [
        "arm",
        "t_1",
        "t_2",
        "T",
        "r measured",
        "r FLOP model",
        "r 95 % interval",
    ]


def test_log_text_is_newest_first(state):
    s = RunState().apply_all(synthetic_events(steps=4, finished=False))
    s.apply(ev.Warning(seq=98, t=s.t_last, message="first"))
    s.apply(ev.Error(seq=99, t=s.t_last + 1, message="second", arm="full", fatal=True))
    lines = log_text(s).plain.splitlines()
    assert "second" in lines[0] and "full" in lines[0] and "first" in lines[1]
    assert log_text(RunState()).plain == "no warnings or errors"


def test_nan_everywhere_does_not_break_views():
    s = RunState().apply_all(synthetic_events(steps=4, finished=False))
    s.apply(ev.Step(seq=100, t=s.t_last, step=4, epoch=0, arms={"full": ev.ArmStep(loss=None, dt=None, lr=None)}))
    assert math.isnan(s.arms["full"].loss_last)
    assert "loss –" in arm_card_text(s, "full", 40).plain
    charts.loss_series(s)
    charts.scatter_series(s)
