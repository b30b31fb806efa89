"""--checkpoint-every: N steps or a time (90s, 30m, 2h). No torch; RunConfig validates with it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.core.errors import FreezeTuiError

EVERY = re.compile(r"^\s*(\d+)\s*(s|m|h)?\s*$")
UNITS = {"s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class Every:
    """--checkpoint-every: N steps, or a time (s, m, h)."""

    steps: int = 0
    seconds: float = 0.0

    def due(self, steps_since: int, seconds_since: float) -> bool:
        if self.steps:
            return steps_since >= self.steps
        return bool(self.seconds) and seconds_since >= self.seconds


def parse_every(text: str) -> Every:
    m = EVERY.match(str(text))
    if not m or int(m.group(1)) <= 0:
        raise FreezeTuiError(
            f"--checkpoint-every {text!r} must be a positive number of steps (e.g. 500) or a time such as 90s, 30m, 2h"
        )
    n, unit = int(m.group(1)), m.group(2)
    return Every(seconds=float(n * UNITS[unit])) if unit else Every(steps=n)
