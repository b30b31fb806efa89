"""Stop and pause flags, set from any thread, checked by the loop at every step boundary; and what the
loop is doing now (read by the heartbeat thread). No torch."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field

from engine.core.activity import Activity

# What stops a run at the next step boundary, in every process that handles it (the console, a rank, a
# background run's viewer): Ctrl-C, a scheduler's SIGTERM, a dropped SSH connection's SIGHUP
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@dataclass
class Control:
    stop: threading.Event = field(default_factory=threading.Event)
    pause: threading.Event = field(default_factory=threading.Event)
    activity: Activity = field(default_factory=Activity)

    def wait_while_paused(self) -> None:
        while self.pause.is_set() and not self.stop.is_set():
            self.stop.wait(0.05)
