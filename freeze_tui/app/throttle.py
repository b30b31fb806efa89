"""Rate limits for costly redraws (plotext charts, the ΔW table) on top of the app's 10/s tick."""

from __future__ import annotations

import time
from collections.abc import Callable


class ThrottledRedraw:
    """Calls `redraw(state)` now, or once later when called too soon; the latest state wins.

    Too soon: within `min_interval` of the last redraw, or within `cost_factor` times what
    `cost()` reports the last redraw took (so redraws use at most 1/(1 + cost_factor) of the
    UI thread and keys stay responsive however fast events come).
    """

    def __init__(
        self,
        widget,
        redraw: Callable,
        *,
        min_interval: float = 0.0,
        cost_factor: float = 0.0,
        cost: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.widget, self.redraw = widget, redraw
        self.min_interval, self.cost_factor, self.cost = min_interval, cost_factor, cost
        self.last = -1e9
        self.timer = None
        self.state = None

    @property
    def pending(self) -> bool:
        """A redraw is scheduled for later."""
        return self.timer is not None

    def __call__(self, state) -> None:
        self.state = state
        delay = self.last + max(self.min_interval, self.cost_factor * self.cost()) - time.monotonic()
        if delay > 0:
            if self.timer is None:
                self.timer = self.widget.set_timer(delay, self._flush)
            return
        self.last = time.monotonic()
        self.redraw(state)

    def _flush(self) -> None:
        self.timer = None
        self(self.state)
