"""The header's progress line: the epochs that will really run, and the ETA (compact at 80 columns)."""

from __future__ import annotations

from engine.log import events as ev
from engine.log.state import RunState
from freeze_tui.app.widgets.header_bar import SourceView, progress_line


def running(max_steps: int) -> RunState:
    config = {"epochs": 3, "max_steps": max_steps, "samples": 0}
    start = ev.RunStart(t=0.0, config=config, data={"n_train_batches": 122}, arms=[ev.ArmRecord(name="full")])
    steps = [ev.Step(t=10.0 + 2 * k, step=k, epoch=0, arms={"full": ev.ArmStep(3.0, 2.0, 1e-3)}) for k in range(5)]
    return RunState().apply_all([ev.Header(t=0.0), start, ev.StepZero(t=5.0), *steps])


def test_max_steps_shows_the_epochs_that_run():
    assert "epoch 1/1" in progress_line(running(8), SourceView(mode="live")).plain
    assert "epoch 1/3" in progress_line(running(0), SourceView(mode="live")).plain


def test_the_eta_is_in_the_header_compact_when_narrow():
    state = running(0)  # 361 steps of 2 s left, plus 3 validations of about 5 s
    wide = progress_line(state, SourceView(mode="live"), width=160).plain
    narrow = progress_line(state, SourceView(mode="live"), width=80).plain
    assert "ETA ~12m 17s" in wide, wide
    assert "ETA ~12m │" in narrow and narrow.index("ETA") < narrow.index("elapsed"), narrow


def test_an_eta_under_a_minute_is_in_whole_seconds():
    from freeze_tui.draw.eta_text import eta_text

    config = {"epochs": 1, "max_steps": 0, "samples": 0}
    start = ev.RunStart(t=0.0, config=config, data={"n_train_batches": 10}, arms=[ev.ArmRecord(name="full")])
    steps = [ev.Step(t=10.0 + 2.4 * k, step=k, epoch=0, arms={"full": ev.ArmStep(3.0, 2.0, 1e-3)}) for k in range(5)]
    state = RunState().apply_all([start, ev.StepZero(t=5.0), *steps])
    assert eta_text(state) == "ETA ~17s"  # 5 steps of 2.4 s and a validation of 5 s: 17.0, not 17.0s
