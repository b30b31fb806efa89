"""Everything a run needs before its first step: device, model, data, plans, prompt (torch)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.config import RunConfig
from engine.errors import FreezeTuiError
from engine.log import events as ev
from engine.plans.freeze import Plan
from engine.plans.roles import ModelLayout, ParamSplit
from engine.textfiles import Corpus, read_corpus
from engine.train.data import TokenData, tokenize_corpus
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
    prompt_ids: list
    prompt_text: str
    sample_tokens: int
    common_set: frozenset[int]

    @property
    def model(self):
        return self.loaded.model

    @property
    def tokenizer(self):
        return self.loaded.tokenizer


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise FreezeTuiError(
                f"--device {name}: torch {torch.__version__} sees no CUDA GPU; use --device cpu or auto"
            )
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise FreezeTuiError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    if name == "mps" and not torch.backends.mps.is_available():
        raise FreezeTuiError("--device mps: this torch build has no Apple GPU support; use --device cpu or auto")
    return torch.device(name)


def context_length(config) -> int | None:
    for key in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def prepare(cfg: RunConfig) -> Setup:
    """Load and check everything; raises FreezeTuiError with one clear line for bad input."""
    from engine.plans.freeze import resolve_plan
    from engine.plans.roles import attention_splits
    from engine.train.models import load_model

    device = resolve_device(cfg.device)
    corpus = read_corpus(cfg.data)
    loaded = load_model(cfg.model, trust_remote_code=cfg.trust_remote_code)
    ctx = context_length(loaded.model.config)
    if ctx and cfg.block_size > ctx:
        raise FreezeTuiError(
            f"--block-size {cfg.block_size} is above the model's context of {ctx} tokens; "
            f"use --block-size {ctx} or less"
        )
    layout = loaded.layout
    plans = [(name, resolve_plan(name, spec, layout)) for name, spec in cfg.arms]
    data = tokenize_corpus(
        corpus,
        loaded.tokenizer,
        block_size=cfg.block_size,
        batch_size=cfg.batch_size,
        val_fraction=cfg.val_fraction,
        seed=cfg.seed,
        common_k=cfg.common_k,
    )
    loaded.model.to(device)
    prompt_ids, prompt_text = _prompt(cfg, loaded.tokenizer, data)
    sample_tokens = min(cfg.sample_tokens, max(1, (ctx or 10**9) - len(prompt_ids)))
    lr = cfg.lr if cfg.lr is not None else (1e-3 if cfg.model is None else 5e-5)
    return Setup(
        cfg,
        loaded,
        device,
        corpus,
        data,
        layout,
        plans,
        attention_splits(layout),
        lr,
        prompt_ids,
        prompt_text,
        sample_tokens,
        frozenset(data.common),
    )


def _prompt(cfg: RunConfig, tokenizer, data: TokenData) -> tuple[list[int], str]:
    if cfg.prompt is not None:
        ids = tokenizer(cfg.prompt, add_special_tokens=False)["input_ids"]
        if not ids:
            raise FreezeTuiError("--prompt is empty after tokenization; give some text")
        return ids, cfg.prompt
    source = data.val if len(data.val) else data.train
    ids = source[0, :PROMPT_TOKENS].tolist()
    return ids, tokenizer.decode(ids)


def run_start_event(s: Setup, checksums: dict[str, str]) -> ev.RunStart:
    """checksums: each arm's initial weights, as copied (they must all be equal)."""
    from engine.plans.describe import arm_record

    cfg = s.cfg
    config = {
        **cfg.to_dict(),
        "device": str(s.device),
        "lr": s.lr,
        "model": cfg.model or "demo",
        "data_source": s.corpus.source,
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
    }
    common = [[tok, s.tokenizer.decode([tok])] for tok in s.data.common]
    arms = [
        {**arm_record(plan, s.layout), "name": name, "init_checksum": checksums.get(name, "")} for name, plan in s.plans
    ]
    return ev.RunStart(config=config, model=model, data=data, common_tokens=common, arms=arms)
