"""Stop and pause flags, set from any thread, checked by the loop at every step boundary. No torch."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Control:
    stop: threading.Event = field(default_factory=threading.Event)
    pause: threading.Event = field(default_factory=threading.Event)

    def wait_while_paused(self) -> None:
        while self.pause.is_set() and not self.stop.is_set():
            self.stop.wait(0.05)
