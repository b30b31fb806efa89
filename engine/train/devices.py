"""Several devices in one process: resolve `--device`, place arms round-robin, copy a batch to each device
once, read values off every device in one batch each, and check a memory plan against free memory (torch).

Launches stay asynchronous: nothing here waits on a device except `read_floats` (at flush time) and
`free_bytes` (before anything loads).
"""

from __future__ import annotations

import contextlib
import os

import torch

from engine.core.errors import FreezeTuiError
from engine.run.config import device_list


def resolve_device(name: str) -> torch.device:
    """One named device, checked against what torch sees."""
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise FreezeTuiError(
                f"--device {name}: torch {torch.__version__} sees no CUDA GPU; use --device cpu or auto"
            )
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise FreezeTuiError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible")
        return torch.device("cuda", index)
    if name == "mps" and not torch.backends.mps.is_available():
        raise FreezeTuiError("--device mps: this torch build has no Apple GPU support; use --device cpu or auto")
    return torch.device(name)


def resolve_devices(text: str) -> list[torch.device]:
    """`--device` as a list: auto = every visible GPU (else the CPU); a comma list as given."""
    names = device_list(text)
    if names == ["auto"]:
        if torch.cuda.is_available():
            return [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
        return [torch.device("cpu")]
    return [resolve_device(n) for n in names]


def place(arm_names, devices: list[torch.device]) -> dict[str, torch.device]:
    """Arms over the devices round-robin, in arm order."""
    return {name: devices[i % len(devices)] for i, name in enumerate(arm_names)}


def device_model(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


def mixed_devices_warning(placement: dict[str, torch.device]) -> str | None:
    """A line when arms run on different kinds of device: their times would not compare fairly."""
    models = {name: device_model(d) for name, d in placement.items()}
    if len(set(models.values())) <= 1:
        return None
    where = ", ".join(f"{name} on {placement[name]} ({model})" for name, model in models.items())
    return f"arms run on different device models ({where}): their step times, and r, do not compare fairly"


def on_device(device: torch.device):
    """Make `device` current (CUDA events and kernels go to its stream); nothing elsewhere."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def copy_to(batch: torch.Tensor, devices) -> dict[torch.device, torch.Tensor]:
    """The batch on every device, copied once per device; from pinned memory without a host sync on CUDA."""
    targets = list(dict.fromkeys(devices))
    if any(d.type == "cuda" for d in targets):
        batch = batch.pin_memory()
    return {d: batch.to(d, non_blocking=d.type == "cuda") for d in targets}


def read_floats(tensors: list[torch.Tensor]) -> list[float]:
    """Scalars (or equal-shaped tensors) as Python values, one read per device, in the given order."""
    by_device: dict[torch.device, list[int]] = {}
    for i, t in enumerate(tensors):
        by_device.setdefault(t.device, []).append(i)
    out: list = [None] * len(tensors)
    for indices in by_device.values():
        values = torch.stack([tensors[i].float() for i in indices]).tolist()
        for i, value in zip(indices, values):
            out[i] = value
    return out


def free_bytes(device: torch.device) -> int | None:
    """Free memory on a device: CUDA's free bytes, the host's available RAM for the CPU; None if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu":
        return host_available()
    return None


def host_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
