"""The replay keys: speed up / down, seek ±SEEK_STEPS steps, jump to the end (rows of modes.KEYS).

The source does the seeking (engine.log.sources.ReplaySource.seek_to): forward it plays the events
up to the target at once; back it starts the log over, and its header arriving again tells the app
to fold from a fresh RunState (`bridge.restart_if_rewound`), so the one reducer stays forward-only."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from textual.app import App

from engine.log.sources import EventSource
from engine.log.state import RunState
from freeze_tui.app import modes
from freeze_tui.app.bridge import Inbox, start_bridge

SPEEDS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)  # then max
SEEK_STEPS = 10
ACTIONS = frozenset({"replay_speed", "seek", "seek_end"})

if TYPE_CHECKING:
    _Base = App[None]
else:
    _Base = object


def next_speed(speed: float | None, direction: int) -> float | None:
    """The next speed of the ladder up (+1) or down (-1); None is max, above the ladder's top."""
    if speed is None:
        return None if direction > 0 else SPEEDS[-1]
    if direction > 0:
        return next((s for s in SPEEDS if s > speed), None)
    return next((s for s in reversed(SPEEDS) if s < speed), SPEEDS[0])


def speed_label(speed: float | None) -> str:
    return "max" if speed is None else f"{speed:g}"


class ReplayKeys(_Base):
    """Mixed into FreezeApp: the replay's speed and seek actions."""

    source: EventSource
    state: RunState
    inbox: Inbox
    source_finished: bool
    _dirty: bool

    if TYPE_CHECKING:

        def run_mode(self) -> str: ...

    def replay_offers(self, action: str, parameters: tuple) -> bool:
        """Whether the footer offers a replay key now: only in a replay, and past its end only seeking back."""
        source = self.source
        if self.run_mode() != modes.REPLAY or not hasattr(source, "seek_to"):
            return False
        going_back = action == "seek" and parameters and parameters[0] < 0
        return bool(going_back) or not getattr(source, "done", True)

    @property
    def replay(self) -> Any:
        """The source as a replay (ReplaySource or MergedSource of them): replay_offers checked that it is."""
        return self.source

    def action_replay_speed(self, direction: int) -> None:
        source = self.replay
        speed = next_speed(source.speed, direction)
        source.set_speed(speed)
        self.notify(f"replay ×{speed_label(speed)}", timeout=2)

    def action_seek(self, steps: int) -> None:
        source = self.replay
        target = max(-1, self.state.step + steps)
        if steps < 0 and source.speed is None and not source.paused:
            source.pause()  # at max speed it would be back at the end at once
        source.seek_to(target, rewind=steps < 0)
        self._restart_reading()
        where = "the start" if target < 0 else f"step {target + 1}"
        paused = "; paused: p plays on" if source.paused else ""
        self.notify(f"replay: to {where}{paused}", timeout=3)

    def action_seek_end(self) -> None:
        self.replay.seek_to(math.inf)
        self.notify("replay: to the end", timeout=2)

    def _restart_reading(self) -> None:
        """After the replay ended the bridge has stopped: a seek back needs it again."""
        if self.source_finished:
            self.source_finished = False
            start_bridge(self, self.source, self.inbox)
        self._dirty = True
