"""Folding a batch into the state in time-boxed slices (the UI side of the bridge)."""

from engine.log.state import RunState
from freeze_tui.app.bridge import FOLD_CHUNK, EventsArrived, fold
from tests.synthetic_log import synthetic_events


def test_a_batch_is_folded_whole_within_budget_and_acknowledged():
    events = list(synthetic_events(steps=50))
    message = EventsArrived(events)
    state = RunState()
    assert fold(state, message, budget=10.0) is None
    assert message._applied.is_set() and state.n_events == len(events)


def test_over_budget_the_rest_comes_back_and_the_ack_waits_for_it():
    events = list(synthetic_events(steps=600))
    message = EventsArrived(events)
    state = RunState()
    rest = fold(state, message, budget=0.0)
    assert rest is not None and state.n_events == FOLD_CHUNK
    assert not message._applied.is_set()
    while rest is not None:
        rest = fold(state, rest, budget=0.0)
    assert message._applied.is_set() and state.n_events == len(events) and state.status == "finished"
