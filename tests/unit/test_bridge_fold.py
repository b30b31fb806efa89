"""The bridge's inbox and the UI's time-boxed fold (freeze_tui/app/bridge.py), without an App."""

import threading

from engine.log import events as ev
from engine.log.state import RunState
from freeze_tui.app.bridge import FOLD_CHUNK, EventsArrived, Inbox, fold
from tests.synthetic_log import synthetic_events


def never() -> bool:
    return False


def test_a_batch_is_folded_whole_within_budget():
    events = list(synthetic_events(steps=50))
    inbox = Inbox()
    assert inbox.put(events, never) is True  # was empty: the UI is told
    assert inbox.put([], never) is False  # already pending: one message is enough
    state = RunState()
    assert fold(state, inbox, budget=10.0) is False
    assert len(inbox) == 0 and state.n_events == len(events) and state.status == "finished"


def test_over_budget_the_rest_stays_pending_in_order():
    events = list(synthetic_events(steps=600))
    inbox, state = Inbox(), RunState()
    inbox.put(events, never)
    assert fold(state, inbox, budget=0.0) is True
    assert state.n_events == FOLD_CHUNK and len(inbox) == len(events) - FOLD_CHUNK
    while fold(state, inbox, budget=0.0):
        pass
    assert state.n_events == len(events) and state.status == "finished" and len(inbox) == 0


def test_the_worker_waits_for_room_and_nothing_is_lost():
    events = list(synthetic_events(steps=200))
    inbox, state = Inbox(limit=100), RunState()

    def worker():
        for start in range(0, len(events), 60):
            inbox.put(events[start : start + 60], never)

    thread = threading.Thread(target=worker)
    thread.start()
    seen_most = 0
    while thread.is_alive() or len(inbox):
        seen_most = max(seen_most, len(inbox))
        fold(state, inbox, budget=0.0)
    thread.join()
    assert seen_most < 100 + 60  # bounded: at most one batch beyond the limit
    assert state.n_events == len(events) and state.status == "finished"


def test_a_cancelled_worker_stops_waiting_for_room():
    inbox = Inbox(limit=1)
    inbox.put([ev.Header()], never)
    assert inbox.put([ev.Header()], lambda: True) is None and len(inbox) == 1
    assert inbox.wait_empty(lambda: True) is False


def test_a_header_after_events_starts_the_state_over():
    """A replay sought back sends its log again from the header: the slice stops before it."""
    first = list(synthetic_events(steps=5, finished=False))
    again = list(synthetic_events(steps=3, finished=False))
    inbox, state = Inbox(), RunState()
    inbox.put(first + again, never)
    assert inbox.take(10_000) == first and len(inbox) == len(again)
    inbox, state = Inbox(), RunState()
    inbox.put(first + again, never)
    assert fold(state, inbox, budget=10.0) is False
    assert state.step == 2 and state.n_events == len(again)  # started over at the second header


def test_queued_arrivals_collapse_into_one():
    assert EventsArrived().can_replace(EventsArrived())
