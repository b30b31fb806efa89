"""RunState: the one reducer that folds events into everything a view shows. Pure Python, no torch.

Live, replay, watch, `report` and the headless summary all read this. Series are kept
compactly (array) so a million-step run stays small; views downsample only what they draw.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.core.stats import clustered_mean_ci95, saving
from engine.log import events as ev
from engine.log.best import BestLoss
from engine.log.passes import PassClock
from engine.log.superseded_state import undo_superseded

DW_HISTORY = 48  # dw events kept per run for trend sparklines
MESSAGE_LIMIT = 500


@dataclass
class SampleSet:
    """The samples of one arm at one point (phase pre/epoch/final), with p and its 95 % interval."""

    phase: str
    epoch: int
    samples: list = field(default_factory=list)

    @property
    def p(self) -> tuple[float, float, float]:
        """Mean p over prompts (mean within each prompt first), t interval over prompts clipped to [0, 1]."""
        known = [s for s in self.samples if s.p is not None]
        return clustered_mean_ci95([s.p for s in known], [s.prompt_index for s in known], 0.0, 1.0)

    def by_index(self) -> dict[int, float]:
        return {s.index: s.p for s in self.samples if s.p is not None}


@dataclass
class ArmState:
    name: str
    spec: str = ""
    trainable: int = 0
    total: int = 0
    flop_ratio: float = math.nan
    r_pred: float = math.nan
    grid: dict = field(default_factory=dict)
    losses: array = field(default_factory=lambda: array("d"))  # aligned with RunState.steps; nan = no value
    dts: array = field(default_factory=lambda: array("d"))  # step times, aligned the same way
    loss_last: float = math.nan
    dt_last: float = math.nan
    dt_ema: float = math.nan
    lr_last: float = math.nan
    time_total: float = 0.0  # sum of this arm's own step times
    epochs: list[tuple[int, ev.ArmEpoch]] = field(default_factory=list)  # (epoch, its epoch_end record)
    dw_event: ev.DW | None = None  # the latest dw event that had this arm (decoded only when read)
    samples: SampleSet | None = None  # the latest set
    stopped: str = ""  # why this arm stopped early (NaN loss, ...)
    device: str = ""  # where this arm trains, when run_start says (several devices: placement)
    step_zero: ev.ArmMeasures | None = None  # the step_zero event's measures (retain loss, expected S, ...)
    nonfinite_step: int = -1  # the first step whose record had a NaN/inf loss (engine/log/alerts.py)
    best_loss: BestLoss = field(default_factory=BestLoss)  # lowest smoothed training loss (engine/log/best.py)

    def restarted(self) -> ArmState:
        """This arm as run_start described it, before any step: how a new replicate begins."""
        kept = ("spec", "trainable", "total", "flop_ratio", "r_pred", "grid", "device")
        return ArmState(self.name, **{name: getattr(self, name) for name in kept})

    @property
    def predicted_saving(self) -> float:
        """r predicted by the FLOP model: r_pred if logged, else 1 - flop_ratio."""
        if not math.isnan(self.r_pred):
            return self.r_pred
        return 1.0 - self.flop_ratio if not math.isnan(self.flop_ratio) else math.nan

    @property
    def trainable_pct(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else math.nan

    @property
    def dw_record(self) -> ev.ArmDW:
        """The latest norms of this arm (decoded now: read it once per drawing)."""
        record = self.dw_event.arm(self.name) if self.dw_event is not None else None
        return record if record is not None else ev.ArmDW()

    @property
    def dw(self) -> dict:
        """Latest ||W_t - W_{t-1}||_F per matrix."""
        return self.dw_record.dw

    @property
    def drift(self) -> dict:
        """Latest ||W_t - W_0||_F per matrix."""
        return self.dw_record.drift

    @property
    def rel(self) -> dict:
        """Latest ||W_t - W_{t-1}||_F / ||W_t||_F per matrix."""
        return self.dw_record.rel


@dataclass(frozen=True)
class ActivityRecord:
    """What the engine was doing at its latest heartbeat (log time `t`): `phase` for `seconds` so far;
    step/epoch -1 when none applies; pid/host of the writing process."""

    phase: str
    seconds: float
    t: float
    step: int = -1
    epoch: int = -1
    pid: int = 0
    host: str = ""


@dataclass
class Message:
    seq: int
    t: float
    level: str  # warning | error
    message: str
    arm: str | None = None
    fatal: bool = False


class RunState:
    """Fold events with apply(); read fields and the derived properties."""

    # set by _start_replicate
    steps: array
    step_t: array
    step: int
    epoch: int
    dw_step: int
    epoch_starts: list[int]
    dw_history: deque
    pre_samples: SampleSet | None
    plan_changes: list[ev.PlanChange]

    def __init__(self) -> None:
        self.status = "loading"  # loading | running | finished | stopped | failed
        self.run_id = ""
        self.producer = ""
        self.config: dict = {}
        self.model: dict = {}
        self.data: dict = {}
        # the views the product reads them through (issue 19): the dicts above stay as the log wrote them
        self.settings = ev.RunSettings()
        self.model_info = ev.ModelInfo()
        self.data_info = ev.DataInfo()
        self.common_tokens: list = []
        self.arms: dict[str, ArmState] = {}
        self._start_replicate()
        self.t_start = math.nan
        self.t_last = math.nan
        self.messages: deque[Message] = deque(maxlen=MESSAGE_LIMIT)
        self.summary: dict = {}
        self.activity: ActivityRecord | None = None  # None: no heartbeat yet (or a log from before heartbeats)
        self.gpus: list[dict] = []  # the latest GPU readings, [{index, name, mem_used, mem_total, util}]
        self.gpus_t = math.nan
        self.system: dict = {}  # the latest CPU/RAM/RSS readings (engine/run/system.py), from heartbeats
        self.replicate = 0  # which replicate of `replicates` (--seeds N) the steps belong to
        self.replicates = 1
        self.past: list[RunState] = []  # finished replicates, each frozen as it ended
        self.n_events = 0
        self.n_skipped = 0
        self.passes = PassClock()  # validation and sampling passes measured so far (for the ETA)
        self.start_trainable: dict[str, int] = {}  # run_start's trainable count per arm (a resume restores it)

    # -- folding -------------------------------------------------------------------------------
    def apply(self, event: ev.Event) -> None:
        handler = self._HANDLERS.get(event.kind)
        self.n_events += 1
        if self.n_events == 1:
            self.t_start = event.t
        self.t_last = event.t
        if handler is None:
            return
        try:
            handler(self, event)
        except (TypeError, ValueError, KeyError, AttributeError):
            # A hand-edited or corrupt log: keep what is known, say what was skipped.
            self.n_skipped += 1
            self._message("warning", f"skipped a malformed {event.kind} event (seq {event.seq})", event)

    def apply_all(self, events) -> RunState:
        apply = self.apply
        for event in events:
            apply(event)
        return self

    def _header(self, e: ev.Header) -> None:
        self.run_id, self.producer = str(e.run_id), str(e.producer)

    def _run_start(self, e: ev.RunStart) -> None:
        self.status = "running"
        self.config, self.model, self.data = dict(e.config), dict(e.model), dict(e.data)
        self.settings, self.model_info, self.data_info = e.settings(), e.model_info(), e.data_info()
        self.common_tokens = list(e.common_tokens)
        for arm in e.arms:
            self.arms[str(arm.name)] = ArmState(
                name=str(arm.name),
                spec=str(arm.spec),
                trainable=int(arm.trainable),
                total=int(arm.total),
                flop_ratio=_num(arm.flop_ratio),
                r_pred=_num(arm.r_pred),
                grid=arm.grid or {},
                device=str(arm.device or ""),
            )
        self.passes.begin(e.t)
        self.start_trainable = {name: arm.trainable for name, arm in self.arms.items()}

    def _step(self, e: ev.Step) -> None:
        # the hottest path of reading a log: plain floats skip the _num conversion
        if e.epoch != self.epoch:
            self.epoch_starts.append(e.step)
        self.step, self.epoch = e.step, e.epoch
        self.steps.append(e.step)
        self.step_t.append(e.t)
        records = e.arms
        for name, arm in self.arms.items():
            rec = records.get(name)
            if rec is None:
                arm.losses.append(math.nan)
                arm.dts.append(math.nan)
                continue
            loss, dt, lr = rec.loss, rec.dt, rec.lr
            loss = loss if type(loss) is float else _num(loss)
            dt = dt if type(dt) is float else _num(dt)
            if loss - loss != 0.0 and arm.nonfinite_step < 0:  # NaN or inf (written as null): not a loss
                arm.nonfinite_step = e.step
            arm.loss_last, arm.dt_last = loss, dt
            arm.lr_last = lr if type(lr) is float else _num(lr)
            arm.losses.append(loss)
            arm.dts.append(dt)
            arm.best_loss.add(loss, e.step)
            if dt == dt:  # not nan
                arm.time_total += dt
                arm.dt_ema = dt if arm.dt_ema != arm.dt_ema else 0.9 * arm.dt_ema + 0.1 * dt

    def _dw(self, e: ev.DW) -> None:
        # Keep references only: a dw event holds hundreds of norms and views read just the latest.
        self.dw_step = e.step
        self.dw_history.append((e.step, e))
        for arm in self.arms.values():
            if not arm.stopped:
                arm.dw_event = e

    def _step_zero(self, e: ev.StepZero) -> None:
        for name, rec in e.arms.items():
            if name in self.arms:
                self.arms[name].step_zero = rec
        self.passes.step_zero(e.t)

    def _epoch_end(self, e: ev.EpochEnd) -> None:
        for name, rec in e.arms.items():
            if name in self.arms:
                self.arms[name].epochs.append((e.epoch, rec))
        self.passes.epoch_end(e.t, self.step_t[-1] if self.step_t else math.nan)

    def _sample(self, e: ev.Sample) -> None:
        self.passes.sample(e.t, self.replicate, str(e.phase), int(e.epoch), str(e.arm))
        if e.phase == "pre":
            if self.pre_samples is None:
                self.pre_samples = SampleSet("pre", -1)
            self.pre_samples.samples.append(e)
            return
        arm = self.arms.get(e.arm)
        if arm is None:
            return
        if arm.samples is None or (arm.samples.phase, arm.samples.epoch) != (e.phase, e.epoch):
            arm.samples = SampleSet(e.phase, e.epoch)
        arm.samples.samples.append(e)

    def _replicate(self, e: ev.Replicate) -> None:
        """A new replicate: what the last one showed is kept whole in `past`; the views start afresh."""
        self.replicates = max(int(e.of), 1)
        if self.step >= 0 or self.pre_samples is not None:
            done = RunState()
            done.__dict__.update({k: v for k, v in self.__dict__.items() if k != "past"})
            self.past.append(done)
            self._start_replicate()
        self.replicate = int(e.replicate)
        self.passes.begin(e.t)

    def _start_replicate(self) -> None:
        """The fields one replicate fills, fresh: the one place that lists them, for `__init__` and each
        new replicate alike (a second list once forgot `step_t`, so replicate 2 drew on replicate 1's
        clock). Arms keep what run_start said of them."""
        self.arms = {name: arm.restarted() for name, arm in self.arms.items()}
        self.steps = array("q")
        self.step_t = array("d")  # each step event's time (unix s), aligned with steps: a wall-time axis
        self.epoch_starts = []  # step index where each epoch began
        self.step = -1
        self.epoch = -1
        self.dw_step = -1
        self.dw_history = deque(maxlen=DW_HISTORY)  # (step, its dw event)
        self.pre_samples = None
        self.plan_changes = []

    def _plan_change(self, e: ev.PlanChange) -> None:
        self.plan_changes.append(e)
        arm = self.arms.get(e.arm)
        if arm is not None:
            arm.trainable = int(e.trainable)

    def _warning(self, e: ev.Warning) -> None:
        self._message("warning", e.message, e)

    def _error(self, e: ev.Error) -> None:
        self._message("error", e.message, e, fatal=bool(e.fatal))
        if e.arm in self.arms and not e.fatal:
            self.arms[e.arm].stopped = str(e.message)

    def _run_end(self, e: ev.RunEnd) -> None:
        self.status = str(e.status)
        self.summary = ev.read_summary(e.summary)

    def _heartbeat(self, e: ev.Heartbeat) -> None:
        self.activity = ActivityRecord(
            str(e.phase), _num(e.seconds), e.t, int(e.step), int(e.epoch), int(e.pid), str(e.host)
        )
        if e.gpus:
            self.gpus, self.gpus_t = [g for g in e.gpus if isinstance(g, dict)], e.t
        if isinstance(e.system, dict) and e.system:
            self.system = {**e.system, "t": e.t}

    def _message(self, level: str, text: str, e: ev.Event, fatal: bool = False) -> None:
        arm = getattr(e, "arm", None)
        self.messages.append(Message(e.seq, e.t, level, str(text), arm if isinstance(arm, str) else None, fatal))

    _HANDLERS: dict[str, Callable[[RunState, Any], None]] = {
        "header": _header,
        "run_start": _run_start,
        "step": _step,
        "dw": _dw,
        "step_zero": _step_zero,
        "epoch_end": _epoch_end,
        "sample": _sample,
        "replicate": _replicate,
        "plan_change": _plan_change,
        "warning": _warning,
        "error": _error,
        "run_end": _run_end,
        "heartbeat": _heartbeat,
        "resumed": lambda self, e: undo_superseded(self, e),  # engine/log/superseded_state.py
    }

    # -- derived values (pure reads) -----------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.status in ("finished", "stopped", "failed")

    @property
    def baseline(self) -> str | None:
        """The arm savings are measured against: `full` if present, else the first arm."""
        if "full" in self.arms:
            return "full"
        return next(iter(self.arms), None)

    @property
    def elapsed(self) -> float:
        return 0.0 if math.isnan(self.t_start) else self.t_last - self.t_start

    @property
    def total_steps(self) -> int | None:
        """Planned optimizer steps, from the config and data size, if known."""
        max_steps, epochs = self.settings.max_steps, self.settings.epochs
        per_epoch = self.data_info.n_train_batches
        planned = per_epoch * epochs if per_epoch is not None and epochs is not None else None
        if max_steps is not None and max_steps > 0:
            return min(max_steps, planned) if planned else max_steps
        return planned

    @property
    def replicate_complete(self) -> bool:
        """Has the current replicate run all its steps, each arm's last validation included? A run
        stopped part-way through seed k must not mix that seed's partial numbers into the summary."""
        if self.status == "finished":
            return True
        total = self.total_steps
        return (
            total is not None
            and self.step + 1 >= total
            and all(arm.epochs and arm.epochs[-1][0] == self.epoch for arm in self.arms.values())
        )

    @property
    def finished_replicates(self) -> list[RunState]:
        """The replicates that ran to their end (--seeds N): the earlier ones, and this one if complete."""
        return [*self.past, self] if self.replicate_complete else list(self.past)

    def arm_time(self, name: str) -> float:
        """T for an arm: the last epoch's t_total once an epoch ended, else the sum of step times."""
        arm = self.arms[name]
        summary = ev.summary_arms(self.summary).get(name, {})
        if isinstance(summary.get("T"), (int, float)):
            return float(summary["T"])
        t_total = arm.epochs[-1][1].t_total if arm.epochs else None
        if isinstance(t_total, (int, float)):
            return max(float(t_total), arm.time_total)
        return arm.time_total

    def saving(self, name: str) -> float:
        """r = (T_full - T_arm) / T_full, measured so far."""
        base = self.baseline
        if base is None or name not in self.arms:
            return math.nan
        return saving(self.arm_time(base), self.arm_time(name))

    @property
    def tokens_per_step(self) -> float:
        """Training tokens one optimizer step sees: batch_size * block_size (nan if not logged)."""
        return _num(self.settings.batch_size) * _num(self.settings.block_size)

    def tokens_per_s(self, name: str) -> float:
        tokens = self.tokens_per_step
        dt = self.arms[name].dt_ema
        return tokens / dt if tokens and dt and not math.isnan(dt) and dt > 0 else math.nan

    def p_pre(self) -> tuple[float, float, float]:
        return self.pre_samples.p if self.pre_samples else (math.nan, math.nan, math.nan)

    def p_post(self, name: str) -> tuple[float, float, float]:
        arm = self.arms[name]
        return arm.samples.p if arm.samples else (math.nan, math.nan, math.nan)

    def delta_p(self, name: str) -> float:
        return self.p_post(name)[0] - self.p_pre()[0]

    def delta_p_ci(self, name: str) -> tuple[float, float, float]:
        """Paired Δp: sample i before and after share prompt and seed; interval clipped to [-1, 1]."""
        arm = self.arms[name]
        if self.pre_samples is None or arm.samples is None:
            return math.nan, math.nan, math.nan
        pre, post = self.pre_samples.by_index(), arm.samples.by_index()
        prompts = {s.index: s.prompt_index for s in arm.samples.samples}
        both = sorted(set(pre) & set(post))
        return clustered_mean_ci95([post[i] - pre[i] for i in both], [prompts[i] for i in both], -1.0, 1.0)

    @property
    def common_base_rate(self) -> float:
        """The share of S tokens in the validation split: the p a model that copies the text scores."""
        return _num(self.data_info.common_base_rate)


def _num(value) -> float:
    """Numbers from a log as float; None (a NaN/inf written as null) and junk become nan."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _last(values: array) -> float:
    return values[-1] if len(values) else math.nan
