"""What the engine thread is doing right now, for the heartbeat thread to report. No torch.

The loop calls `enter` at each phase change and at each step: one tuple assignment (atomic under
the GIL) and a clock read, no lock and no device sync, so it costs nothing measurable per step.
"""

from __future__ import annotations

import time

# Phases, in the order a run goes through them; the viewer words them (freeze_tui/app/activity.py).
PHASES = (
    "starting",
    "load_model",
    "tokenize",
    "arms",
    "sample",
    "step",
    "paused",
    "validate",
    "save",
    "finish",
)


class Activity:
    def __init__(self) -> None:
        self._now: tuple[str, int, int, float] = ("starting", -1, -1, time.monotonic())

    def enter(self, phase: str, step: int = -1, epoch: int = -1) -> None:
        """The engine starts `phase` (step/epoch: which one, -1 when none applies)."""
        self._now = (phase, step, epoch, time.monotonic())

    def read(self) -> tuple[str, int, int, float]:
        """(phase, step, epoch, seconds in that phase so far)."""
        phase, step, epoch, since = self._now
        return phase, step, epoch, time.monotonic() - since
