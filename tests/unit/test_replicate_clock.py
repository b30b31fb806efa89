"""With --seeds, each replicate's steps are placed on the wall-time axis by their own times."""

from __future__ import annotations

import pytest

from engine.log import events as ev
from engine.log.state import RunState
from freeze_tui.draw.charts import x_of


def two_replicates() -> list[ev.Event]:
    """Replicate 0 steps at t = 0..90 s, replicate 1 at t = 210..300 s (10 steps each, one arm)."""
    out: list[ev.Event] = [ev.Header(t=0.0), ev.RunStart(t=0.0, arms=[ev.ArmRecord(name="full", spec="full")])]
    for replicate, t0 in ((0, 0.0), (1, 200.0)):
        out.append(ev.Replicate(t=t0, replicate=replicate, of=2, seed=replicate))
        out += [ev.Step(t=t0 + 10.0 * (k + 1 if replicate else k), step=k, epoch=0) for k in range(10)]
    return out


def test_second_replicate_uses_its_own_clock():
    state = RunState().apply_all(two_replicates())
    assert state.replicate == 1 and len(state.steps) == len(state.step_t) == 10
    assert x_of(state, "time", 9) == pytest.approx(300.0)
    assert x_of(state.past[0], "time", 9) == pytest.approx(90.0)


def per_replicate_fields() -> set[str]:
    """The fields `_start_replicate` sets: those a new replicate starts afresh."""
    probe = RunState()
    probe.__dict__.clear()
    probe.arms = {}
    probe._start_replicate()
    return set(probe.__dict__)


def test_a_new_replicate_starts_every_per_replicate_field_afresh():
    fresh = RunState().apply_all(two_replicates()[:3])  # header, run_start, replicate 0: nothing recorded yet
    state = RunState().apply_all(two_replicates()[:14])  # ... replicate 0's steps and replicate 1's start
    assert {"steps", "step_t", "arms", "dw_history", "pre_samples"} <= per_replicate_fields()
    for name in per_replicate_fields():
        assert getattr(state, name) == getattr(fresh, name), name
