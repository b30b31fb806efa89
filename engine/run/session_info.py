"""What the machine was doing while a run timed its steps: torch's thread count, the cores, the load
average (psutil / os.getloadavg). Every r holds for its session; the log says which. No torch import:
the engine has loaded torch in this process already, and its thread count is read from there."""

from __future__ import annotations

import os
import sys


def torch_threads() -> int | None:
    """torch's intra-op thread count, if the engine has loaded torch in this process."""
    torch = sys.modules.get("torch")
    get = getattr(torch, "get_num_threads", None)
    return int(get()) if callable(get) else None


def session_readings() -> dict:
    """{torch_threads, cpu_count, physical_cores, load_avg [1, 5, 15 min]} (None where unknown)."""
    import psutil

    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:  # Windows has none; psutil emulates it there after a first call
        load = [round(v, 2) for v in psutil.getloadavg()]
    return {
        "torch_threads": torch_threads(),
        "cpu_count": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "load_avg": load,
    }


LOAD_WARNING = "load average"  # how the warning starts (a heartbeat gives it, when the load says so)


def overloaded(readings: dict) -> str:
    """A warning when the 1-minute load exceeds the cores while steps are timed, else ''."""
    load, cores = (readings.get("load_avg") or [None])[0], readings.get("cpu_count")
    if not isinstance(load, (int, float)) or not isinstance(cores, int) or load <= cores:
        return ""
    return (
        f"{LOAD_WARNING} {load:.1f} exceeds the {cores} cores while steps are timed: step times include "
        "waiting for a CPU, and r holds for this load only"
    )


def cpu_threads(asked: int = 0) -> int:
    """Torch's CPU threads for a run: `asked` if given, else OMP_NUM_THREADS if set, else the physical
    cores the 1-minute load leaves free, at least 1. Threads beyond the free cores wait on each other:
    on this project's loaded 2-core box a step took 5x longer with 2 threads than with 1 (DECISIONS)."""
    if asked > 0:
        return asked
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    import psutil

    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    return max(1, min(cores, int(cores - load + 0.5)))
