"""The time a run has left: recent step times × the steps to go (every arm, every replicate of --seeds)
plus an allowance for the validation and sampling passes still to come. Pure Python, no torch.

The passes are measured from event times as the run goes (engine/log/passes.py, fed by RunState).
Until a pass of a kind has been seen its cost is estimated and the ETA says "~".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.log.passes import PassClock
from engine.log.state import RunState

STEP_WINDOW = 32  # recent step intervals the step rate is taken from
FORWARD_SHARE = 1 / 3  # a forward-only batch costs about a third of a training step (forward + backward)


@dataclass(frozen=True)
class Eta:
    """Seconds left (as of the log's last event) and whether any part of it is an estimate."""

    seconds: float
    approximate: bool
    steps_s: float = 0.0
    validation_s: float = 0.0
    sampling_s: float = 0.0

    def left(self, ticking: float = 0.0) -> float:
        """Seconds left now, `ticking` wall seconds after the log's last event."""
        return max(0.0, self.seconds - max(0.0, ticking))


def step_seconds(state: RunState) -> tuple[float, int]:
    """(wall seconds per optimizer step over the last STEP_WINDOW steps, intervals used). Intervals that
    span an epoch boundary (validation, samples) are left out; without any, the arms' step times."""
    steps, times, starts = state.steps, state.step_t, set(state.epoch_starts)
    total, used = 0.0, 0
    k = len(steps) - 1
    oldest = max(0, k - 4 * STEP_WINDOW)  # a bounded look back, whatever a hand-edited log holds
    while k > oldest and used < STEP_WINDOW:
        if steps[k] not in starts:
            total += times[k] - times[k - 1]
            used += steps[k] - steps[k - 1]
        k -= 1
    if used > 0:
        return total / used, used
    per_step = sum(a.dt_ema for a in state.arms.values() if not math.isnan(a.dt_ema))
    return (per_step if per_step > 0 else math.nan), 0


def epochs_to_run(state: RunState) -> int | None:
    """Epochs the run really runs: --epochs, or fewer when --max-steps ends it early."""
    epochs, per_epoch, total = state.settings.epochs, state.data_info.n_train_batches, state.total_steps
    if epochs is None or epochs <= 0:
        return None
    if per_epoch is not None and per_epoch > 0 and total:
        return min(epochs, -(-total // per_epoch))
    return epochs


def eta(state: RunState) -> Eta | None:
    """Time left, or None when it cannot be said (finished, no plan, no step time yet)."""
    total, epochs = state.total_steps, epochs_to_run(state)
    if state.finished or not total or epochs is None or not state.arms:
        return None
    per_step, intervals = step_seconds(state)
    if math.isnan(per_step):
        return None
    replicates_left = max(0, state.replicates - state.replicate - 1)
    steps_left = max(0, total - (state.step + 1)) + replicates_left * total
    clock: PassClock = state.passes
    n_arms = len(state.arms)
    samples = state.settings.samples
    samples_on = state.settings.monitor and (4 if samples is None else samples) > 0

    # validation: the epoch ends still to come here, and every pass of a later replicate
    epochs_done = len({e for a in state.arms.values() for e, _ in a.epochs})
    end_passes = max(0, epochs - epochs_done) + replicates_left * epochs
    val_guess = (state.data_info.n_val_batches or 0) * per_step * FORWARD_SHARE
    val_end = _mean(clock.validation_end)
    val_zero = _mean(clock.validation_zero)
    approximate = intervals < 3
    if math.isnan(val_end):
        val_end = val_zero if not math.isnan(val_zero) else val_guess
        approximate = True
    # (an ETA needs a step time, so this replicate's step-zero pass is over: later replicates have one each)
    validation = end_passes * val_end + replicates_left * (val_zero if not math.isnan(val_zero) else val_end)

    sampling = 0.0
    if samples_on:
        last_step_t = state.step_t[-1] if state.step_t else math.nan
        pre_sets, arm_sets = clock.sampling(last_step_t)
        per_arm, pre = _mean(arm_sets), _mean(pre_sets)
        if math.isnan(per_arm):
            per_arm = pre if not math.isnan(pre) else 0.0
            approximate = True
        if math.isnan(pre):
            pre = per_arm
        sets_done = _sets_done(state)
        sampling = (max(0, epochs - sets_done) + replicates_left * epochs) * n_arms * per_arm
        sampling += replicates_left * pre
        open_set = clock.open_set()
        if open_set is not None and open_set[0] != "pre" and not last_step_t > clock.last_sample_t:  # being written
            sampling = max(0.0, sampling - open_set[1])
    steps_s = steps_left * per_step
    return Eta(steps_s + validation + sampling, approximate, steps_s, validation, sampling)


def _sets_done(state: RunState) -> int:
    """Epoch-end sample sets begun in this replicate (the latest set's epoch + 1)."""
    latest = [a.samples.epoch for a in state.arms.values() if a.samples is not None and a.samples.phase != "pre"]
    return max(latest) + 1 if latest else 0


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
