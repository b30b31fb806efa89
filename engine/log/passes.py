"""Wall seconds of the validation and sampling passes of a run, measured from event times (log time) as
the run goes; RunState feeds it, the ETA (engine/log/eta.py) reads it. Pure Python, no torch.

Validation runs between the last step event and `epoch_end` (and before step 0, ending at `step_zero`);
sampling runs from `epoch_end` (or the run's or replicate's start) to the last `sample` event of the set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class PassClock:
    """Wall seconds of the validation and sampling passes seen so far (log time)."""

    validation_end: list[float] = field(default_factory=list)  # epoch-end passes
    validation_zero: list[float] = field(default_factory=list)  # the pass before step 0 (step_zero)
    sampling_pre: list[float] = field(default_factory=list)  # one set for all arms before training
    sampling_arm: list[float] = field(default_factory=list)  # epoch-end sets, per arm sampled
    _mark: float = math.nan  # when the phase now running began (run_start, replicate, epoch_end, ...)
    _set: tuple = ()  # (replicate, phase, epoch) of the sample set now being written
    _set_start: float = math.nan
    _set_arms: set = field(default_factory=set)
    _last: float = math.nan  # the latest sample event's time

    def begin(self, t: float) -> None:
        """run_start or a new replicate: what follows (pre samples, step-zero validation) starts now."""
        self._close_set()
        self._mark = t

    def sample(self, t: float, replicate: int, phase: str, epoch: int, arm: str) -> None:
        key = (replicate, phase, epoch)
        if key != self._set:
            self._close_set()
            self._set, self._set_start, self._set_arms = key, self._mark, set()
        self._set_arms.add(arm)
        self._mark = t
        self._last = t

    def step_zero(self, t: float) -> None:
        self._close_set()
        if not math.isnan(self._mark):
            self.validation_zero.append(max(0.0, t - self._mark))
        self._mark = t

    def epoch_end(self, t: float, last_step_t: float) -> None:
        self._close_set()
        if not math.isnan(last_step_t):
            self.validation_end.append(max(0.0, t - last_step_t))
        self._mark = t

    def _close_set(self) -> None:
        """The set being written is complete (another kind of event came): its cost is known."""
        if not self._set or math.isnan(self._set_start):
            self._set = ()
            return
        seconds = max(0.0, self._last - self._set_start)
        if self._set[1] == "pre":
            self.sampling_pre.append(seconds)
        else:
            self.sampling_arm.append(seconds / max(1, len(self._set_arms)))
        self._set = ()

    def open_set(self) -> tuple[str, float] | None:
        """(phase, seconds so far) of the latest sample set not yet followed by a validation or a new
        replicate (steps do not close it: they are not fed here, to keep the hot path bare), else None."""
        if not self._set or math.isnan(self._set_start):
            return None
        return self._set[1], max(0.0, self._last - self._set_start)

    @property
    def last_sample_t(self) -> float:
        return self._last

    def sampling(self, later_t: float) -> tuple[list[float], list[float]]:
        """(pre sets' seconds, epoch-end sets' seconds per arm), counting the latest set as complete
        when an event came after it (`later_t`: the last step's time)."""
        pre, per_arm = list(self.sampling_pre), list(self.sampling_arm)
        now = self.open_set()
        if now is not None and later_t > self._last:
            (pre if now[0] == "pre" else per_arm).append(now[1] / (1 if now[0] == "pre" else len(self._set_arms)))
        return pre, per_arm
