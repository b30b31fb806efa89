"""The one way a view redraws from RunState: `show(state)` is called on every app tick (at most 10/s),
and the view draws again only when `key(state)` (what it depends on) changed since its last draw."""

from __future__ import annotations

from collections.abc import Hashable

from rich.console import RenderableType
from textual.containers import VerticalScroll
from textual.widgets import Static

from engine.log.state import RunState
from freeze_tui.draw.colors import PLAIN, Palette

_NEVER = object()  # no key equals it: the first show draws


class StateView:
    """Mixed into a view widget: override `key` and `draw`; a costly view overrides `request` to
    throttle (freeze_tui/app/throttle.py), which must end in `redraw(state)`."""

    _drawn: Hashable = _NEVER

    def key(self, state: RunState) -> Hashable:
        raise NotImplementedError

    def draw(self, state: RunState) -> None:
        raise NotImplementedError

    def show(self, state: RunState) -> None:
        if self.key(state) != self._drawn:
            self.request(state)

    def request(self, state: RunState) -> None:
        self.redraw(state)

    def redraw(self, state: RunState) -> None:
        self._drawn = self.key(state)
        self.draw(state)

    @property
    def palette(self) -> Palette:
        return getattr(getattr(self, "app", None), "palette", PLAIN)


class TextView(StateView, VerticalScroll):
    """A scrolling view of one renderable, the Static `#<TEXT_ID>`."""

    TEXT_ID = ""

    def compose(self):
        yield Static(id=self.TEXT_ID)

    def text(self, state: RunState) -> RenderableType:
        raise NotImplementedError

    def draw(self, state: RunState) -> None:
        self.query_one(f"#{self.TEXT_ID}", Static).update(self.text(state))
