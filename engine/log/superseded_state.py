"""Undo in a RunState what a resumed run supersedes (`resumed` events, issue 21): the reducer's one
handler for them, kept apart from engine/log/state.py so that file stays about folding new events."""

from __future__ import annotations

import bisect
import math
from collections import deque
from typing import Any

from engine.log import events as ev
from engine.log.best import best_of

RunState = Any  # engine.log.state.RunState, which imports this module (not imported back: no cycle)


def undo_superseded(state: RunState, e: ev.Resumed) -> None:
    """A `resumed` event: undo what the killed run showed past its checkpoint (issue 21). A file reader
    never hands RunState the superseded events (engine.log.supersede drops them), so this changes nothing
    there; a follower (`watch`, a live viewer) has folded them already and they are undone here by the same
    rule: steps from `step` on, epoch ends and samples from `epoch` on, dw and plan changes from `step` on,
    and the messages written after `after_seq`."""
    if e.replicate < state.replicate and e.replicate < len(state.past):
        _back_to_replicate(state, int(e.replicate))
    state.status, state.summary = "running", {}  # a stopped run's run_end is superseded too
    keep = bisect.bisect_left(state.steps, e.step)  # steps of one replicate only grow
    del state.steps[keep:]
    del state.step_t[keep:]
    state.epoch_starts = [s for s in state.epoch_starts if s < e.step]
    state.step = state.steps[-1] if len(state.steps) else -1
    state.epoch = len(state.epoch_starts) - 1 if len(state.steps) else -1
    state.dw_history = deque(((s, d) for s, d in state.dw_history if s < e.step), maxlen=state.dw_history.maxlen)
    last_dw = state.dw_history[-1][1] if state.dw_history else None
    state.dw_step = last_dw.step if last_dw is not None else -1
    state.plan_changes = [p for p in state.plan_changes if p.step < e.step]
    dropped = [m for m in state.messages if e.after_seq < m.seq < e.seq]
    state.messages = deque((m for m in state.messages if not e.after_seq < m.seq < e.seq), maxlen=state.messages.maxlen)
    for name, arm in state.arms.items():
        del arm.losses[keep:]
        del arm.dts[keep:]
        arm.time_total = math.fsum(d for d in arm.dts if d == d)
        arm.loss_last = _last(arm.losses)
        arm.best_loss = best_of(arm.losses, state.steps)
        arm.dt_last = _last(arm.dts)
        arm.epochs = [(k, rec) for k, rec in arm.epochs if k < e.epoch]
        if arm.samples is not None and arm.samples.phase != "pre" and arm.samples.epoch >= e.epoch:
            arm.samples = None  # the next epoch end of the resumed run brings them again
        if arm.dw_event is not None and arm.dw_event.step >= e.step:
            arm.dw_event = last_dw
        changes = [p for p in state.plan_changes if p.arm == name]
        arm.trainable = int(changes[-1].trainable) if changes else state.start_trainable.get(name, arm.trainable)
        if any(m.level == "error" and m.arm == name for m in dropped):
            arm.stopped = ""  # stopped after the checkpoint: the resumed run decides again


def _back_to_replicate(state: RunState, k: int) -> None:
    """The killed run had begun a later replicate than the checkpoint's: the state of replicate k again."""
    kept = state.past[k]
    past, messages = state.past[:k], state.messages
    state.__dict__.update({key: v for key, v in kept.__dict__.items() if key != "past"})
    state.past, state.messages = past, messages


def _last(values) -> float:
    return values[-1] if len(values) else math.nan
