"""GPU memory and utilisation through NVML (nvidia-ml-py, imported as pynvml). No torch.

Readings are optional everywhere: without the package, without a driver, on a device NVML
does not know (or a MIG slice without utilisation), the device or the value is left out and
nothing is raised, so a run never fails or warns for want of a GPU panel.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any


class GpuSampler:
    def __init__(self, nvml: Any, devices: list[tuple[int, Any, str]]) -> None:
        self._nvml, self._devices = nvml, devices  # (torch index, NVML handle, name)

    @classmethod
    def open(cls, devices: list[tuple[int, str]]) -> GpuSampler | None:
        """A sampler for the run's CUDA devices, given as (torch index, uuid or ""); None when NVML
        is missing or fails, or knows none of them."""
        if not devices:
            return None
        try:
            import pynvml as nvml

            nvml.nvmlInit()
        except Exception:  # ImportError, or any NVMLError (no driver, no library)
            return None
        found = []
        for index, uuid in devices:
            handle = _handle(nvml, index, uuid)
            if handle is not None:
                found.append((index, handle, _name(nvml, handle)))
        return cls(nvml, found) if found else None

    def read(self) -> list[dict]:
        """[{index, name, mem_used, mem_total, util}] (bytes, %; util None where NVML has none)."""
        out = []
        for index, handle, name in self._devices:
            try:
                mem = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            except Exception:
                continue
            try:
                util = float(self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except Exception:
                util = None
            out.append(
                {
                    "index": index,
                    "name": name,
                    "mem_used": int(mem.used),
                    "mem_total": int(mem.total),
                    "util": util,
                    **self._limits(handle),
                }
            )
        return out

    def _limits(self, handle) -> dict:
        """SM clock (MHz) and enforced power limit (W) where NVML gives them: a throttled or capped GPU
        times steps differently, so r is labelled with them (issue 18)."""
        out = {}
        with contextlib.suppress(Exception):
            out["sm_clock_mhz"] = int(self._nvml.nvmlDeviceGetClockInfo(handle, self._nvml.NVML_CLOCK_SM))
        with contextlib.suppress(Exception):
            out["power_limit_w"] = self._nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._nvml.nvmlShutdown()


def _handle(nvml: Any, index: int, uuid: str):
    """NVML's handle of torch's CUDA device `index`: by its uuid, else by its physical index (NVML
    counts every GPU of the machine, torch only the visible ones)."""
    if uuid:
        try:
            return nvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}")
        except Exception:
            pass
    physical = _physical_index(index)
    if physical is None:
        return None
    try:
        return nvml.nvmlDeviceGetHandleByIndex(physical)
    except Exception:
        return None


def _physical_index(index: int) -> int | None:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return index
    entries = [v.strip() for v in visible.split(",") if v.strip()]
    if index < len(entries) and entries[index].isdigit():
        return int(entries[index])
    return None  # listed by uuid or out of range: only the uuid lookup above could tell


def _name(nvml: Any, handle) -> str:
    try:
        name = nvml.nvmlDeviceGetName(handle)
    except Exception:
        return ""
    return name.decode(errors="replace") if isinstance(name, bytes) else str(name)
