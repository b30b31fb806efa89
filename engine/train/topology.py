"""Where the arms of an experiment live, as the one experiment loop consults it (torch).

`LocalDevices`: one process trains every arm, each on its placed device (several GPUs in one process:
the batch is copied once per device and each arm's kernels launch on its own device, so the devices
work at the same time). `engine.dist.distributed.MeshRanks`: one arm per group of ranks of a
DeviceMesh, maybe sharded, whose events meet at world rank 0 at sync points. The experiment asks the
topology, never which one it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from engine.train.devices import copy_to, on_device


@dataclass(frozen=True)
class Agreement:
    """What every process must agree on before a step: stop now, a --on-nan stop-run fired, any arm left."""

    stop: bool
    nan_stop: bool
    active: bool


class Topology(Protocol):
    """What the experiment asks of where its arms live (LocalDevices, or MeshRanks of a distributed run)."""

    samples_before_training: bool

    def own(self, plans: list) -> list: ...

    def place(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module: ...

    def wrap(self, name: str, model: torch.nn.Module, n_blocks: int) -> torch.nn.Module: ...

    def batches(self, batch: torch.Tensor, devices: list[torch.device]) -> dict[torch.device, torch.Tensor]: ...

    def launching_on(self, device: torch.device) -> Any: ...

    def reduce(self, losses: list, dts: list, dw_squares: list) -> tuple[list, list, list]: ...

    def emitter(self, emit) -> Any: ...

    def sync(self, local: Agreement) -> Agreement: ...

    def agreed(self, local: Agreement) -> Agreement: ...

    def whole_model(self, model: Any, initial: torch.nn.Module) -> Any: ...

    def arm_memory(self, mine: dict) -> dict: ...

    def measure_part(self) -> tuple[int, int]: ...

    def gather_parts(self, mine: Any) -> list: ...


class LocalDevices:
    """Every arm in this process, each on its own device; nothing to exchange."""

    samples_before_training = True  # this process holds an arm to sample "pre" with

    def own(self, plans: list) -> list:
        """The (name, plan) pairs this process trains: all of them."""
        return plans

    def place(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        return model.to(device)

    def wrap(self, name: str, model: torch.nn.Module, n_blocks: int) -> torch.nn.Module:
        """The arm's model as trained (a sharded arm is wrapped here, before its optimizer exists)."""
        return model

    def batches(self, batch: torch.Tensor, devices: list[torch.device]) -> dict[torch.device, torch.Tensor]:
        """This process's part of the batch on every device, copied once per device, no host sync."""
        return copy_to(batch, devices)

    def launching_on(self, device: torch.device):
        """Kernels launched inside go to `device` (launches only: the devices work at the same time)."""
        return on_device(device)

    def reduce(self, losses: list, dts: list, dw_squares: list) -> tuple[list, list, list]:
        """Per-step values of this process's part of each arm -> the whole arm's (nothing to do here)."""
        return losses, dts, dw_squares

    def emitter(self, emit):
        """Where the experiment's events go: straight to the run's emitter."""
        return emit

    def sync(self, local: Agreement) -> Agreement:
        """Events emitted so far leave (they already have) and every process agrees: this one alone."""
        return local

    def agreed(self, local: Agreement) -> Agreement:
        """The agreement in force now: this process's own, read at every step."""
        return local

    def whole_model(self, model: Any, initial: torch.nn.Module) -> Any:
        """The arm's full model for saving, or None where another process saves it."""
        return model

    def arm_memory(self, mine: dict) -> dict:
        """Every arm's state bytes, from what each process counts of its own."""
        return mine

    def measure_part(self) -> tuple[int, int]:
        """(which part, of how many) of every validation pass and sampling phase this process does: all of it."""
        return 0, 1

    def gather_parts(self, mine: Any) -> list:
        """Every part's result (measures, samples) for this process's arm, in part order: its own."""
        return [mine]
