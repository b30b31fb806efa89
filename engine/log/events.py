"""The run log's schema (schema 1): one typed event per kind and the JSON codec. No torch.

With engine/log/records.py (the per-arm records the events carry and the parts of run_end.summary) this
is the one schema, in two files to keep each under 500 lines: every key of the log is a field of these
two modules and nowhere else; producers build these types, readers read their attributes. Events hold
plain numbers, strings, lists and dicts only: they cross threads, go to disk and come back identical
(docs/DECISIONS.md, "Event log"). msgspec tagged structs: `kind` is the tag, written first; fields are
written in the order declared; a schema-1 addition that older logs lack is UNSET by default, so an old
line re-encodes to its own bytes; unknown fields are ignored; NaN/inf are written as null.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar, Union

import msgspec
from msgspec import UNSET, Raw, UnsetType

from engine.core.errors import LogError

# the schema's second file (per-arm records, run_end.summary's parts), re-exported: the one schema has one
# import path, engine.log.events; nothing else imports engine.log.records (tests/unit/test_schema.py)
from engine.log.records import (  # noqa: F401
    MAX_ABS,
    MAX_INT,
    SEED_MEANS,
    SUMMARY_PER_ARM,
    AdapterRecord,
    ArmDW,
    ArmEpoch,
    ArmMeasures,
    ArmRecord,
    ArmStep,
    ArmSummary,
    ArmThroughput,
    DataInfo,
    Float,
    Int,
    Interval,
    KernelsRecord,
    MergedRun,
    ModelInfo,
    NormMap,
    PhaseTimes,
    RetainRecord,
    RunSettings,
    SeedMean,
    SessionReadings,
    StudyMethod,
    StudyResult,
    ThroughputRecord,
    Value,
    epoch_record,
    lenient,
    measured,
    measured_value,
    read_summary,
    run_summary,
    summary_arms,
)

SCHEMA = 1
MAX_DEPTH = 32  # events nest 5 levels; configs and summaries a few more (bounds of numbers: records.py)


# -- events ---------------------------------------------------------------------------------------------


class Event(msgspec.Struct, frozen=True, tag_field="kind"):
    """Base of every event; `seq` and `t` are set by whoever emits it (see `stamped`)."""

    kind: ClassVar[str] = ""
    seq: Int = 0
    t: Float = 0.0


class Header(Event, tag="header", frozen=True):
    kind: ClassVar[str] = "header"
    schema: Int = SCHEMA
    producer: str = ""
    run_id: str = ""


class RunStart(Event, tag="run_start", frozen=True):
    """config: all settings; model: {name, n_params, n_blocks, arch, ...};
    data: {n_tokens, n_unique, n_train_batches, n_val_batches, ...};
    common_tokens: [[id, text], ...] most frequent first;
    arms: one ArmRecord per arm, in the run's order."""

    kind: ClassVar[str] = "run_start"
    config: dict[str, Any] = {}
    model: dict[str, Any] = {}
    data: dict[str, Any] = {}
    common_tokens: list = []
    arms: list[ArmRecord] = []

    def settings(self) -> RunSettings:
        """config as the product reads it (the dict stays as written: its bytes, every key)."""
        return lenient(self.config, RunSettings)

    def model_info(self) -> ModelInfo:
        return lenient(self.model, ModelInfo)

    def data_info(self) -> DataInfo:
        return lenient(self.data, DataInfo)


class Step(Event, tag="step", frozen=True):
    """One optimizer step of every arm."""

    kind: ClassVar[str] = "step"
    step: Int = 0
    epoch: Int = 0
    arms: dict[str, ArmStep] = {}


EMPTY = Raw(b"{}")


class DW(Event, tag="dw", frozen=True):
    """Weight changes of every measured arm, as three {arm: {matrix: norm}} maps (see ArmDW). They stay
    undecoded JSON (msgspec.Raw) until read: a dw line carries hundreds of norms and most readers (report,
    replay at max speed) look at the last few only, so decoding them all would dominate reading a log.
    Build one with `DW.of`; read it with `by_arm` / `arm`."""

    kind: ClassVar[str] = "dw"
    step: Int = 0
    arms: Raw = EMPTY
    drift: Raw = EMPTY
    rel: Raw = EMPTY

    @classmethod
    def of(cls, step: int, records: Mapping[str, ArmDW], seq: int = 0, t: float = 0.0) -> DW:
        maps = [{name: getattr(rec, part) for name, rec in records.items()} for part in ArmDW.__struct_fields__]
        return cls(seq, t, step, *(Raw(_encoder.encode(m)) for m in maps))

    def by_arm(self) -> dict[str, ArmDW]:
        """Every arm's record, decoded now (malformed content reads as no norms)."""
        dw, drift, rel = (_norm_maps(raw) for raw in (self.arms, self.drift, self.rel))
        return {name: ArmDW(norms, drift.get(name, {}), rel.get(name, {})) for name, norms in dw.items()}

    def arm(self, name: str) -> ArmDW | None:
        return self.by_arm().get(name)

    def norms_of(self, name: str) -> NormMap | None:
        """One arm's dw map alone (drift and rel stay undecoded); None when this event lacks the arm."""
        return _norm_maps(self.arms).get(name)


class StepZero(Event, tag="step_zero", frozen=True):
    """Every arm's measures before its first step (all arms hold the same weights then, so the values are
    equal). Forgetting at a validation = its retain_loss there minus the retain_loss here."""

    kind: ClassVar[str] = "step_zero"
    arms: dict[str, ArmMeasures] = {}


class EpochEnd(Event, tag="epoch_end", frozen=True):
    kind: ClassVar[str] = "epoch_end"
    epoch: Int = 0
    arms: dict[str, ArmEpoch] = {}


class Sample(Event, tag="sample", frozen=True):
    """One generated sample. tokens: [[text, in_S], ...] for the generated part; ids: their token
    ids (same length), so p recounts from the log; p: share of generated tokens in S. index/epoch
    say which sample of which set; sample `index` of every arm and phase has the same prompt
    (`prompt_index`) and seed, which pairs pre and post samples."""

    kind: ClassVar[str] = "sample"
    phase: str = "pre"
    arm: str = "*"
    prompt: str = ""
    text: str = ""
    tokens: list = []
    p: Value = 0.0  # None: no tokens generated (NaN is written as null)
    index: Int = 0
    epoch: Int = -1
    ids: list[Int] | UnsetType = UNSET
    prompt_index: Int | UnsetType = UNSET


class Replicate(Event, tag="replicate", frozen=True):
    """The start of replicate `replicate` (0-based) of `of`: the whole paired experiment again, from
    the same initial weights, with `seed` for data order, dropout and samples (--seeds N)."""

    kind: ClassVar[str] = "replicate"
    replicate: Int = 0
    of: Int = 1
    seed: Int = 0


class PlanChange(Event, tag="plan_change", frozen=True):
    kind: ClassVar[str] = "plan_change"
    step: Int = 0
    arm: str = ""
    trainable: Int = 0
    rule: str = ""


class Warning(Event, tag="warning", frozen=True):
    kind: ClassVar[str] = "warning"
    message: str = ""
    arm: str | None = None


class Error(Event, tag="error", frozen=True):
    """detail: the traceback of an unexpected exception (for the log, never the terminal)."""

    kind: ClassVar[str] = "error"
    message: str = ""
    arm: str | None = None
    fatal: bool = False
    detail: str = ""


class RunEnd(Event, tag="run_end", frozen=True):
    """status: finished | stopped | failed. summary: {"arms": {arm: {T, loss_final,
    p_pre, p_post, ...}}, "r": {arm: r vs full}, ...} (engine.log.summary.summarize)."""

    kind: ClassVar[str] = "run_end"
    status: str = "finished"
    summary: dict[str, Any] = {}


class Heartbeat(Event, tag="heartbeat", frozen=True):
    """What the engine is doing, written at least every 2 s while it lives (a schema-1 addition).
    phase: one of engine.core.activity.PHASES; seconds: time in that phase so far; step/epoch: -1 when
    none applies; pid/host: the writing process, so a viewer on the same host can tell whether it
    still lives; gpus: NVML readings of the run's CUDA devices, [{index, name, mem_used, mem_total,
    util}] (bytes, %), on some heartbeats only (empty on the others, on CPU and without NVML)."""

    kind: ClassVar[str] = "heartbeat"
    phase: str = ""
    seconds: Float = 0.0
    step: Int = -1
    epoch: Int = -1
    pid: Int = 0
    host: str = ""
    gpus: list = []
    session: dict = {}  # {torch_threads, cpu_count, physical_cores, load_avg} (issue 18)
    system: dict | UnsetType = UNSET  # {cpu_pct, cpu_count, ram_used, ram_total, rss} (%, bytes), issue 20


class Resumed(Event, tag="resumed", frozen=True):
    """`run --resume` continued this log from a checkpoint (issue 21). The run goes on at `step` (the
    first step run again) of `epoch`, replicate `replicate`; every event after seq `after_seq` and before
    this one was written by the killed run past its checkpoint and is superseded: readers drop it, so
    every step has one value. checkpoint: the folder it resumed from; superseded_steps: how many step
    events of the killed run that drops."""

    kind: ClassVar[str] = "resumed"
    step: Int = 0
    epoch: Int = 0
    replicate: Int = 0
    after_seq: Int = -1
    checkpoint: str = ""
    superseded_steps: Int = 0


KINDS = (
    Header,
    RunStart,
    Step,
    DW,
    StepZero,
    EpochEnd,
    Sample,
    Replicate,
    PlanChange,
    Warning,
    Error,
    RunEnd,
    Heartbeat,
    Resumed,
)
EVENT_TYPES: dict[str, type[Event]] = {cls.kind: cls for cls in KINDS}
AnyEvent = Union[KINDS]  # type: ignore[valid-type]  # noqa: UP007 - built from the tuple
# kinds whose typed fields bound every number; the others hold free-form values (configs, summaries,
# token lists) that check_value bounds after decoding
_TYPED = (Step, DW, StepZero, EpochEnd, Replicate, PlanChange, Warning, Error)


def stamped(event: Event, seq: int, t: float) -> Event:
    """The event as emitted: its place in the log and its time."""
    return msgspec.structs.replace(event, seq=seq, t=t)


E = TypeVar("E", bound=msgspec.Struct)


def replaced(event: E, **changes: Any) -> E:
    """A copy of an event (or a record) with some fields changed (events are frozen)."""
    return msgspec.structs.replace(event, **changes)


def joined_dw(parts: list[tuple[DW, Mapping[str, str]]]) -> DW:
    """One dw event holding the maps of several (each with its arms renamed: {name in it: new name}).
    Only the arm level is decoded: each arm's norms are copied as the JSON they are."""
    maps = [{} for _ in ArmDW.__struct_fields__]  # type: list[dict[str, Raw]]
    for event, names in parts:
        for joined, raw in zip(maps, (event.arms, event.drift, event.rel), strict=True):
            joined.update((names.get(arm, arm), norms) for arm, norms in _arm_level(raw).items())
    first = parts[0][0] if parts else DW()
    return msgspec.structs.replace(first, **dict(zip(DW_MAPS, (Raw(_encoder.encode(m)) for m in maps), strict=True)))


DW_MAPS = ("arms", "drift", "rel")  # DW's map fields, in the order of ArmDW's


# -- the codec ------------------------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()
_event_decoder = msgspec.json.Decoder(AnyEvent)
_norms_decoder = msgspec.json.Decoder(dict[str, NormMap])
_arm_level_decoder = msgspec.json.Decoder(dict[str, Raw])


def _arm_level(raw: Raw) -> dict[str, Raw]:
    try:
        return _arm_level_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return {}


def _norm_maps(raw: Raw) -> dict[str, NormMap]:
    try:
        return _norms_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return {}


def to_dict(event: Event) -> dict:
    """The event as plain JSON values, `kind` first."""
    return _decoder.decode(encode(event))


def encode(event: Event) -> bytes:
    """One JSON line (without newline)."""
    return _encoder.encode(event)


def line_mark(kind: type[Event]) -> bytes:
    """What every logged line of this kind holds (msgspec writes the tag first: {"kind":"resumed",...}):
    for scans of a log's bytes that need not decode them."""
    return b'"kind":"' + kind.kind.encode() + b'"'


def check_value(obj: Any) -> None:
    """Raise LogError for nesting deeper than MAX_DEPTH or a number out of range (iterative: a crafted
    line must not exhaust the stack)."""
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, msgspec.Struct):  # a typed record inside a free-form event (run_start.arms)
            value = msgspec.structs.asdict(value)
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
    check_value(obj)
    try:  # through JSON: a dw event's maps are kept as JSON (Raw)
        return msgspec.json.decode(_encoder.encode(obj), type=cls)
    except msgspec.ValidationError as exc:
        raise LogError(f"bad {kind} event: {exc}") from None


def decode(line: bytes | str) -> Event:
    """Parse one JSON line into its event; raises LogError on anything malformed."""
    try:
        event = _event_decoder.decode(line)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return _decode_slowly(line)  # the generic path words the error
    if not isinstance(event, _TYPED):
        check_value(msgspec.structs.asdict(event))
    return event


def _decode_slowly(line: bytes | str) -> Event:
    try:
        obj = _decoder.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise LogError(f"not valid JSON ({exc})") from None
    except RecursionError:
        raise LogError(f"values nested deeper than {MAX_DEPTH} levels") from None
    return from_dict(obj)
