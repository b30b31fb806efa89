"""Best beside last (issue 20): the lowest smoothed training loss and validation loss per arm, folded by
RunState, and where they are shown: arm cards (wide only), headless progress and summary; and the log y axis
of the loss chart (the difference view stays linear)."""

from __future__ import annotations

import math

from engine.log import events as ev
from engine.log.best import SMOOTHING, BestLoss, best_of, best_validation
from engine.log.state import RunState
from freeze_tui.app.widgets.arm_card import arm_card_text
from freeze_tui.draw import charts
from freeze_tui.draw.best_values import progress_value, summary_lines
from freeze_tui.draw.series import ema_weighted
from tests.unit.test_headless_progress import ARMS, printed, two_seeds_three_steps

LOSSES = [5.0, 4.0, math.nan, 3.0, 0.5, 6.0, 6.0, 6.0, math.inf, 2.5]


def test_best_is_the_minimum_of_the_charts_smoothed_curve_not_of_the_raw_losses():
    best = best_of(LOSSES, range(len(LOSSES)))
    curve = ema_weighted(LOSSES, SMOOTHING)  # the chart's default curve
    finite = [(v, i) for i, v in enumerate(curve) if math.isfinite(v)]
    assert best.best == min(finite)[0] and best.step == min(finite)[1]
    assert best.best > 0.5  # the one lucky batch (0.5) is damped, not reported as the best
    assert math.isclose(best.smoothed, [v for v in curve if math.isfinite(v)][-1])
    assert math.isnan(BestLoss().best) and math.isnan(BestLoss().smoothed) and best_of([math.nan]).step == -1


def test_best_validation_skips_missing_values_and_says_its_epoch():
    epochs = [
        (0, ev.ArmEpoch(3.0, val_loss=2.9)),
        (1, ev.ArmEpoch(2.5, val_loss=None)),
        (2, ev.ArmEpoch(2.4, val_loss=2.7)),
        (3, ev.ArmEpoch(2.3, val_loss=2.8)),
    ]
    assert best_validation(epochs) == (2.7, 2)
    assert best_validation([(0, ev.ArmEpoch(3.0, val_loss=None))])[1] == -1 and best_validation([])[1] == -1


def _state(losses, vals=()) -> RunState:
    events: list[ev.Event] = [ev.Header(t=0.0), ev.RunStart(t=0.0, config={"epochs": 2}, arms=ARMS)]
    for i, loss in enumerate(losses):
        rec = {"full": ev.ArmStep(loss, 1.0, 0.001), "targeted": ev.ArmStep(loss + 1.0, 1.0, 0.001)}
        events.append(ev.Step(t=1.0 + i, step=i, epoch=0, arms=rec))
    for epoch, val in enumerate(vals):
        arms = {"full": ev.ArmEpoch(2.0, val_loss=val), "targeted": ev.ArmEpoch(2.0, val_loss=val + 1.0)}
        events.append(ev.EpochEnd(t=100.0 + epoch, epoch=epoch, arms=arms))
    return RunState().apply_all(events)


def test_run_state_folds_the_best_training_loss_each_step_and_a_resume_refolds_it():
    state = _state(LOSSES)
    assert state.arms["full"].best_loss == best_of(LOSSES, range(len(LOSSES)))
    assert math.isclose(state.arms["targeted"].best_loss.best, state.arms["full"].best_loss.best + 1.0)
    state.apply(ev.Resumed(t=50.0, step=3, epoch=0))  # steps 3… were past the checkpoint: undone
    assert state.arms["full"].best_loss == best_of(LOSSES[:3], range(3))


def test_wide_cards_show_best_beside_last_and_narrow_ones_stay_as_they_were():
    state = _state(LOSSES, vals=[3.1, 2.9, 3.0])
    wide = arm_card_text(state, "full", 52).plain
    best = state.arms["full"].best_loss.best
    assert f"loss 2.500 smoothed best {best:.3f}" in wide and "val 3.000  best val 2.900 (ep 2)" in wide
    narrow = arm_card_text(state, "full", 25).plain
    assert "best" not in narrow and "loss 2.500" in narrow
    assert "best" not in arm_card_text(_state([math.nan]), "full", 52).plain  # nothing finite yet: no best


def test_headless_progress_and_summary_say_the_best_values():
    state = _state(LOSSES, vals=[3.1, 2.9])
    assert progress_value(state.arms["full"]) == f"2.500 (smoothed best {state.arms['full'].best_loss.best:.3f})"
    lines = summary_lines(state)
    assert "the lowest smoothed loss" in lines[0] and "val 2.900 (epoch 2; last 2.900)" in lines[1]
    assert summary_lines(_state([])) == []
    events = [
        ev.Header(t=0.0),
        ev.RunStart(t=0.0, config={"epochs": 1, "device": "cpu"}, data={"n_train_batches": 4}, arms=ARMS),
        *(
            ev.Step(
                t=1.0 + i, step=i, epoch=0, arms={"full": ev.ArmStep(3.0 - i, 1.0), "targeted": ev.ArmStep(4.0, 1.0)}
            )
            for i in range(3)
        ),
        ev.EpochEnd(
            t=9.0, epoch=0, arms={"full": ev.ArmEpoch(2.0, val_loss=2.2), "targeted": ev.ArmEpoch(4.0, val_loss=4.1)}
        ),
        ev.RunEnd(t=10.0, status="finished"),
    ]
    wide = printed(events, width=160)
    progress = next(line for line in wide.splitlines() if line.startswith("epoch 1/1"))
    assert "full 1.000 (smoothed best 1.930)" in progress, progress
    assert "best values (train: the lowest smoothed loss" in wide and "val 2.200 (epoch 1; last 2.200)" in wide
    narrow = [line for line in printed(events, width=80).splitlines() if line.startswith("epoch 1/1")]
    assert narrow and all("best" not in line for line in narrow)  # narrow progress: the last loss only
    seeds = printed(two_seeds_three_steps(), width=160)
    assert "EMA 0.9 as the chart's default curve; seed 2 of 2):" in seeds  # --seeds: the last seed's arms


def test_log_y_is_for_the_loss_curves_only():
    assert charts.log_y(charts.ChartOptions(log_y=True))
    assert not charts.log_y(charts.ChartOptions(log_y=True, difference=True))  # differences can be negative
    assert not charts.log_y(charts.ChartOptions())
    assert "log y" in charts.ChartOptions(log_y=True).describe()
    assert "log y" not in charts.ChartOptions(log_y=True, difference=True).describe()
    logged = charts.to_log([charts.Series("a", [0.0, 1.0, 2.0, 3.0], [10.0, 0.0, -1.0, 1000.0], (1, 2, 3))])
    assert logged == [charts.Series("a", [0.0, 3.0], [1.0, 3.0], (1, 2, 3))]  # zero and negative dropped
    ticks, labels = charts.log_ticks(logged, n=3)
    assert ticks == [1.0, 2.0, 3.0] and labels == ["10.0", "100", "1000"]
    assert charts.log_ticks([]) == ([], [])
    assert [charts.log_tick_label(math.log10(v)) for v in (2.5, 5.4128, 0.0314)] == ["2.50", "5.41", "0.0314"]
