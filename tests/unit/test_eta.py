"""ETA from synthetic event streams: step rate × steps left (all replicates) + measured passes."""

from __future__ import annotations

import pytest

from engine.log import events as ev
from engine.log.eta import eta, step_seconds
from engine.log.state import RunState

ARMS = [ev.ArmRecord(name="full", spec="full"), ev.ArmRecord(name="targeted", spec="targeted")]


def start(epochs=2, per_epoch=10, max_steps=0, seeds=1, samples=4) -> list[ev.Event]:
    config = {"epochs": epochs, "max_steps": max_steps, "seeds": seeds, "samples": samples}
    data = {"n_train_batches": per_epoch, "n_val_batches": 6}
    return [ev.Header(t=0.0), ev.RunStart(t=0.0, config=config, data=data, arms=ARMS)]


def pre_and_zero(t0: float, sample_s: float = 4.0, zero_s: float = 6.0) -> list[ev.Event]:
    """A pre sample set taking sample_s, then a step-zero validation taking zero_s."""
    return [
        ev.Sample(t=t0 + sample_s / 2, phase="pre", arm="*", index=0),
        ev.Sample(t=t0 + sample_s, phase="pre", arm="*", index=1),
        ev.StepZero(t=t0 + sample_s + zero_s),
    ]


def steps(t0: float, first: int, n: int, epoch: int, dt: float = 2.0) -> list[ev.Event]:
    rec = {"full": ev.ArmStep(1.0, dt / 2, 0.001), "targeted": ev.ArmStep(1.0, dt / 2, 0.001)}
    return [ev.Step(t=t0 + dt * (k + 1), step=first + k, epoch=epoch, arms=rec) for k in range(n)]


def epoch_end(t: float, epoch: int, sample_s_per_arm: float) -> list[ev.Event]:
    rec = {"full": ev.ArmEpoch(loss_mean=1.0), "targeted": ev.ArmEpoch(loss_mean=1.0)}
    out: list[ev.Event] = [ev.EpochEnd(t=t, epoch=epoch, arms=rec)]
    for k, arm in enumerate(("full", "targeted")):
        out.append(ev.Sample(t=t + sample_s_per_arm * (k + 1), phase="epoch", arm=arm, epoch=epoch))
    return out


def test_no_eta_before_the_first_step_nor_after_the_end():
    state = RunState().apply_all(start() + pre_and_zero(0.0))
    assert eta(state) is None
    state.apply(ev.RunEnd(t=100.0, status="finished"))
    assert eta(state) is None


def test_first_epoch_estimates_sampling_and_says_so():
    events = start() + pre_and_zero(0.0) + steps(10.0, 0, 5, 0)  # 5 steps of 2 s each
    state = RunState().apply_all(events)
    per_step, used = step_seconds(state)
    assert per_step == pytest.approx(2.0) and used == 4
    got = eta(state)
    assert got is not None and got.approximate  # no epoch-end pass measured yet
    assert got.steps_s == pytest.approx(15 * 2.0)
    # validation: 2 epoch ends, costed like the step-zero pass (6 s) until one is seen
    assert got.validation_s == pytest.approx(2 * 6.0)
    # sampling: 2 epoch sets × 2 arms, costed like the pre set (4 s for all arms) per arm
    assert got.sampling_s == pytest.approx(2 * 2 * 4.0)


def test_measured_passes_replace_the_estimate():
    events = start() + pre_and_zero(0.0) + steps(10.0, 0, 10, 0)  # last step at t = 30
    events += epoch_end(30.0 + 9.0, 0, 1.5)  # validation 9 s, samples 1.5 s per arm
    events += steps(42.0, 10, 4, 1)
    state = RunState().apply_all(events)
    got = eta(state)
    assert got is not None and not got.approximate
    assert got.steps_s == pytest.approx(6 * 2.0)
    assert got.validation_s == pytest.approx(9.0)  # one epoch end left
    assert got.sampling_s == pytest.approx(2 * 1.5)


def test_the_epoch_boundary_is_not_a_step_time():
    events = start() + pre_and_zero(0.0) + steps(10.0, 0, 10, 0) + epoch_end(60.0, 0, 1.0)
    events += steps(70.0, 10, 2, 1)  # the 40 s gap before step 10 is validation, not a step
    state = RunState().apply_all(events)
    assert step_seconds(state)[0] == pytest.approx(2.0)


def test_max_steps_counts_only_the_epochs_that_run():
    events = start(epochs=3, per_epoch=10, max_steps=4) + pre_and_zero(0.0) + steps(10.0, 0, 3, 0)
    got = eta(RunState().apply_all(events))
    assert got is not None
    assert got.steps_s == pytest.approx(1 * 2.0)
    assert got.validation_s == pytest.approx(6.0)  # one epoch end, not three


def test_seeds_count_every_replicate():
    events = start(epochs=1, per_epoch=10, seeds=2) + [ev.Replicate(t=0.0, replicate=0, of=2)]
    events += pre_and_zero(0.0) + steps(10.0, 0, 5, 0)
    got = eta(RunState().apply_all(events))
    assert got is not None
    assert got.steps_s == pytest.approx((5 + 10) * 2.0)
    # this replicate's epoch end + the next replicate's step-zero and epoch-end passes
    assert got.validation_s == pytest.approx(3 * 6.0)
    # sets: 1 epoch set here, 1 in the next replicate (2 arms each), plus the next one's pre set
    assert got.sampling_s == pytest.approx(2 * 2 * 4.0 + 4.0)


def test_without_samples_there_is_no_sampling_allowance():
    events = start(samples=0) + [ev.StepZero(t=5.0)] + steps(10.0, 0, 5, 0)
    got = eta(RunState().apply_all(events))
    assert got is not None and got.sampling_s == 0.0


def test_ticking_counts_down_and_stops_at_zero():
    got = eta(RunState().apply_all(start() + pre_and_zero(0.0) + steps(10.0, 0, 19, 0)))
    assert got is not None
    assert got.left(5.0) == pytest.approx(got.seconds - 5.0)
    assert got.left(1e9) == 0.0
