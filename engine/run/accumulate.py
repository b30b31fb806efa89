"""Per-arm bookkeeping between steps and epoch ends, shared by the engine's experiment and the `Recorder`
of a user's loop. No torch: the values arrive already read off the device.

Values are read off a device in batches (one host sync per flush, not per step): every step on the CPU,
every DEVICE_FLUSH_STEPS steps on an accelerator, and never held longer than `liveness_s` where a viewer
would otherwise call the run silent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from engine.core.stats import mean_var

DEVICE_FLUSH_STEPS = 20


def flush_due(pending: int, *, on_device: bool, idle_s: float = 0.0, liveness_s: float | None = None) -> bool:
    """Whether `pending` steps' values should be read off now."""
    if not on_device:
        return pending >= 1
    return pending >= DEVICE_FLUSH_STEPS or (liveness_s is not None and idle_s >= liveness_s)


@dataclass(frozen=True)
class EpochTotals:
    loss_mean: float
    loss_var: float
    t_epoch: float  # this epoch's step time
    t_total: float  # every step's time so far


@dataclass
class ArmTotals:
    """One arm's running step time and the finite losses of its open epoch."""

    t_total: float = 0.0
    t_epoch_start: float = 0.0  # t_total when the open epoch began
    epoch_losses: list[float] = field(default_factory=list)

    def add_step(self, loss: float, dt: float) -> bool:
        """Count one step; False when its loss is not finite (it stays out of the epoch's mean)."""
        self.t_total += dt
        if not math.isfinite(loss):
            return False
        self.epoch_losses.append(loss)
        return True

    def end_epoch(self) -> EpochTotals:
        """The open epoch's totals; the next epoch starts empty."""
        mean, var = mean_var(self.epoch_losses)
        totals = EpochTotals(mean, var, self.t_total - self.t_epoch_start, self.t_total)
        self.t_epoch_start, self.epoch_losses = self.t_total, []
        return totals
