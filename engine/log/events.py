"""Event dataclasses of the run log (schema 1) and their JSON codec. No torch.

Events hold plain numbers, strings, lists and dicts only: they cross threads,
go to disk and come back identical (DESIGN.md, "Event log").
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

import msgspec

from engine.errors import LogError

SCHEMA = 1

# A reader trusts nothing: numbers a run cannot write (a step of 2**63, a loss of 1e308 that overflows
# every sum) and nesting deeper than any event has are refused as "not a run log", never a traceback.
MAX_INT = 2**53  # what a float holds exactly; seq, step and epoch stay far below
MAX_ABS = 1e100  # float32 values (losses, norms) end near 3.4e38; sums of 2**53 of them stay finite
MAX_DEPTH = 32  # events nest 5 levels; configs and summaries a few more
Int = Annotated[int, msgspec.Meta(ge=-MAX_INT, le=MAX_INT)]
Float = Annotated[float, msgspec.Meta(ge=-MAX_ABS, le=MAX_ABS)]


@dataclass(frozen=True)
class Event:
    """Base of every event; `seq` and `t` are set by whoever emits it."""

    kind: ClassVar[str] = ""
    seq: int = 0
    t: float = 0.0


@dataclass(frozen=True)
class Header(Event):
    kind: ClassVar[str] = "header"
    schema: int = SCHEMA
    producer: str = ""
    run_id: str = ""


@dataclass(frozen=True)
class RunStart(Event):
    """config: all settings; model: {name, n_params, n_blocks, arch, ...};
    data: {n_tokens, n_unique, n_train_batches, n_val_batches, ...};
    common_tokens: [[id, text], ...] most frequent first;
    arms: [{name, spec, trainable, total, flop_ratio, r_pred, grid}, ...]."""

    kind: ClassVar[str] = "run_start"
    config: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    common_tokens: list = field(default_factory=list)
    arms: list = field(default_factory=list)


@dataclass(frozen=True)
class Step(Event):
    """arms: {arm: {loss, dt, lr}} for one optimizer step of every arm."""

    kind: ClassVar[str] = "step"
    step: int = 0
    epoch: int = 0
    arms: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DW(Event):
    """arms: {arm: {matrix: ||W_t - W_{t-1}||_F}}; drift: ||W_t - W_0||_F;
    rel: ||W_t - W_{t-1}||_F / ||W_t||_F. drift and rel are schema-1 extensions
    (optional; readers of older logs see them empty)."""

    kind: ClassVar[str] = "dw"
    step: int = 0
    arms: dict = field(default_factory=dict)
    drift: dict = field(default_factory=dict)
    rel: dict = field(default_factory=dict)


@dataclass(frozen=True)
class EpochEnd(Event):
    """arms: {arm: {loss_mean, loss_var, val_loss, t_epoch, t_total}}."""

    kind: ClassVar[str] = "epoch_end"
    epoch: int = 0
    arms: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Sample(Event):
    """One generated sample. tokens: [[text, in_S], ...] for the generated part; ids: their token
    ids (same length), so p recounts from the log; p: share of generated tokens in S. index/epoch
    say which sample of which set; sample `index` of every arm and phase has the same prompt
    (`prompt_index`) and seed, which pairs pre and post samples."""

    kind: ClassVar[str] = "sample"
    phase: str = "pre"
    arm: str = "*"
    prompt: str = ""
    text: str = ""
    tokens: list = field(default_factory=list)
    p: float | None = 0.0  # None: no tokens generated (NaN is written as null)
    index: int = 0
    epoch: int = -1
    ids: list = field(default_factory=list)
    prompt_index: int = 0


@dataclass(frozen=True)
class Replicate(Event):
    """The start of replicate `replicate` (0-based) of `of`: the whole paired experiment again, from
    the same initial weights, with `seed` for data order, dropout and samples (--seeds N)."""

    kind: ClassVar[str] = "replicate"
    replicate: int = 0
    of: int = 1
    seed: int = 0


@dataclass(frozen=True)
class PlanChange(Event):
    kind: ClassVar[str] = "plan_change"
    step: int = 0
    arm: str = ""
    trainable: int = 0
    rule: str = ""


@dataclass(frozen=True)
class Warning(Event):
    kind: ClassVar[str] = "warning"
    message: str = ""
    arm: str | None = None


@dataclass(frozen=True)
class Error(Event):
    """detail: the traceback of an unexpected exception (for the log, never the terminal)."""

    kind: ClassVar[str] = "error"
    message: str = ""
    arm: str | None = None
    fatal: bool = False
    detail: str = ""


@dataclass(frozen=True)
class RunEnd(Event):
    """status: finished | stopped | failed. summary: {"arms": {arm: {T, loss_final,
    p_pre, p_post, ...}}, "r": {arm: r vs full}}."""

    kind: ClassVar[str] = "run_end"
    status: str = "finished"
    summary: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Heartbeat(Event):
    """What the engine is doing, written at least every 2 s while it lives (a schema-1 addition).
    phase: one of engine.activity.PHASES; seconds: time in that phase so far; step/epoch: -1 when
    none applies; pid/host: the writing process, so a viewer on the same host can tell whether it
    still lives; gpus: NVML readings of the run's CUDA devices, [{index, name, mem_used, mem_total,
    util}] (bytes, %), on some heartbeats only (empty on the others, on CPU and without NVML)."""

    kind: ClassVar[str] = "heartbeat"
    phase: str = ""
    seconds: float = 0.0
    step: int = -1
    epoch: int = -1
    pid: int = 0
    host: str = ""
    gpus: list = field(default_factory=list)
    session: dict = field(default_factory=dict)  # {torch_threads, cpu_count, physical_cores, load_avg} (issue 18)


class _LazyLine:
    """One JSON line, decoded on first use (shared by the maps of a dw event)."""

    __slots__ = ("line", "_value")

    def __init__(self, line: bytes) -> None:
        self.line = line
        self._value: dict | None = None

    def get(self) -> dict:
        if self._value is None:
            try:
                value = _decoder.decode(self.line)
                check_value(value)
            except (msgspec.DecodeError, RecursionError, LogError):
                value = None
            self._value = value if isinstance(value, dict) else {}
        return self._value


class DeferredMap(Mapping):
    """A read-only mapping whose content is computed on first access (`_compute`, in subclasses)."""

    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value: dict | None = None

    def _compute(self) -> dict:
        raise NotImplementedError

    def _get(self) -> dict:
        if self._value is None:
            self._value = self._compute()
        return self._value

    def __getitem__(self, key):
        return self._get()[key]

    def __iter__(self) -> Iterator:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        return repr(self._get())


class LazyMap(DeferredMap):
    """A field of a dw line, decoded on first access. dw events carry hundreds of norms per line
    and most readers (report, replay at max speed) only look at the last few, so decoding them
    all would dominate reading a log. Malformed content reads as an empty mapping."""

    __slots__ = ("_line", "_key")

    def __init__(self, line: _LazyLine, key: str) -> None:
        super().__init__()
        self._line, self._key = line, key

    def _compute(self) -> dict:
        value = self._line.get().get(self._key)
        return value if isinstance(value, dict) else {}


class _DWHead(msgspec.Struct):
    """The small head of a dw line (codec-internal); the maps after it stay undecoded."""

    seq: Int = 0
    t: Float = 0.0
    step: Int = 0


class _StepLine(msgspec.Struct):
    """How a step line is read (codec-internal): typed, so it is validated while parsed."""

    seq: Int = 0
    t: Float = 0.0
    step: Int = 0
    epoch: Int = 0
    arms: dict[str, dict[str, Float | None]] = {}


def _built(cls: type[Event], **fields) -> Event:
    """An event from already validated fields, skipping the frozen dataclass __init__
    (its per-field object.__setattr__ was the slowest part of reading a long log)."""
    event = object.__new__(cls)
    event.__dict__.update(fields)
    return event


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (Header, RunStart, Step, DW, EpochEnd, Sample, Replicate, PlanChange, Warning, Error, RunEnd, Heartbeat)
}


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, DeferredMap):
        return obj._get()
    raise TypeError(f"cannot encode {type(obj).__name__}")


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
_decoder = msgspec.json.Decoder()


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: they are written as null (a NaN loss is reported by a warning event)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def to_dict(event: Event) -> dict:
    """The event as a JSON-ready dict, `kind` first."""
    out = {"kind": event.kind}
    for f in dataclasses.fields(event):
        out[f.name] = getattr(event, f.name)
    return out


def encode(event: Event) -> bytes:
    """One JSON line (without newline)."""
    try:
        return _encoder.encode(to_dict(event))
    except (TypeError, ValueError, OverflowError):
        return _encoder.encode(_finite(to_dict(event)))


def check_value(obj: Any) -> None:
    """Raise LogError for nesting deeper than MAX_DEPTH or a number out of range (iterative: a crafted
    line must not exhaust the stack)."""
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            if (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and not abs(value) <= _LIMIT[type(value)]
            ):
                raise LogError("a number is out of range")
            continue
        if depth > MAX_DEPTH:
            raise LogError(f"values nested deeper than {MAX_DEPTH} levels")
        stack.extend((v, depth + 1) for v in value)


_LIMIT = {int: MAX_INT, float: MAX_ABS}


def from_dict(obj: Any) -> Event:
    """Build the event for a decoded JSON object; unknown fields are ignored (forward compatible)."""
    if not isinstance(obj, dict):
        raise LogError("expected a JSON object")
    kind = obj.get("kind")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise LogError(f"unknown event kind {kind!r}")
    try:
        return msgspec.convert(obj, cls)
    except msgspec.ValidationError as exc:
        raise LogError(f"bad {kind} event: {exc}") from None


def _decode_dw(line: bytes) -> Event | None:
    """A dw line as our writer writes it: decode the head up to `"arms":`, keep the rest lazy."""
    cut = line.find(b',"arms":')
    if cut < 0:
        return None
    try:
        head = _dw_head_decoder.decode(line[:cut] + b"}")
    except msgspec.ValidationError as exc:
        raise LogError(f"bad dw event: {exc}") from None
    except msgspec.DecodeError:
        return None
    lazy = _LazyLine(line)
    return _built(
        DW,
        seq=head.seq,
        t=head.t,
        step=head.step,
        arms=LazyMap(lazy, "arms"),
        drift=LazyMap(lazy, "drift"),
        rel=LazyMap(lazy, "rel"),
    )


def _decode_step(line: bytes) -> Event | None:
    try:
        raw = _step_decoder.decode(line)
    except msgspec.ValidationError as exc:
        raise LogError(f"bad step event: {exc}") from None
    except msgspec.DecodeError:
        return None
    return _built(Step, seq=raw.seq, t=raw.t, step=raw.step, epoch=raw.epoch, arms=raw.arms)


_dw_head_decoder = msgspec.json.Decoder(_DWHead)
_step_decoder = msgspec.json.Decoder(_StepLine)
# The two kinds that make up nearly all of a long log, recognised by how our writer starts their lines.
_FAST_PATHS = {b'{"kind":"step",': _decode_step, b'{"kind":"dw",': _decode_dw}


def decode(line: bytes | str) -> Event:
    """Parse one JSON line into its event; raises LogError on anything malformed."""
    if isinstance(line, bytes):
        for prefix, fast in _FAST_PATHS.items():
            if line.startswith(prefix):
                event = fast(line)
                if event is not None:
                    return event
                break  # not in our writer's shape: the generic path reads or words the error
    try:
        obj = _decoder.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise LogError(f"not valid JSON ({exc})") from None
    except RecursionError:
        raise LogError(f"values nested deeper than {MAX_DEPTH} levels") from None
    check_value(obj)
    return from_dict(obj)
