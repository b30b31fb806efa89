"""Load a causal LM and its tokenizer through the ordinary Hugging Face path.

``load_model`` gives the real model; ``load_layout`` only reads the config and builds
the model on the meta device (no weights, no memory), which is all ``freeze-tui plan``
needs. Both turn every way loading can go wrong into one FreezeTuiError line. Hub
names are tried with ``local_files_only=True`` first so nothing hangs offline; the
network is tried only when HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE are not set and a
quick probe of the Hub answers (else one line within seconds, instead of the hub
client's retries). torch and transformers are imported inside functions, never at
import time.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.errors import FreezeTuiError
from engine.plans.plan_record import PlanDescription
from engine.plans.roles import ModelLayout, build_layout

__all__ = ["LoadedModel", "load_model", "load_layout", "load_skeleton", "describe_plans", "resolve_source"]

_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "tokenizer.model",
    "spiece.model",
    "vocab.txt",
)
_DTYPES = ("float32", "float16", "bfloat16", "auto")


@dataclass(frozen=True)
class LoadedModel:
    """A loaded model with what the run log needs to say about it.

    The tokenizer's pad token is its eos token when it had none; if it has neither,
    ``tokenizer.pad_token`` stays None and callers must not rely on padding.
    """

    model: Any
    tokenizer: Any
    name: str
    path: str
    arch: str
    n_params: int
    n_blocks: int
    layout: ModelLayout


@dataclass(frozen=True)
class _Source:
    """Where a model comes from: a hub name or a local directory, and its config."""

    name: str
    path: str
    local: bool
    config: Any
    kwargs: dict


def load_model(
    name_or_path: str | None, *, trust_remote_code: bool = False, dtype=None, with_tokenizer: bool = True
) -> LoadedModel:
    """Load model + tokenizer (None without `with_tokenizer`); None means the embedded demo model."""
    from transformers import AutoModelForCausalLM

    source = resolve_source(name_or_path, trust_remote_code=trust_remote_code)
    with _quiet():
        try:
            model = AutoModelForCausalLM.from_pretrained(
                source.path, config=source.config, dtype=_dtype(dtype), **source.kwargs
            )
        except (OSError, ValueError) as exc:
            raise FreezeTuiError(
                f"cannot load the weights of model {source.name!r}: {_first_line(exc).rstrip('.')}; "
                "pass a model saved with save_pretrained (config, weights and tokenizer)"
            ) from None
        except Exception as exc:
            if type(exc).__name__ != "UnpicklingError":
                raise
            raise FreezeTuiError(
                f"model {source.name!r}: its weights file holds more than tensors and was not "
                "loaded (only safetensors or torch.load(weights_only=True) are used); "
                "convert it to model.safetensors where you trust it"
            ) from None
    tokenizer = _load_tokenizer(source) if with_tokenizer else None
    layout = build_layout(model)
    return LoadedModel(
        model, tokenizer, source.name, source.path, source.config.model_type, layout.n_total, layout.n_blocks, layout
    )


def load_skeleton(name_or_path: str | None, params_on_meta, *, trust_remote_code: bool = False) -> LoadedModel:
    """load_model's model built inside `params_on_meta()` (a context that leaves the parameters on the meta
    device), without reading any weights: a distributed rank then loads only what it needs
    (engine.dist.rank_load). Same config, tokenizer and layout as load_model."""
    from transformers import AutoModelForCausalLM

    source = resolve_source(name_or_path, trust_remote_code=trust_remote_code)
    with _quiet(), params_on_meta():
        model = AutoModelForCausalLM.from_config(source.config, trust_remote_code=trust_remote_code)
    model.eval()  # as from_pretrained leaves it
    layout = build_layout(model)
    return LoadedModel(
        model,
        _load_tokenizer(source),
        source.name,
        source.path,
        source.config.model_type,
        layout.n_total,
        layout.n_blocks,
        layout,
    )


def context_length(config) -> int | None:
    for key in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_block_size(block_size: int, config) -> int | None:
    """The model's context (None if its config does not say); refuses a --block-size above it."""
    ctx = context_length(config)
    if ctx and block_size > ctx:
        raise FreezeTuiError(
            f"--block-size {block_size} is above the model's context of {ctx} tokens; use --block-size {ctx} or less"
        )
    return ctx


def load_layout(name_or_path: str | None, *, trust_remote_code: bool = False) -> tuple[str, str, ModelLayout]:
    """(name, arch, layout) from the config alone: the model is built on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    source = resolve_source(name_or_path, trust_remote_code=trust_remote_code)
    with _quiet(), torch.device("meta"):
        try:
            model = AutoModelForCausalLM.from_config(source.config, trust_remote_code=trust_remote_code)
        except ValueError as exc:  # a config the model class refuses (n_embd not divisible by n_head …)
            raise FreezeTuiError(
                f"model {source.name!r}: its config.json is inconsistent ({_first_line(exc).rstrip('.')}); fix it"
            ) from None
    return source.name, source.config.model_type, build_layout(model)


def resolve_source(name_or_path: str | None, *, trust_remote_code: bool = False) -> _Source:
    """Find the model's config locally (or, if allowed, online) and check it is a causal LM."""
    if name_or_path is None:
        from engine.demo import DEMO_NAME

        return _source_from_dir(DEMO_NAME, _demo_dir(), trust_remote_code)
    path = Path(name_or_path).expanduser()
    if path.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        return _source_from_dir(name_or_path, path, trust_remote_code)
    return _source_from_hub(name_or_path, trust_remote_code)


def _demo_dir() -> Path:
    from engine.demo import DEMO_MODEL_DIR

    if not (Path(DEMO_MODEL_DIR) / "config.json").is_file():
        raise FreezeTuiError(
            f"the embedded demo model is missing ({DEMO_MODEL_DIR}); reinstall freeze-tui or pass --model NAME|PATH"
        )
    return Path(DEMO_MODEL_DIR)


def _source_from_dir(name: str, path: Path, trust_remote_code: bool) -> _Source:
    if not path.is_dir():
        raise FreezeTuiError(
            f"model path {str(path)!r} is not a directory; pass a Hugging Face model "
            "directory (with config.json) or a model name"
        )
    if not (path / "config.json").is_file():
        raise FreezeTuiError(
            f"model directory {str(path)!r} has no config.json; it is not a saved "
            "Hugging Face model (save one with model.save_pretrained(DIR))"
        )
    kwargs = {"local_files_only": True, "trust_remote_code": trust_remote_code}
    return _Source(name, str(path), True, _load_config(name, str(path), kwargs), kwargs)


def _source_from_hub(name: str, trust_remote_code: bool) -> _Source:
    kwargs = {"local_files_only": True, "trust_remote_code": trust_remote_code}
    try:
        return _Source(name, name, False, _load_config(name, name, kwargs), kwargs)
    except _NotFound:
        if _offline():
            raise _not_found(name, "HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set") from None
    why = _hub_unreachable()
    if why:
        raise _not_found(name, why)
    kwargs = {"local_files_only": False, "trust_remote_code": trust_remote_code}
    try:
        return _Source(name, name, False, _load_config(name, name, kwargs), kwargs)
    except _NotFound:
        raise _not_found(name, "") from None


class _NotFound(Exception):
    """The config could not be found where we looked."""


def _offline() -> bool:
    """The Hugging Face client's own rule: either variable set to a true value means offline."""
    return any(
        os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


PROBE_S = 3.0  # the Hub must answer a HEAD within this long, else it counts as unreachable


def _hub_unreachable() -> str:
    """Why the Hub cannot be reached, or "" when it answers (any HTTP status). One request through the
    hub client's own session (its proxy and certificate settings), no retries, in a daemon thread
    with a hard limit, since a name lookup without DNS can block longer than any socket timeout."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    endpoint = constants.ENDPOINT
    answer: list[str] = []

    def probe() -> None:
        try:
            get_session().head(endpoint, timeout=PROBE_S)  # httpx and requests: no redirects followed
            answer.append("")
        except Exception as exc:  # any transport failure means "cannot download from here"
            answer.append(f"{endpoint} cannot be reached: {_first_line(exc)}")

    thread = threading.Thread(target=probe, name="freeze-tui-hub-probe", daemon=True)
    thread.start()
    thread.join(PROBE_S + 0.5)
    return answer[0] if answer else f"{endpoint} did not answer within {PROBE_S:.0f} s"


def _not_found(name: str, why: str) -> FreezeTuiError:
    because = f" and {why}" if why else ""
    return FreezeTuiError(
        f"model {name!r} could not be found locally (not a directory, not in the Hugging Face cache){because}; "
        "downloading it needs network access (or HF_ENDPOINT set to a reachable mirror), "
        "or pass a local model directory"
    )


def _load_config(name: str, path: str, kwargs: dict):
    from transformers import AutoConfig

    try:
        with _quiet():
            config = AutoConfig.from_pretrained(path, **kwargs)
    except OSError:
        raise _NotFound(name) from None
    except ValueError as exc:
        raise FreezeTuiError(_config_problem(name, exc, kwargs["trust_remote_code"])) from None
    _check_causal(name, config)
    return config


def _config_problem(name: str, exc: Exception, trust_remote_code: bool) -> str:
    text = _first_line(exc)
    if "trust_remote_code" in str(exc) and not trust_remote_code:  # said on the message's last line
        return f"model {name!r} needs its own Python code; allow it with --trust-remote-code if you trust it"
    return f"cannot read the config of model {name!r}: {text}"


# Bidirectional encoders that AutoModelForCausalLM loads anyway: unless their config says is_decoder,
# they attend to later tokens too, so training them on next-token loss is silently meaningless.
_ENCODERS = frozenset(
    {
        "bert",
        "bert-generation",
        "big_bird",
        "camembert",
        "data2vec-text",
        "electra",
        "ernie",
        "megatron-bert",
        "rembert",
        "roberta",
        "roberta-prelayernorm",
        "roc_bert",
        "roformer",
        "xlm-roberta",
        "xlm-roberta-xl",
        "xmod",
    }
)


def _check_causal(name: str, config) -> None:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    auto_map = getattr(config, "auto_map", None) or {}
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and "AutoModelForCausalLM" not in auto_map:
        raise FreezeTuiError(
            f"model {name!r} ({config.model_type}) is not a causal language model; "
            "freeze-tui needs one that AutoModelForCausalLM loads (gpt2, pythia, llama ...)"
        )
    if config.model_type in _ENCODERS and not getattr(config, "is_decoder", False):
        raise FreezeTuiError(
            f"model {name!r} ({config.model_type}) is a bidirectional encoder, not a causal language "
            "model (its config has no is_decoder=true); pass a causal LM (gpt2, pythia, llama ...)"
        )


def _load_tokenizer(source: _Source):
    from transformers import AutoTokenizer

    if source.local and not any((Path(source.path) / f).is_file() for f in _TOKENIZER_FILES):
        raise _no_tokenizer(source.name, "no tokenizer files in the directory")
    try:
        with _quiet():
            tokenizer = AutoTokenizer.from_pretrained(source.path, **source.kwargs)
    except (OSError, ValueError, TypeError) as exc:
        raise _no_tokenizer(source.name, _first_line(exc)) from None
    if len(tokenizer) <= 1:
        raise _no_tokenizer(source.name, "the tokenizer is empty")
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _no_tokenizer(name: str, why: str) -> FreezeTuiError:
    return FreezeTuiError(
        f"model {name!r} has no usable tokenizer ({why}); save one next to the "
        "weights with tokenizer.save_pretrained(DIR)"
    )


def _dtype(dtype):
    """None -> float32 (exact CPU training); a name or a torch.dtype otherwise."""
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    if dtype not in _DTYPES:
        raise FreezeTuiError(f"unknown dtype {dtype!r} (expected one of: {', '.join(_DTYPES)})")
    return getattr(torch, dtype)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _quiet:
    """Silence transformers' progress bars and info chatter, and the hub client's retry warnings
    (they would draw over the TUI, and a bad input must end in one line)."""

    def __enter__(self):
        from huggingface_hub.utils import logging as hub_logging
        from transformers.utils import logging

        self._level = logging.get_verbosity()
        self._hub_level = hub_logging.get_verbosity()
        self._bars = logging.is_progress_bar_enabled()
        logging.set_verbosity_error()
        hub_logging.set_verbosity_error()
        logging.disable_progress_bar()
        return self

    def __exit__(self, *exc) -> None:
        from huggingface_hub.utils import logging as hub_logging
        from transformers.utils import logging

        logging.set_verbosity(self._level)
        hub_logging.set_verbosity(self._hub_level)
        if self._bars:
            logging.enable_progress_bar()


def describe_plans(
    model_name: str | None, arms, *, block_size: int, trust_remote_code: bool = False
) -> PlanDescription:
    """What ``freeze-tui plan`` shows: model info plus, per arm, name, spec, trainable, total, pct,
    flop_ratio, r_pred, schedule and grid. ``model_name`` None is the embedded demo. Raises FreezeTuiError."""
    from engine.plans.describe import describe_layout

    name, arch, layout = load_layout(model_name, trust_remote_code=trust_remote_code)
    return describe_layout(name, arch, layout, arms, block_size=block_size)
