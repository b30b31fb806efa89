"""The run log's per-arm records and the parts of run_end.summary: the second file of the one schema. No torch.

engine/log/events.py holds the events, which carry these records, and the codec; the two modules are one
schema (split to stay under 500 lines each): every key of the log is a field of one of them and nowhere
else. Everything events.py says of its types holds here: fields are written in the order declared, a
schema-1 addition is UNSET by default (an old line re-encodes to its own bytes), NaN/inf are written as null.
events.py re-exports every name of this module: read them as `engine.log.events.X`, the schema's one import path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, NamedTuple, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

# A reader trusts nothing: numbers a run cannot write (a step of 2**63, a loss of 1e308 that overflows
# every sum) and nesting deeper than any event has are refused as "not a run log", never a traceback.
MAX_INT = 2**53  # what a float holds exactly; seq, step and epoch stay far below
MAX_ABS = 1e100  # float32 values (losses, norms) end near 3.4e38; sums of 2**53 of them stay finite
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


class StudyMethod(msgspec.Struct, frozen=True):
    """A method arm of `freeze-tui study` (engine.log.study): its r and validation gap vs full with its
    interval, its validation loss vs the mean of the random arms with a 95 % interval and how that interval
    was made, the random arms, the gap to each of them, and the verdict. None: not finite (read back from a log)."""

    r: Value = math.nan
    val_gap: Value = math.nan
    val_gap_ci: tuple[Value, Value] = (math.nan, math.nan)
    vs_random: Value = math.nan
    vs_random_ci: tuple[Value, Value] = (math.nan, math.nan)
    vs_random_basis: str = ""
    randoms: Sequence[str] = ()
    vs_each_random: dict[str, Value] = {}
    verdict: str = ""


class StudyResult(msgspec.Struct, frozen=True):
    """run_end.summary["study"] (runs with --arm-roles): each arm's role and each method arm's result."""

    roles: dict[str, str] = {}
    methods: dict[str, StudyMethod] = {}


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


# -- read-side views of run_start's config, model and data (issue 19) ---------------------------------
# run_start keeps the three dicts as written (their bytes, every key a writer adds); readers take these
# views of them, decoded once with `lenient`: a key the product reads is a field here, never a string.

_S = TypeVar("_S", bound=msgspec.Struct)


def lenient(raw: object, kind: type[_S]) -> _S:
    """`kind` read from a dict of a log, never raising: the fields whose values have the declared type (as
    strictly as the log is read: "4" is no number, true no count), the rest left at their defaults."""
    if not isinstance(raw, Mapping):
        return kind()
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError:
        pass
    kept = {}
    for name in kind.__struct_fields__:
        if name in raw:
            try:
                msgspec.convert({name: raw[name]}, kind)
            except msgspec.ValidationError:
                continue
            kept[name] = raw[name]
    return msgspec.convert(kept, kind)


class SessionReadings(msgspec.Struct, frozen=True):
    """run_start.config["session"]: the session every r of the run holds for (engine/run/session_info.py);
    UNSET: not logged (None: logged as unknown)."""

    torch_threads: int | None | UnsetType = UNSET
    cpu_count: int | None | UnsetType = UNSET
    physical_cores: int | None | UnsetType = UNSET
    load_avg: list[float] | None | UnsetType = UNSET  # 1, 5 and 15 minutes


class MergedRun(msgspec.Struct, frozen=True):
    """One run of merged logs, in run_start.config["runs"] (engine/log/merge.py): its name, header run id,
    model, arms (as renamed), short name and the settings in which it differs from the others."""

    name: str | None = None
    run_id: str | None = None
    model: str | None = None
    arms: list[str] | None = None
    short: str | None = None
    settings: dict[str, Any] = {}


class RunSettings(msgspec.Struct, frozen=True):
    """run_start.config as the product reads it (the settings of RunConfig, the run's device and session,
    and what `merge` adds: `runs`); None: not logged, or not of its type."""

    name: str | None = None
    run_name: str | None = None
    device: str | None = None
    log: str | None = None
    model: str | None = None
    data: list[str] | None = None
    epochs: int | None = None
    max_steps: int | None = None
    batch_size: int | float | None = None
    block_size: int | float | None = None
    val_blocks: int | None = None
    samples: int | None = None
    sample_prompts: int | None = None
    sample_tokens: int | None = None
    monitor: bool = True
    trust_remote_code: bool = False
    world_size: int | None = None
    equivalence_margin: int | float | None = None  # points of r
    arm_roles: str | None = None
    diverge_k: int | float | None = None
    session: dict[str, Any] | None = None  # {torch_threads, cpu_count, physical_cores, load_avg}
    runs: list[Any] | None = None  # merged logs: one {name, run_id, model, arms, short, settings} per run
    throughput: ThroughputRecord | None = None

    def readings(self) -> SessionReadings:
        """The session's readings (every one UNSET: not logged); `session` stays the dict as written."""
        return lenient(self.session, SessionReadings)

    def merged_runs(self) -> list[MergedRun]:
        """The runs of merged logs (`[]` for a single log), an entry that is no object left out."""
        return [lenient(run, MergedRun) for run in self.runs or [] if isinstance(run, Mapping)]


class ModelInfo(msgspec.Struct, frozen=True):
    """run_start.model as the product reads it."""

    name: str | None = None
    n_params: int | None = None
    n_blocks: int | None = None
    arch: str | None = None
    device: str | None = None
    path: str | None = None


class DataInfo(msgspec.Struct, frozen=True):
    """run_start.data as the product reads it."""

    source: str | None = None
    n_tokens: int | None = None
    n_unique: int | None = None
    n_train_batches: int | None = None
    n_val_batches: int | None = None
    n_val_blocks: int | None = None
    common_base_rate: float | None = None  # None: nan without a validation split
    sampler: str | None = None
    retain: RetainRecord | None = None
