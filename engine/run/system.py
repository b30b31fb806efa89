"""The machine's CPU and memory while a run trains, and the run's own resident memory: psutil. No torch.

Read by the heartbeat on the GPU readings' cadence (engine/run/heartbeat.py) and written into the
heartbeat event, so LIVE, WATCH and REPLAY show the same numbers. Readings are optional: a psutil
call that fails leaves its value out, and a run never fails or warns for want of a system panel.
"""

from __future__ import annotations

import contextlib
from typing import Any


class SystemSampler:
    """CPU % of the whole machine since the previous reading (psutil's own bookkeeping), RAM used and
    total, and this process's RSS (bytes)."""

    def __init__(self, psutil_module: Any = None) -> None:
        if psutil_module is None:
            import psutil

            psutil_module = psutil
        self._psutil = psutil_module
        self._process = None
        with contextlib.suppress(Exception):
            self._process = psutil_module.Process()
        with contextlib.suppress(Exception):
            psutil_module.cpu_percent(interval=None)  # the first call only starts the interval

    def read(self) -> dict:
        """{cpu_pct, cpu_count, ram_used, ram_total, rss}, each left out where psutil cannot say."""
        out: dict = {}
        with contextlib.suppress(Exception):
            out["cpu_pct"] = round(float(self._psutil.cpu_percent(interval=None)), 1)
            out["cpu_count"] = int(self._psutil.cpu_count(logical=True))
        with contextlib.suppress(Exception):
            memory = self._psutil.virtual_memory()
            out["ram_used"], out["ram_total"] = int(memory.total - memory.available), int(memory.total)
        if self._process is not None:
            with contextlib.suppress(Exception):
                out["rss"] = int(self._process.memory_info().rss)
        return out
