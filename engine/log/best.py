"""Each arm's best values so far, beside the last ones: the lowest smoothed training loss and the lowest
validation loss. Pure; RunState folds the training one a step at a time (a million steps stay cheap)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import repeat

# The weight of the loss chart's default smoothing (TensorBoard-style, debiased). The best of the raw
# per-batch losses would be the luckiest batch, not the best the model got: the smoothed curve's minimum is.
SMOOTHING = 0.9


@dataclass
class BestLoss:
    """The lowest point so far of the debiased EMA of an arm's finite training losses."""

    level: float = 0.0
    norm: float = 0.0
    best: float = math.nan  # nan until a finite loss came
    step: int = -1  # the step where the smoothed loss was lowest

    def add(self, loss: float, step: int = -1) -> None:
        if loss - loss != 0.0:  # NaN or inf: not a loss (the card says why the arm stopped)
            return
        self.level = SMOOTHING * self.level + (1.0 - SMOOTHING) * loss
        self.norm = SMOOTHING * self.norm + (1.0 - SMOOTHING)
        smoothed = self.level / self.norm
        if not smoothed >= self.best:  # also when best is still nan
            self.best, self.step = smoothed, step

    @property
    def smoothed(self) -> float:
        """The smoothed loss at the latest step (what the chart's default curve ends at)."""
        return self.level / self.norm if self.norm else math.nan


def best_of(losses: Iterable[float], steps: Iterable[int] | None = None) -> BestLoss:
    """The same fold over a whole series (a `resumed` event cuts an arm's losses back)."""
    out = BestLoss()
    for loss, step in zip(losses, steps if steps is not None else repeat(-1)):
        out.add(loss, step)
    return out


def best_validation(epochs) -> tuple[float, int]:
    """(lowest finite validation loss, its epoch) over an arm's (epoch, epoch_end record) list; (nan, -1) if none."""
    best, at = math.nan, -1
    for epoch, record in epochs:
        value = record.val_loss
        value = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
        if math.isfinite(value) and not value >= best:
            best, at = value, int(epoch)
    return best, at
