"""Best beside last, as text: each arm's lowest smoothed training loss and lowest validation loss
(engine/log/best.py) for the arm cards and the headless progress and summary. Pure."""

from __future__ import annotations

import math

from engine.log.best import SMOOTHING, best_validation
from engine.log.state import ArmState, RunState
from freeze_tui.draw import fmt

BEST_NOTE = f"train: the lowest smoothed loss, EMA {SMOOTHING:g} as the chart's default curve"


def best_train(arm: ArmState) -> float:
    return arm.best_loss.best


def best_val(arm: ArmState) -> tuple[float, int]:
    return best_validation(arm.epochs)


def progress_value(arm: ArmState) -> str:
    """The headless progress line's value of an arm: `1.234 (smoothed best 1.200)`; the bare last before a
    best. The smoothed curve lags a falling loss, so its best can be above the last raw batch's loss."""
    best = best_train(arm)
    last = fmt.num(arm.loss_last)
    return f"{last} ({train_best_text(best)})" if math.isfinite(best) else last


def train_best_text(best: float) -> str:
    """The best training loss as the cards and the progress say it: which kind of best is in the words."""
    return f"smoothed best {fmt.num(best)}"


def summary_line(arm: ArmState) -> str:
    """One arm's best values for the headless summary: train best at its step, val best at its epoch."""
    parts = []
    if math.isfinite(best_train(arm)):
        parts.append(f"train {fmt.num(best_train(arm))} (step {arm.best_loss.step}; last {fmt.num(arm.loss_last)})")
    val, epoch = best_val(arm)
    if math.isfinite(val):
        last_val = arm.epochs[-1][1].val_loss
        parts.append(f"val {fmt.num(val)} (epoch {epoch + 1}; last {fmt.num(last_val)})")
    return f"{arm.name}: {' · '.join(parts)}" if parts else ""


def summary_lines(state: RunState) -> list[str]:
    """`best so far` lines after the summary table (none when no arm has a best yet)."""
    lines = [line for arm in state.arms.values() if (line := summary_line(arm))]
    seed = f"; seed {state.replicate + 1} of {state.replicates}" if state.replicates > 1 else ""  # arms: this one
    return [f"best values ({BEST_NOTE}{seed}):", *(f"  {line}" for line in lines)] if lines else []
