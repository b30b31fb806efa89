"""Issue 21, item 13: `--seeds N` stopped part-way summarises the finished seeds only and says how many."""

from __future__ import annotations

import pytest

from engine.log import events as ev
from engine.log.state import RunState
from engine.log.summary import arm_rows, summarize
from freeze_tui.draw.report import status_parts

STEPS = 6
ARMS = [ev.ArmRecord(name="full", spec="full"), ev.ArmRecord(name="targeted", spec="targeted")]


def replicate(k: int, *, steps: int = STEPS, loss: float = 2.0) -> list[ev.Event]:
    """Seed k: `steps` steps of both arms (targeted 40 % faster), one epoch_end when it ran them all."""
    out: list[ev.Event] = [ev.Replicate(replicate=k, of=3, seed=k)]
    for i in range(steps):
        arms = {"full": ev.ArmStep(loss=loss, dt=1.0), "targeted": ev.ArmStep(loss=loss + 0.1, dt=0.6)}
        out.append(ev.Step(step=i, epoch=0, arms=arms))
    if steps == STEPS:
        epoch = {
            name: ev.ArmEpoch(loss_mean=loss, val_loss=loss, t_total=steps * dt)
            for name, dt in (("full", 1.0), ("targeted", 0.6))
        }
        out.append(ev.EpochEnd(epoch=0, arms=epoch))
    return out


def run(*, last_steps: int, status: str) -> RunState:
    start = ev.RunStart(config={"epochs": 1, "seeds": 3, "max_steps": 0}, data={"n_train_batches": STEPS}, arms=ARMS)
    events = [ev.Header(), start, *replicate(0, loss=2.0), *replicate(1, loss=3.0)]
    events += replicate(2, steps=last_steps, loss=9.0)  # a wild partial seed: must not move the means
    return RunState().apply_all([*events, ev.RunEnd(status=status)])


def test_a_seed_stopped_part_way_is_left_out_of_the_summary():
    state = run(last_steps=2, status="stopped")
    assert not state.replicate_complete and len(state.finished_replicates) == 2
    rows = {row.arm: row for row in arm_rows(state)}
    assert rows["full"].replicates == 2
    assert rows["full"].val_loss == pytest.approx(2.5)  # the mean of seeds 1 and 2, not 9.0's pull
    assert summarize(state)["replicates"] == 2
    assert status_parts(state) == (
        "The run stopped",
        " with 2 of 3 seeds finished: numbers cover the finished seeds only.",
    )


def test_a_seed_that_ran_all_its_steps_counts_even_when_the_stop_came_after():
    state = run(last_steps=STEPS, status="stopped")
    assert state.replicate_complete and len(state.finished_replicates) == 3
    assert summarize(state)["replicates"] == 3
    assert "3 of 3 seeds finished" in status_parts(state)[1]


def test_a_run_stopped_in_its_first_seed_still_covers_what_ran():
    start = ev.RunStart(config={"epochs": 1, "seeds": 3}, data={"n_train_batches": STEPS}, arms=ARMS)
    state = RunState().apply_all([ev.Header(), start, *replicate(0, steps=2), ev.RunEnd(status="stopped")])
    assert state.finished_replicates == [] and summarize(state)["replicates"] == 1
    assert status_parts(state)[1] == " with 0 of 3 seeds finished: numbers cover only what ran."
