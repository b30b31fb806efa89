"""Everything a run needs before its first step: device, model, data, plans, prompt (torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
import torch

from engine.core.activity import Activity
from engine.core.errors import FreezeTuiError
from engine.core.textfiles import Corpus, read_corpus
from engine.log import events as ev
from engine.log.throughput import RECORD
from engine.plans.kinds import ArmPlan
from engine.plans.memory import PlanMemory
from engine.plans.planned import PlannedRun
from engine.plans.roles import ModelLayout, ParamSplit
from engine.run.config import RunConfig
from engine.run.session_info import cpu_threads, session_readings
from engine.train.data import TokenData, common_base_rate, measured_validation, tokenize_corpus
from engine.train.devices import resolve_device, resolve_devices  # noqa: F401 (resolve_device: old import path)
from engine.train.memory_plan import planned_run
from engine.train.models import LoadedModel
from engine.train.retain import RetainSet, load_retain_set

PROMPT_TOKENS = 16


@dataclass
class OffStepClock:
    """Wall seconds spent off the training steps (run_end.summary's sampling_s and validation_s)."""

    sampling_s: float = 0.0
    validation_s: float = 0.0


@dataclass
class Setup:
    cfg: RunConfig
    loaded: LoadedModel
    device: torch.device
    corpus: Corpus
    data: TokenData
    layout: ModelLayout
    plans: list[tuple[str, ArmPlan]]  # (arm name, plan)
    splits: list[ParamSplit]
    lr: float
    prompts: list  # [(ids, text)] distinct prompts; sample i of every arm uses the same one
    sample_tokens: int
    common_set: frozenset[int]
    placement: dict = field(default_factory=dict)  # {arm: torch.device}
    memory: dict[str, PlanMemory] = field(default_factory=dict)  # {arm: the memory plan's bytes}
    planned: PlannedRun | None = None  # what the plans, placement and memory came from
    retain: RetainSet | None = None  # the fixed retain blocks (forgetting), when there are any
    times: OffStepClock = field(default_factory=lambda: OffStepClock())  # sampling and validation, every replicate

    @property
    def model(self):
        return self.loaded.model

    @property
    def tokenizer(self):
        return self.loaded.tokenizer


def cuda_devices(devices: list[torch.device]) -> list[tuple[int, str]]:
    """(torch index, uuid) of the distinct CUDA devices a run uses, for the GPU readings; [] off CUDA."""
    found = []
    for device in dict.fromkeys(d for d in devices if d.type == "cuda"):
        index = device.index if device.index is not None else torch.cuda.current_device()
        try:
            uuid = str(torch.cuda.get_device_properties(index).uuid)
        except (AttributeError, RuntimeError):
            uuid = ""
        found.append((index, uuid))
    return found


def prepare(
    cfg: RunConfig,
    activity: Activity | None = None,
    progress=None,
    *,
    planned: PlannedRun | None = None,
    memory_check: bool = True,
    loader=None,
) -> Setup:
    """Load and check everything; raises FreezeTuiError with one clear line for bad input.
    `activity` hears each slow phase (the heartbeat reports it); progress(done, total): bytes of the
    corpus tokenized so far (not called when the cache has it). planned: the run's plan when the caller
    made it (a distributed rank: every arm, its own placed); memory_check=False: the plan's memory is not
    checked nor reported (a sharded arm's rank holds 1/K of it; the plan counts whole arms). loader: in
    place of load_model (a distributed rank's model without weights, engine.dist.rank_load)."""
    from engine.plans.roles import attention_splits
    from engine.train.models import check_block_size, load_model, resolve_source

    activity = activity or Activity()
    if any(d.type == "cpu" for d in resolve_devices(cfg.device)):  # fair CPU timing
        torch.set_num_threads(cpu_threads(cfg.threads))  # no more threads than free cores
    corpus = read_corpus(cfg.data)
    # before the memory plan: a block beyond the context is the problem, not the memory it would take
    check_block_size(cfg.block_size, resolve_source(cfg.model, trust_remote_code=cfg.trust_remote_code).config)
    planned = planned or planned_run(cfg)
    if memory_check:
        planned.check()  # before the weights load
    activity.enter("load_model")
    loaded = (loader or load_model)(cfg.model, trust_remote_code=cfg.trust_remote_code)
    ctx = check_block_size(cfg.block_size, loaded.model.config)
    layout = loaded.layout
    activity.enter("tokenize")
    data = tokenize_corpus(
        corpus,
        loaded.tokenizer,
        block_size=cfg.block_size,
        batch_size=cfg.batch_size,
        val_fraction=cfg.val_fraction,
        seed=cfg.seed,
        common_k=cfg.common_k,
        progress=progress,
    )
    retain = load_retain_set(cfg, loaded.tokenizer)
    # the shared initial weights stay on the host; each arm copies them to its own device
    prompts = _prompts(cfg, loaded.tokenizer, data)
    data = measured_validation(data, cfg.val_blocks)  # after the prompts: they come from the whole split
    _check_prompt(prompts[0][0], ctx)
    sample_tokens = min(cfg.sample_tokens, max(1, (ctx or 10**9) - max(len(ids) for ids, _ in prompts)))
    lr = cfg.lr if cfg.lr is not None else (1e-3 if cfg.model is None else 5e-5)
    placement = {name: torch.device(device) for name, device in planned.placement.items()}
    return Setup(
        cfg,
        loaded,
        torch.device(planned.devices[0]),
        corpus,
        data,
        layout,
        list(planned.plans),
        attention_splits(layout),
        lr,
        prompts,
        sample_tokens,
        frozenset(data.common),
        placement,
        dict(planned.memory) if memory_check else {},
        planned,
        retain,
    )


def _prompts(cfg: RunConfig, tokenizer, data: TokenData) -> list[tuple[list[int], str]]:
    """--prompt, or the starts of the first --sample-prompts validation blocks (distinct texts), so
    p's interval covers prompts as well as seeds."""
    if cfg.prompt is not None:
        ids = tokenizer(cfg.prompt, add_special_tokens=False)["input_ids"]
        if not ids:
            raise FreezeTuiError("--prompt is empty after tokenization; give some text")
        return [(ids, cfg.prompt)]
    source = data.val if len(data.val) else data.train[list(range(min(len(data.train), 64)))]
    prompts: list[tuple[list[int], str]] = []
    for block in source:  # row by row: only the first few distinct starts are read
        row = block[:PROMPT_TOKENS].tolist()
        if row not in [ids for ids, _ in prompts]:
            prompts.append((row, tokenizer.decode(row)))
        if len(prompts) == cfg.sample_prompts:
            break
    return prompts


def run_start_event(s: Setup, checksums: dict[str, str]) -> ev.RunStart:
    """checksums: each arm's initial weights, as copied (they must all be equal)."""
    from engine.plans.describe import arm_record
    from engine.train.generate import SAMPLER
    from engine.train.kernels import KERNELS, kernels_record

    cfg = s.cfg
    config = {
        **cfg.to_dict(),
        "device": ",".join(dict.fromkeys(str(d) for d in s.placement.values())) or str(s.device),
        "lr": s.lr,
        "model": cfg.model or "demo",
        "data_source": s.corpus.source,
        "session": session_readings(),  # threads, cores, load: the session every r of this run holds for
    }
    model = {
        "name": s.loaded.name,
        "n_params": s.loaded.n_params,
        "n_blocks": s.loaded.n_blocks,
        "arch": s.loaded.arch,
        "path": str(s.loaded.path),
    }
    data = {
        "n_tokens": s.data.n_tokens,
        "n_unique": s.data.n_unique,
        "source": s.corpus.source,
        "n_train_batches": s.data.n_train_batches(cfg.batch_size),
        "n_val_batches": s.data.n_val_batches(cfg.batch_size),
        "n_val_blocks": len(s.data.val),  # weights the last, shorter validation batch by its tokens
        "crlf_normalised": s.corpus.crlf,
        "cr_normalised": s.corpus.lone_cr,
        "common_base_rate": common_base_rate(s.data.val, s.common_set),  # nan without a validation split
    }
    if s.retain is not None:
        data["retain"] = msgspec.to_builtins(s.retain.record(cfg.batch_size))
    data["sampler"] = SAMPLER  # p is a sampled measure; expected_s (epoch_end) is not
    config[RECORD] = throughput_record(s)
    config[KERNELS] = kernels_record(cfg, s.placement.values() or [s.device])
    common = [[tok, s.tokenizer.decode([tok])] for tok in s.data.common]
    arms = [
        ev.replaced(
            arm_record(plan, s.layout, seq_len=cfg.block_size),
            name=name,
            init_checksum=checksums.get(name, ""),
            **_where(s, name),
        )
        for name, plan in s.plans
    ]
    return ev.RunStart(config=config, model=model, data=data, common_tokens=common, arms=arms)


def throughput_record(s: Setup) -> dict:
    """run_start.config["throughput"]: each arm's FLOPs per token and its devices' dense peak (issue 22)."""
    from engine.plans.flops import step_flops

    cfg = s.cfg
    full = step_flops(s.layout, set(s.layout.names), seq_len=cfg.block_size).total
    flops = {name: plan.flop_ratio(s.layout, seq_len=cfg.block_size) * full for name, plan in s.plans}
    peaks, bases = {}, {}
    for name, _ in s.plans:
        device = s.placement.get(name, s.device)
        peak, bases[name] = device_peak(device, cfg.dtype, cfg.peak_tflops)
        # a wrapped arm steps on R x K devices
        peaks[name] = peak * cfg.shards * cfg.replicas if peak is not None else None
    basis = "; ".join(dict.fromkeys(bases.values()))
    return msgspec.to_builtins(ev.ThroughputRecord(flops_per_token=flops, peak_tflops=peaks, peak_basis=basis))


def device_peak(device: torch.device, dtype: str, given: float | None) -> tuple[float | None, str]:
    """(dense peak TFLOP/s of one device at `dtype`, where it came from): --peak-tflops, else the table of
    known GPUs by the device's name; None on CPU or an unknown GPU."""
    from engine.run.peaks import peak_tflops

    if given is not None:
        return given, f"--peak-tflops {given:g}"
    if device.type != "cuda":
        return None, f"{device.type}: no peak known (give --peak-tflops)"
    name = torch.cuda.get_device_name(device)
    peak = peak_tflops(name, dtype)
    if peak is None:
        return None, f"{name}: not in the table of known GPUs (give --peak-tflops)"
    return peak, f"{name}: dense {dtype} datasheet peak {peak:g} TFLOP/s"


def _where(s: Setup, name: str) -> dict:
    """run_start.arms[] `device` and `memory` (the plan's bytes), when placed: ArmRecord fields."""
    device = str(s.placement[name]) if name in s.placement else ev.UNSET
    memory = msgspec.structs.asdict(s.memory[name]) if name in s.memory else ev.UNSET
    return dict(device=device, memory=memory)


def _check_prompt(ids: list, ctx: int | None) -> None:
    if ctx and len(ids) >= ctx:
        raise FreezeTuiError(
            f"--prompt is {len(ids)} tokens, the model's context is {ctx}: leave room for the sample; shorten it"
        )
