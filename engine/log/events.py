"""The run log's schema (schema 1): one typed event per kind, its per-arm records, and the JSON codec. No torch.

Every key of the log is a field here and nowhere else: producers build these types, readers read their
attributes. Events hold plain numbers, strings, lists and dicts only: they cross threads, go to disk and
come back identical (docs/DECISIONS.md, "Event log"). msgspec tagged structs: `kind` is the tag, written
first; fields are written in the order declared; a schema-1 addition that older logs lack is UNSET by
default, so an old line re-encodes to its own bytes; unknown fields are ignored; NaN/inf are written as null.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, NamedTuple, TypeVar, Union

import msgspec
from msgspec import UNSET, Raw, UnsetType

from engine.core.errors import LogError

SCHEMA = 1

# A reader trusts nothing: numbers a run cannot write (a step of 2**63, a loss of 1e308 that overflows
# every sum) and nesting deeper than any event has are refused as "not a run log", never a traceback.
MAX_INT = 2**53  # what a float holds exactly; seq, step and epoch stay far below
MAX_ABS = 1e100  # float32 values (losses, norms) end near 3.4e38; sums of 2**53 of them stay finite
MAX_DEPTH = 32  # events nest 5 levels; configs and summaries a few more
Int = Annotated[int, msgspec.Meta(ge=-MAX_INT, le=MAX_INT)]
Float = Annotated[float, msgspec.Meta(ge=-MAX_ABS, le=MAX_ABS)]
Value = Float | None  # a measured number; None: not finite (written as null) or not measured
NormMap = dict[str, Value]  # matrix name (h.6.attn.q) -> a norm


# -- per-arm records ------------------------------------------------------------------------------------


class ArmStep(msgspec.Struct, frozen=True):
    """One arm's optimizer step: training loss, device-synchronised seconds, learning rate."""

    loss: Value = None
    dt: Value = None
    lr: Value = None


class ArmDW(msgspec.Struct, frozen=True):
    """One arm's weight changes per attention matrix: dw = ||W_t - W_{t-1}||_F, drift = ||W_t - W_0||_F,
    rel = ||W_t - W_{t-1}||_F / ||W_t||_F (drift and rel: empty in logs from before they were measured)."""

    dw: NormMap = {}
    drift: NormMap = {}
    rel: NormMap = {}


class ArmEpoch(msgspec.Struct, frozen=True):
    """One arm at an epoch's end: mean and variance of its step losses, validation loss (and per
    validation batch, the same batches for every arm, so arms pair), epoch time and time so far."""

    loss_mean: Value = None
    loss_var: Value = None
    val_loss: Value = None
    val_batches: Sequence[Value] | UnsetType = UNSET
    t_epoch: Value = None
    t_total: Value = None
    # with a retain set: loss on it (and per retain batch); expected share of S at the validation
    # positions (and per validation batch); absent from logs written before they were measured
    retain_loss: Value | UnsetType = UNSET
    retain_batches: Sequence[Value] | UnsetType = UNSET
    expected_s: Value | UnsetType = UNSET
    expected_s_batches: Sequence[Value] | UnsetType = UNSET

    @property
    def val_batch_losses(self) -> Sequence[Value]:
        return () if isinstance(self.val_batches, UnsetType) else self.val_batches


class ArmMeasures(msgspec.Struct, frozen=True):
    """One arm's measures before its first step (step_zero): validation loss, retain loss and expected
    share of S, each with its per-batch values (retain_* only with a retain set)."""

    val_loss: Value | UnsetType = UNSET
    val_batches: Sequence[Value] | UnsetType = UNSET
    retain_loss: Value | UnsetType = UNSET
    retain_batches: Sequence[Value] | UnsetType = UNSET
    expected_s: Value | UnsetType = UNSET
    expected_s_batches: Sequence[Value] | UnsetType = UNSET


def epoch_record(
    *, loss_mean: float, loss_var: float, t_epoch: float, t_total: float, measures: ArmMeasures | None = None
) -> ArmEpoch:
    """An arm's epoch_end record: its step totals and the measures taken at the epoch's end (the same
    fields as step_zero's). An arm that no longer trains is not measured: no validation loss (NaN), an
    empty list of batches, no retain or S measures."""
    m = ArmMeasures() if measures is None else measures
    return ArmEpoch(
        loss_mean=loss_mean,
        loss_var=loss_var,
        val_loss=math.nan if isinstance(m.val_loss, UnsetType) else m.val_loss,
        val_batches=[] if isinstance(m.val_batches, UnsetType) else m.val_batches,
        t_epoch=t_epoch,
        t_total=t_total,
        retain_loss=m.retain_loss,
        retain_batches=m.retain_batches,
        expected_s=m.expected_s,
        expected_s_batches=m.expected_s_batches,
    )


class RetainRecord(msgspec.Struct, frozen=True):
    """run_start.data["retain"] (runs with a retain set): tokens and blocks measured, validation batches
    they make, and where the text came from."""

    n_tokens: int = 0
    n_blocks: int = 0
    n_batches: int = 0
    source: str = ""


def measured_value(value):
    """None for a field the record does not have (UNSET), else the value."""
    return None if isinstance(value, UnsetType) else value


def measured(record: ArmEpoch | ArmMeasures | None, name: str):
    """A measure of an epoch_end or step_zero record by field name; None where it was not measured."""
    value = getattr(record, name, None) if record is not None else None
    return None if isinstance(value, UnsetType) else value


Interval = Sequence[float]  # [lo, hi] of a 95 % interval


class ArmSummary(msgspec.Struct, frozen=True):
    """One arm's numbers at the end of a run (engine.log.summary.arm_rows): what `report`, `export`, the
    headless end and the app show, and what run_end.summary.arms[arm] holds (with per-run extras such as
    state_bytes). NaN: unknown (written as null). r, its interval and the FLOP verdict are against the arm's
    own run's baseline (`baseline`), warm-up steps left out; `*_p_holm`: Holm-adjusted p values over the
    family of primary comparisons the report prints. With replicates (--seeds N) the headline numbers are
    means across seeds and `replicates` and the `*_ci` across seeds are set."""

    arm: str
    baseline: str = ""
    is_baseline: bool = False
    spec: str = ""
    trainable_pct: float = math.nan
    epochs: int = 0
    loss_first: float = math.nan
    loss_last: float = math.nan
    loss_basis: str = ""
    loss_var: float = math.nan
    val_loss: float = math.nan
    val_diff: float = math.nan
    val_diff_ci: Interval = (math.nan, math.nan)
    val_diff_df: int = 0
    T: float = math.nan
    r: float = math.nan
    r_ci: Interval = (math.nan, math.nan)
    r_note: str = ""  # why r has no interval ("too few steps for an interval", "T from separate runs: ...")
    r_median: float = math.nan
    r_median_ci: Interval | UnsetType = UNSET
    r_estimates_disagree: bool | UnsetType = UNSET
    r_steps: int | UnsetType = UNSET  # steps r is measured over (warm-up left out)
    r_block: int | UnsetType = UNSET  # the bootstrap's block length
    r_pred: float = math.nan
    r_over_pred: float | UnsetType = UNSET
    r_over_pred_ci: Interval | UnsetType = UNSET
    r_pred_verdict: str | None = None  # "agrees", "differs", "undecided" (± r_pred_margin); None: no verdict
    r_pred_margin: float | UnsetType = UNSET
    ci_basis: str = ""
    common_base_rate: float = math.nan
    sampler: str = ""
    p_pre: float = math.nan
    p_post: float = math.nan
    delta_p: float = math.nan
    delta_p_ci: Interval = (math.nan, math.nan)
    delta_p_df: int = 0
    stopped: str = ""
    replicates: int | UnsetType = UNSET
    val_loss_ci: Interval | UnsetType = UNSET
    loss_first_ci: Interval | UnsetType = UNSET
    loss_last_ci: Interval | UnsetType = UNSET
    T_ci: Interval | UnsetType = UNSET
    loss_final: float = math.nan
    p_pre_ci: Interval = (math.nan, math.nan)
    p_post_ci: Interval = (math.nan, math.nan)
    r_p_holm: float | UnsetType = UNSET
    val_diff_p_holm: float | UnsetType = UNSET
    delta_p_p_holm: float | UnsetType = UNSET
    family_size: int | UnsetType = UNSET
    # what the arm learnt and forgot (engine.log.frontier): runs that measured them (step_zero) only
    target_gain: float | UnsetType = UNSET
    target_gain_ci: Interval | UnsetType = UNSET
    retain_loss_pre: float | UnsetType = UNSET
    retain_loss: float | UnsetType = UNSET
    forgetting: float | UnsetType = UNSET
    forgetting_ci: Interval | UnsetType = UNSET
    forgetting_vs_full: float | UnsetType = UNSET
    forgetting_vs_full_ci: Interval | UnsetType = UNSET
    expected_s_pre: float | UnsetType = UNSET
    expected_s: float | UnsetType = UNSET
    pareto_time: bool | UnsetType = UNSET
    pareto_forget: bool | UnsetType = UNSET

    def to_summary(self, extra: Mapping[str, Any]) -> dict[str, Any]:
        """As run_end.summary.arms[arm]: these fields in order, then the extras."""
        return {**msgspec.to_builtins(self), **extra}


class SeedMean(NamedTuple):
    """An ArmSummary number that --seeds N reports as its mean across seeds, the field that holds its 95 %
    t-interval across seeds, and the bounds both are clipped to (None: not clipped)."""

    field: str
    interval: str
    bounds: tuple[float, float] | None = None


# every per-arm number of the summary that replicates average (none is the last seed's alone); an
# UNSET one (forgetting, target_gain: runs without step_zero measures) stays unset
SEED_MEANS = (
    SeedMean("val_loss", "val_loss_ci"),
    SeedMean("val_diff", "val_diff_ci"),
    SeedMean("r", "r_ci"),
    SeedMean("r_median", "r_median_ci"),
    SeedMean("delta_p", "delta_p_ci", (-1.0, 1.0)),
    SeedMean("loss_first", "loss_first_ci"),
    SeedMean("loss_last", "loss_last_ci"),
    SeedMean("T", "T_ci"),
    SeedMean("p_pre", "p_pre_ci", (0.0, 1.0)),
    SeedMean("p_post", "p_post_ci", (0.0, 1.0)),
    SeedMean("forgetting", "forgetting_ci"),
    SeedMean("target_gain", "target_gain_ci"),
)


def run_summary(arms: Sequence[ArmSummary], extra: Mapping[str, Mapping[str, Any]], **run: Any) -> dict[str, Any]:
    """run_end.summary: {"arms": {arm: its summary and extras}, "r": {arm: r vs the baseline}, **run}."""
    return {
        "arms": {a.arm: a.to_summary({k: v[a.arm] for k, v in extra.items() if a.arm in v}) for a in arms},
        "r": {a.arm: a.r for a in arms},
        **run,
    }


SUMMARY_PER_ARM = ("arms", "r")  # the parts of run_end.summary keyed by arm name


def summary_arms(summary: Mapping[str, Any]) -> dict[str, Any]:
    """run_end.summary's per-arm part, as read from any log (only its dict entries)."""
    arms = summary.get("arms")
    return {k: v for k, v in arms.items() if isinstance(v, dict)} if isinstance(arms, dict) else {}


def read_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """run_end.summary as views read it: summary["arms"][arm] are dicts (others are dropped)."""
    return {**summary, "arms": summary_arms(summary)}


class AdapterRecord(msgspec.Struct, frozen=True):
    """An adapter arm's adapters in its run_start record (under the kind's name: `lora`, `dora`): rank r,
    scale alpha (a float as written) and how many weight matrices carry one."""

    r: Int = 0
    alpha: Int | Float = 0.0
    matrices: Int = 0


class ArmRecord(msgspec.Struct, frozen=True):
    """One arm as run_start describes it (engine.plans.describe.arm_record): its name, spec, trainable and
    total parameter counts, the FLOP model's cost ratio and predicted saving r_pred, the plan grid
    (format in engine.plans.describe), the adapter kinds' own record, the initial weights' checksum, and,
    when placed, its device and memory plan in bytes ({weights, grads, optimizer, activations, total}).
    The field order is the order every writer has used (sample_runs/ re-encode byte-identically); an
    absent key stays UNSET and is not written. A new arm kind with its own record adds a field here."""

    name: str = ""
    spec: str = ""
    trainable: Int = 0
    total: Int = 0
    flop_ratio: Value | UnsetType = UNSET
    r_pred: Value | UnsetType = UNSET
    grid: dict[str, Any] | UnsetType = UNSET
    lora: AdapterRecord | UnsetType = UNSET
    dora: AdapterRecord | UnsetType = UNSET
    init_checksum: str | UnsetType = UNSET
    device: str | UnsetType = UNSET
    memory: dict[str, Int | Float] | UnsetType = UNSET  # bytes; a float as written stays one


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


# -- throughput parts of run_end.summary (issue 22) ---------------------------------------------------


class PhaseTimes(msgspec.Struct, frozen=True):
    """run_end.summary's wall seconds off the training steps, every arm and replicate together:
    generating samples (`sampling_s`) and validation with the retain and S measures (`validation_s`)."""

    sampling_s: float = math.nan
    validation_s: float = math.nan


class ArmThroughput(msgspec.Struct, frozen=True):
    """An arm's training throughput, in run_end.summary.arms[arm] (engine.log.throughput): tokens/s over
    its own step times, and MFU = its FLOP-model FLOPs per second / the devices' dense peak (None where
    no peak is known, e.g. on CPU)."""

    tokens_per_s: float | None = None
    mfu: float | None = None


class ThroughputRecord(msgspec.Struct, frozen=True):
    """run_start.config["throughput"] (runs since issue 22): per arm the FLOP model's FLOPs per trained
    token (its own plan at the run's block size) and the dense peak TFLOP/s of the devices it trains on
    (None: unknown, e.g. on CPU); peak_basis says where the peak came from."""

    flops_per_token: dict[str, float] = {}
    peak_tflops: dict[str, float | None] = {}
    peak_basis: str = ""


class KernelsRecord(msgspec.Struct, frozen=True):
    """run_start.config["kernels"] (runs since issue 22): what every arm's step ran with alike: the AdamW
    implementation, torch.compile's options (None: eager) and activation checkpointing (None: off)."""

    optimizer: str = ""
    compile: dict[str, Any] | None = None
    activation_checkpointing: str | None = None
