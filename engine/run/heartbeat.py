"""The heartbeat: a daemon thread that emits what the engine is doing, while it lives. No torch.

It reads the loop's Activity (engine/core/activity.py) and, every GPU_EVERY_S, the GPU readings; the
loop itself does nothing per step but a tuple assignment. A viewer that follows the log tells a
busy engine ("step 37 running 12 s") from a dead one (no heartbeat, or its pid gone).
"""

from __future__ import annotations

import os
import socket
import threading
import time

from msgspec import UNSET

from engine.core.activity import Activity
from engine.log.events import Heartbeat, Warning
from engine.run.gpu import GpuSampler
from engine.run.session_info import overloaded, session_readings
from engine.run.system import SystemSampler

HEARTBEAT_S = 1.0  # the liveness contract asks for at least every 2 s; half of it leaves room for a slow disk
GPU_EVERY_S = 3.0


class HeartbeatThread(threading.Thread):
    def __init__(self, activity: Activity, emit, interval: float = HEARTBEAT_S) -> None:
        super().__init__(name="freeze-tui-heartbeat", daemon=True)
        self.activity, self.emit, self.interval = activity, emit, interval
        self.gpus: GpuSampler | None = None  # set once the run's device is known
        self._halt = threading.Event()
        self._gpus_due = 0.0
        self._pid, self._host = os.getpid(), socket.gethostname()
        self._load_warned = False  # one warning per run: the load is in every heartbeat anyway
        self.system: SystemSampler | None = None  # made on the thread's first beat (psutil's import is not free)
        self._system_due = 0.0

    def run(self) -> None:
        try:
            while True:
                self.beat()
                if self._halt.wait(self.interval):
                    return
        except Exception:  # a broken heartbeat must not print over the app; viewers see it stop
            return

    def beat(self) -> None:
        phase, step, epoch, seconds = self.activity.read()
        session = session_readings()
        self.emit(
            Heartbeat(
                phase=phase,
                seconds=seconds,
                step=step,
                epoch=epoch,
                pid=self._pid,
                host=self._host,
                gpus=self._gpus(),
                session=session,
                system=self._system() or UNSET,  # left out between readings: older logs' bytes stay as they were
            )
        )
        warning = overloaded(session) if phase == "step" and not self._load_warned else ""
        if warning:
            self._load_warned = True
            self.emit(Warning(message=warning))

    def _gpus(self) -> list:
        now = time.monotonic()
        if self.gpus is None or now < self._gpus_due:
            return []
        self._gpus_due = now + GPU_EVERY_S
        return self.gpus.read()

    def _system(self) -> dict:
        now = time.monotonic()
        if self.system is None:  # the first reading of CPU % needs an interval behind it: from here
            self.system, self._system_due = SystemSampler(), now + self.interval
            return {}
        if now < self._system_due:
            return {}
        self._system_due = now + GPU_EVERY_S
        return self.system.read()

    def halt(self) -> None:
        """Stop beating and wait for the thread, so nothing follows the run's last event."""
        self._halt.set()
        if self.is_alive():
            self.join(timeout=5)
        gpus, self.gpus = self.gpus, None
        if gpus is not None:
            gpus.close()
