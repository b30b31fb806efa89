"""The views' one redraw rule (freeze_tui/app/widgets/state_view.py): draw again only when the key changed."""

from __future__ import annotations

from engine.log.state import RunState
from freeze_tui.app.widgets.state_view import StateView
from freeze_tui.draw.colors import PLAIN
from tests.synthetic_log import synthetic_events


class Counting(StateView):
    def __init__(self) -> None:
        self.drawn: list[int] = []
        self.requested = 0

    def key(self, state: RunState) -> int:
        return len(state.steps)

    def draw(self, state: RunState) -> None:
        self.drawn.append(len(state.steps))


class Deferred(Counting):
    """A throttled view: `request` only notes the state; a later `redraw` draws it."""

    def request(self, state: RunState) -> None:
        self.requested += 1


def test_a_view_draws_first_then_only_when_its_key_changes():
    events = list(synthetic_events(steps=6))
    half = len(events) // 2
    mid = len(RunState().apply_all(events[:half]).steps)
    assert 0 < mid < 6
    state, view = RunState(), Counting()
    view.show(state)  # an empty state is drawn too (the first show always draws)
    view.show(state)
    state.apply_all(events[:half])
    view.show(state)
    view.show(state)
    state.apply_all(events[half:])
    view.show(state)
    assert view.drawn == [0, mid, 6]
    assert view.palette is PLAIN  # no app: text attributes only


def test_a_throttled_view_asks_until_it_has_drawn_the_latest_key():
    state, view = RunState().apply_all(synthetic_events(steps=3)), Deferred()
    view.show(state)
    view.show(state)  # not drawn yet: asked again
    assert view.requested == 2 and view.drawn == []
    view.redraw(state)
    view.show(state)
    assert view.requested == 2 and view.drawn == [3]
