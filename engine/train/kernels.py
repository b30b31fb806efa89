"""The same kernels for every arm (issue 22): torch.compile, the AdamW implementation and activation
checkpointing are chosen once per run and applied alike to every arm, so no arm's step time gains or
loses from a kernel the others lack; run_start.config.kernels records the choice (torch).
"""

from __future__ import annotations

import msgspec
import torch

from engine.core.errors import FreezeTuiError
from engine.log import events as ev
from engine.run.config import RunConfig

# dynamic=False: every training batch has one shape; fullgraph=False: HF model code has graph breaks
COMPILE_OPTIONS = {"mode": "default", "dynamic": False, "fullgraph": False}
KERNELS = "kernels"  # the run_start.config entry
CHECKPOINTING = "per block: transformers activation checkpointing, non-reentrant torch.utils.checkpoint"


def optimizer_kind(devices) -> str:
    """One AdamW implementation for every arm: fused when every arm is on CUDA, foreach otherwise."""
    devices = list(devices)
    return "fused" if devices and all(torch.device(d).type == "cuda" for d in devices) else "foreach"


def kernels_record(cfg: RunConfig, devices) -> dict:
    """run_start.config.kernels: what every arm ran with."""
    record = ev.KernelsRecord(
        optimizer=f"AdamW ({optimizer_kind(devices)})",
        compile=dict(COMPILE_OPTIONS, fallback_random=True) if cfg.compile else None,
        activation_checkpointing=CHECKPOINTING if cfg.activation_checkpointing else None,
    )
    return msgspec.to_builtins(record)


def enable_checkpointing(model, name: str) -> None:
    """Per-block activation checkpointing on a transformers model (before an arm kind wraps it). The
    input-embedding hook transformers adds for reentrant checkpointing is removed again: it would make
    backward run through frozen blocks below the lowest trainable one and take the freeze saving away."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise FreezeTuiError(
            f"--activation-checkpointing: {name} ({type(model).__name__}) does not support activation "
            "checkpointing in transformers; run without it"
        )
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:  # transformers before the rename
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if hasattr(model, "disable_input_require_grads"):
        model.disable_input_require_grads()


def compiled(model):
    """The arm's model compiled for its training steps (sampling and validation stay eager: their
    shapes change every token or batch). Random ops (dropout) fall back to eager's generator, so every
    arm, compiled or not, draws the same masks from the step's seed."""
    import torch._inductor.config as inductor

    inductor.fallback_random = True
    return torch.compile(model, **COMPILE_OPTIONS)
