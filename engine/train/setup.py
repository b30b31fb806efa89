"""Everything a run needs before its first step: device, model, data, plans, prompt (torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from engine.activity import Activity
from engine.config import RunConfig
from engine.errors import FreezeTuiError
from engine.log import events as ev
from engine.plans.freeze import Plan
from engine.plans.roles import ModelLayout, ParamSplit
from engine.session_info import cpu_threads, session_readings
from engine.textfiles import Corpus, read_corpus
from engine.train.data import TokenData, common_base_rate, tokenize_corpus
from engine.train.devices import resolve_device, resolve_devices  # noqa: F401 (resolve_device: old import path)
from engine.train.memory_plan import check_memory_plan
from engine.train.models import LoadedModel

PROMPT_TOKENS = 16


@dataclass
class Setup:
    cfg: RunConfig
    loaded: LoadedModel
    device: torch.device
    corpus: Corpus
    data: TokenData
    layout: ModelLayout
    plans: list[tuple[str, Plan]]  # (arm name, plan)
    splits: list[ParamSplit]
    lr: float
    prompts: list  # [(ids, text)] distinct prompts; sample i of every arm uses the same one
    sample_tokens: int
    common_set: frozenset[int]
    placement: dict = field(default_factory=dict)  # {arm: torch.device}
    memory: dict = field(default_factory=dict)  # {arm: the memory plan's {weights, grads, ...} bytes}

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


def context_length(config) -> int | None:
    for key in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def prepare(cfg: RunConfig, activity: Activity | None = None, progress=None, *, memory_check: bool = True) -> Setup:
    """Load and check everything; raises FreezeTuiError with one clear line for bad input.
    `activity` hears each slow phase (the heartbeat reports it); progress(done, total): bytes of the
    corpus tokenized so far (not called when the cache has it). memory_check=False: no memory plan
    (a sharded arm's rank holds 1/K of it; the plan counts whole arms)."""
    from engine.plans.freeze import resolve_plan
    from engine.plans.roles import attention_splits
    from engine.train.models import load_model

    activity = activity or Activity()
    devices = resolve_devices(cfg.device)
    if any(d.type == "cpu" for d in devices):  # fair CPU timing: no more threads than free cores
        torch.set_num_threads(cpu_threads(cfg.threads))
    corpus = read_corpus(cfg.data)
    placement, memory = check_memory_plan(cfg, devices) if memory_check else ({}, {})  # before the weights load
    activity.enter("load_model")
    loaded = load_model(cfg.model, trust_remote_code=cfg.trust_remote_code)
    ctx = context_length(loaded.model.config)
    if ctx and cfg.block_size > ctx:
        raise FreezeTuiError(
            f"--block-size {cfg.block_size} is above the model's context of {ctx} tokens; "
            f"use --block-size {ctx} or less"
        )
    layout = loaded.layout
    plans = [(name, resolve_plan(name, spec, layout)) for name, spec in cfg.arms]
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
    # the shared initial weights stay on the host; each arm copies them to its own device
    prompts = _prompts(cfg, loaded.tokenizer, data)
    _check_prompt(prompts[0][0], ctx)
    sample_tokens = min(cfg.sample_tokens, max(1, (ctx or 10**9) - max(len(ids) for ids, _ in prompts)))
    lr = cfg.lr if cfg.lr is not None else (1e-3 if cfg.model is None else 5e-5)
    return Setup(
        cfg,
        loaded,
        devices[0],
        corpus,
        data,
        layout,
        plans,
        attention_splits(layout),
        lr,
        prompts,
        sample_tokens,
        frozenset(data.common),
        placement,
        memory,
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
    for row in source[:, :PROMPT_TOKENS].tolist():
        if row not in [ids for ids, _ in prompts]:
            prompts.append((row, tokenizer.decode(row)))
        if len(prompts) == cfg.sample_prompts:
            break
    return prompts


def run_start_event(s: Setup, checksums: dict[str, str]) -> ev.RunStart:
    """checksums: each arm's initial weights, as copied (they must all be equal)."""
    from engine.plans.describe import arm_record

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
    common = [[tok, s.tokenizer.decode([tok])] for tok in s.data.common]
    arms = [
        {
            **arm_record(plan, s.layout, seq_len=cfg.block_size),
            "name": name,
            "init_checksum": checksums.get(name, ""),
            **_where(s, name),
        }
        for name, plan in s.plans
    ]
    return ev.RunStart(config=config, model=model, data=data, common_tokens=common, arms=arms)


def _where(s: Setup, name: str) -> dict:
    """run_start.arms[] `device` and `memory` (the plan's bytes), when placed."""
    out: dict = {}
    if name in s.placement:
        out["device"] = str(s.placement[name])
    if name in s.memory:
        out["memory"] = dict(s.memory[name])
    return out


def _check_prompt(ids: list, ctx: int | None) -> None:
    if ctx and len(ids) >= ctx:
        raise FreezeTuiError(
            f"--prompt is {len(ids)} tokens, the model's context is {ctx}: leave room for the sample; shorten it"
        )
