"""A run log from your own training loop: ``rec.step(loss, lr)`` each optimizer step, ``rec.end()``.

The log is the one ``freeze-tui run`` writes (same writer, same events, the same summary at the
end), so ``watch``, ``replay``, ``report`` and ``export`` read it unchanged. One recorder is one arm.
Only the main process writes: under ``torchrun``/``accelerate`` every other rank gets a recorder
that does nothing. Values leave the device as the engine's do: a CPU loss every step, a CUDA loss
every 20 steps (or after 2 s), in one read. Torch is needed only for ΔW (pass ``model``).
"""

from __future__ import annotations

import atexit
import math
import os
import time
from pathlib import Path

from engine.log import events as ev
from engine.log.events import MAX_ABS
from engine.log.runlog import LogWriter
from engine.log.state import RunState
from engine.log.summary import summarize
from engine.run.accumulate import ArmTotals, flush_due
from engine.run.emitter import Emitter, new_run_id
from freeze_tui.version import __version__

__all__ = ["Recorder", "is_main_process"]

LIVENESS_S = 2.0  # never hold values longer than this: `watch` would call the run silent


def is_main_process() -> bool:
    """Rank 0 of a torchrun/accelerate launch, or a single process."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0) == 0


class Recorder:
    """Writes a freeze-tui run log for one arm of a loop you own.

    model: your model (for the model line and, with ``norm_every``, ΔW of every attention matrix);
    plan: what ``freeze_tui.apply_spec`` returned, if you used it (spec, counts, FLOP ratio, grid);
    config: any settings to show (lr, epochs, max_steps, n_train_batches ...).
    """

    def __init__(
        self,
        log: str | Path,
        *,
        arm: str = "run",
        model=None,
        plan=None,
        config: dict | None = None,
        norm_every: int = 1,
        overwrite: bool = False,
        main_process: bool | None = None,
    ) -> None:
        self.active = is_main_process() if main_process is None else main_process
        self.arm, self.log = arm, Path(log)
        self._emitter = Emitter()
        self._step, self._epoch = 0, 0
        self._pending: list = []  # (step, epoch, loss (maybe a device tensor), dt, lr)
        self._totals = ArmTotals()
        self._last_step_t = self._last_flush = time.perf_counter()
        self._tracker, self._norm_every, self.ended, self._open_epoch = None, norm_every, False, False
        self._warned_big = False
        if not self.active:
            return
        self._writer = LogWriter(self.log, overwrite=overwrite)
        self._emitter.sinks.append(self._writer.write)
        atexit.register(self._left_open)  # a loop that died without end(): the log still ends
        self._emit(ev.Header(producer=f"freeze-tui {__version__} (recorder)", run_id=new_run_id()))
        self._emit(self._run_start(model, plan, dict(config or {})))
        if model is not None and norm_every:
            self._tracker = _tracker(model, plan)
            self._tracker.snapshot()  # the weights before step 0

    # -- what a loop calls -------------------------------------------------------------------------
    def step(self, loss, lr: float | None = None, *, epoch: int | None = None) -> None:
        """After each optimizer step: its loss (a float or a tensor) and learning rate."""
        if not self.active or self.ended:
            return
        now = time.perf_counter()
        dt, self._last_step_t = now - self._last_step_t, now
        if epoch is not None and epoch != self._epoch:
            if self._open_epoch:
                self.epoch_end()
            self._epoch = epoch
        self._open_epoch = True
        loss = loss.detach() if hasattr(loss, "detach") else loss
        if hasattr(loss, "numel") and loss.numel() != 1:  # refused now: pending, it would fail every flush
            raise ValueError(f"Recorder.step: loss must be one number, got a tensor of shape {tuple(loss.shape)}")
        self._pending.append((self._step, self._epoch, loss, dt, lr))
        if self._tracker is not None and self._step % self._norm_every == 0:
            self._flush()  # ΔW is read at once: it is for this step
            self._emit_dw()
        if self._tracker is not None and (self._step + 1) % self._norm_every == 0:
            self._tracker.snapshot()  # the weights before the next measured step
        self._step += 1
        if self._flush_due(loss, now):
            self._flush()

    def epoch_end(self, val_loss: float | None = None) -> None:
        """At the end of an epoch; later steps count in the next one. ``step(epoch=...)`` calls it when
        the epoch changes and it was not called."""
        if not self.active or self.ended or not self._open_epoch:
            return
        self._close_epoch(val_loss)

    def _close_epoch(self, val_loss: float | None = None) -> None:
        self._flush()
        totals = self._totals.end_epoch()
        record = ev.ArmEpoch(
            loss_mean=totals.loss_mean,
            loss_var=totals.loss_var,
            val_loss=self._value(val_loss),
            t_epoch=totals.t_epoch,
            t_total=totals.t_total,
        )
        self._emit(ev.EpochEnd(epoch=self._epoch, arms={self.arm: record}))
        self._open_epoch = False
        self._epoch += 1

    def sample(self, text: str, *, phase: str = "post", prompt: str = "", index: int = 0) -> None:
        """A generated text (``phase`` "pre" before training); no common-token set here, so p is unknown."""
        if not self.active or self.ended:
            return
        arm = "*" if phase == "pre" else self.arm
        epoch = -1 if phase == "pre" else self._epoch - (0 if self._open_epoch else 1)
        self._emit(
            ev.Sample(
                phase=phase,
                arm=arm,
                prompt=prompt,
                text=text,
                tokens=[[text, False]],
                p=math.nan,
                index=index,
                epoch=epoch,
            )
        )

    def warning(self, message: str) -> None:
        if self.active and not self.ended:
            self._emit(ev.Warning(message=message, arm=self.arm))

    def end(self, status: str = "finished") -> None:
        """The last line: run_end with the same summary ``freeze-tui run`` writes. Safe to call twice."""
        if not self.active or self.ended:
            return
        self.ended = True  # whatever fails below, the log still gets its run_end, once
        try:
            self._flush()
            if self._open_epoch:
                self._close_epoch()
        except Exception as exc:  # a bad value must not cost the run its last line
            self._pending.clear()
            self._emit(ev.Error(message=f"{type(exc).__name__}: {exc}", fatal=True))
            status = "failed"
        try:
            summary = summarize(self.state)
        except (ArithmeticError, ValueError) as exc:
            self._emit(ev.Warning(message=f"no summary: {type(exc).__name__}: {exc}", arm=self.arm))
            summary = {}
        self._emit(ev.RunEnd(status=status, summary=summary))
        self._writer.close()
        atexit.unregister(self._left_open)

    def _left_open(self) -> None:
        if self.active and not self.ended:
            message = "the process ended before Recorder.end() (an exception in the training loop?)"
            self._emit(ev.Error(message=message, fatal=True))
            self.end("failed")

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None or (issubclass(exc_type, SystemExit) and exc.code in (0, None)):
            self.end()  # sys.exit(0) inside the block is a normal end
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end("stopped")
        else:
            if self.active and not self.ended:
                self._emit(ev.Error(message=f"{exc_type.__name__}: {exc}", fatal=True))
            self.end("failed")

    # -- inside ----------------------------------------------------------------------------------
    @property
    def state(self) -> RunState:
        """What every view would show of this run so far."""
        return self._emitter.state

    def _emit(self, event: ev.Event) -> None:
        self._emitter.emit(event)

    def _value(self, value) -> float:
        """A number the log can hold: beyond ±MAX_ABS (a diverged loss such as 1e300) it is logged as null,
        with one warning, so every reader still takes the log."""
        number = _float(value)
        if math.isfinite(number) and abs(number) > MAX_ABS:
            if not self._warned_big:
                self._warned_big = True
                self._emit(ev.Warning(message=f"a value of {number:.3g} is beyond what a log holds; logged as null"))
            return math.nan
        return number

    def _flush_due(self, loss, now: float) -> bool:
        on_device = getattr(getattr(loss, "device", None), "type", "cpu") != "cpu"
        return flush_due(len(self._pending), on_device=on_device, idle_s=now - self._last_flush, liveness_s=LIVENESS_S)

    def _flush(self) -> None:
        """One read of every pending loss, then their step events in order."""
        self._last_flush = time.perf_counter()
        if not self._pending:
            return
        values = [self._value(v) for v in _floats([loss for _, _, loss, _, _ in self._pending])]
        for (step, epoch, _, dt, lr), loss in zip(self._pending, values):
            self._emit(ev.Step(step=step, epoch=epoch, arms={self.arm: ev.ArmStep(loss, dt, self._value(lr))}))
            self._totals.add_step(loss, dt)
        self._pending.clear()

    def _emit_dw(self) -> None:
        tracker = self._tracker
        if tracker is None:
            return
        record = ev.ArmDW(*tracker.as_dicts(tracker.measure().tolist()))
        self._emit(ev.DW.of(self._step, {self.arm: record}))

    def _run_start(self, model, plan, config: dict) -> ev.RunStart:
        record = ev.replaced(plan.record, name=self.arm) if plan is not None else _unplanned(self.arm, model)
        config = {"source": "recorder", "norm_every": self._norm_every, **config}
        data = {k: config.pop(k) for k in ("n_train_batches", "n_val_batches", "n_tokens") if k in config}
        return ev.RunStart(config=config, model=_model_info(model), data=data, arms=[record])


def _floats(values: list) -> list[float]:
    tensors = [v for v in values if hasattr(v, "float")]
    if tensors:
        import torch

        read = iter(torch.stack([t.float().reshape(()) for t in tensors]).tolist())
        return [float(next(read)) if hasattr(v, "float") else _float(v) for v in values]
    return [_float(v) for v in values]


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _unplanned(arm: str, model) -> ev.ArmRecord:
    """The arm record without a plan: the model's own trainable and total counts (0 without a model)."""
    if model is None:
        return ev.ArmRecord(name=arm)
    params = list(model.parameters())
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return ev.ArmRecord(name=arm, trainable=trainable, total=sum(p.numel() for p in params))


def _model_info(model) -> dict:
    if model is None:
        return {}
    config = getattr(model, "config", None)
    name = getattr(config, "_name_or_path", "") or type(model).__name__
    n_blocks = next((getattr(config, k) for k in ("num_hidden_layers", "n_layer") if hasattr(config, k)), 0)
    return {
        "name": str(name),
        "arch": str(getattr(config, "model_type", "")),
        "n_params": sum(p.numel() for p in model.parameters()),
        "n_blocks": int(n_blocks or 0),
    }


def _tracker(model, plan):
    """ΔW of every attention matrix: the engine's own trackers (torch)."""
    from engine.plans.roles import attention_splits, build_layout
    from engine.train.kinds import tracker_for_model

    layout = plan.layout if plan is not None else build_layout(model)
    return tracker_for_model(model, attention_splits(layout), plan.plan if plan is not None else None)
