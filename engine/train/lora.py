"""Adapter arms with peft (LoRA and the kinds built like it): build, measure the effective update, save (torch).

The adapters are peft's own (``LoraConfig`` plus the kind's options; GPT-2's Conv1D layers get
``fan_in_fan_out``), on the modules an ``engine.plans.lora.AdapterPlan`` names; every base
parameter is frozen. B starts at 0, so the arm starts from the same function as every other arm.
peft is imported lazily: a run without an adapter arm never loads it.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from engine.plans.lora import ADAPTER, AdapterPlan
from engine.train.metrics import DWTracker, segment_sums

_PEFT_PREFIX = "base_model.model."


def adapter_config(plan: AdapterPlan, layout):
    """peft's LoraConfig for a plan: exactly its modules, no dropout, no bias, fan_in_fan_out for
    Conv1D, plus its kind's options (e.g. use_dora)."""
    from peft import LoraConfig

    return LoraConfig(
        r=plan.rank,
        lora_alpha=plan.alpha,  # type: ignore[arg-type]  # peft annotates int; alpha/r is all it uses
        target_modules="|".join(re.escape(m) for m in plan.modules),  # a str is matched in full by peft
        lora_dropout=0.0,
        bias="none",
        fan_in_fan_out=any(layout.param(n).module_type == "Conv1D" for n in plan.adapted),
        **dict(plan.peft_options),  # type: ignore[arg-type]  # each kind's options are LoraConfig's
    )


def add_adapters(model: torch.nn.Module, plan: AdapterPlan, layout, seed: int, *, in_place: bool):
    """``model`` with the plan's adapters, A drawn from ``seed`` (B = 0), only the adapters trainable:
    a PeftModel around it (taken over, not copied), or with ``in_place`` the model itself with the
    adapters injected (what ``apply_spec`` hands back to a user's own loop)."""
    from peft import get_peft_model, inject_adapter_in_model

    config, training = adapter_config(plan, layout), model.training
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # peft asks a transformers-5 model a deprecated question; nothing the user can act on
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        torch.manual_seed(seed)
        adapted = inject_adapter_in_model(config, model) if in_place else get_peft_model(model, config)
    prefix = "" if in_place else _PEFT_PREFIX
    trainable = {prefix + name for name in plan.trainable}
    for name, param in adapted.named_parameters():
        param.requires_grad_(name in trainable)
    if not in_place:
        adapted.train(training)  # a new PeftModel starts in training mode; keep the arm's (dropout)
    return adapted


def adapter_layers(model) -> dict[str, torch.nn.Module]:
    """{base weight name: its adapter layer} of a peft-wrapped (or adapter-injected) model."""
    layers = {}
    for name, module in model.named_modules():
        if hasattr(module, "lora_A") and ADAPTER in getattr(module, "lora_A", {}):
            base = name[len(_PEFT_PREFIX) :] if name.startswith(_PEFT_PREFIX) else name
            layers[f"{base}.weight"] = module
    return layers


def base_named_parameters(model):
    """(name, tensor) of the base weights as the unwrapped model names them; adapters left out.
    While B = 0 these are the weights the arm computes with."""
    for name, param in model.named_parameters():
        if ".lora_" in name:
            continue
        name = name[len(_PEFT_PREFIX) :] if name.startswith(_PEFT_PREFIX) else name
        yield name.replace(".base_layer.", "."), param


def lora_delta(layer) -> torch.Tensor:
    """LoRA's effective update scale * B @ A, in the base weight's orientation."""
    return layer.get_delta_weight(ADAPTER).float()


class AdapterDWTracker(DWTracker):
    """DWTracker for an adapter arm: ΔW, drift and rel of the effective update ``delta(layer)`` of each
    adapted matrix (in the base weight's orientation, split by q/k/v where fused); every matrix
    without an adapter is exactly 0. Its state is per adapter, not per parameter: DWTracker's
    __init__ does not apply, its measure/finish/as_dicts do."""

    def __init__(
        self, model: torch.nn.Module, splits, delta: Callable[[torch.nn.Module], torch.Tensor] = lora_delta
    ) -> None:
        self.layers = {k: v for k, v in adapter_layers(model).items() if any(s.param == k for s in splits)}
        self.splits = list(splits)
        self.delta = delta
        self.names: list[str] = [n for s in self.splits for n in s.names]
        self._w0 = {k: _base_weight(m) for k, m in self.layers.items()}
        self._before = {k: self._delta(k) for k in self.layers}
        self._segments: dict[str, torch.Tensor] = {
            s.param: torch.tensor(s.segment, dtype=torch.long, device=self._w0[s.param].device)
            for s in self.splits
            if s.param in self.layers
        }

    @torch.no_grad()
    def _delta(self, key: str) -> torch.Tensor:
        return self.delta(self.layers[key])

    def snapshot(self) -> None:
        """Call right before the optimizer step that will be measured."""
        self._before = {k: self._delta(k) for k in self.layers}

    @torch.no_grad()
    def squares(self) -> torch.Tensor:
        """[3, n_matrices] squared norms on the device: dW, drift, W (DWTracker.measure finishes them)."""
        rows = []
        for s in self.splits:
            if s.param not in self.layers:
                device = next(iter(self._w0.values())).device if self._w0 else None
                rows.append(torch.zeros(3, len(s.names), device=device, dtype=torch.float32))
                continue
            delta = self._delta(s.param)
            w = self._w0[s.param].float() + delta
            rows.append(segment_sums(s, self._segments[s.param], delta - self._before[s.param], delta, w))
        return torch.cat(rows, dim=1) if rows else torch.zeros(3, 0)


def _base_weight(layer) -> torch.Tensor:
    return layer.get_base_layer().weight.detach()


def save_adapters(model, out: Path) -> Any:
    """Write the adapter in peft's format to ``out/adapter``; return the merged model (a copy) to save
    as ``out`` itself, loadable with from_pretrained like every other arm."""
    model.save_pretrained(out / "adapter", safe_serialization=True)
    return copy.deepcopy(model).merge_and_unload()
