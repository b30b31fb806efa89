"""LoRA arms with peft: build the adapted model, measure its effective update, save it (torch).

The adapters are peft's own (``LoraConfig``; GPT-2's Conv1D layers get ``fan_in_fan_out``), on
the modules an ``engine.plans.lora.LoraPlan`` names; every base parameter is frozen. B starts at
0, so the arm starts from the same function as every other arm. peft is imported lazily: a run
without a LoRA arm never loads it.
"""

from __future__ import annotations

import copy
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from engine.plans.lora import LoraPlan
from engine.train.metrics import DWTracker, segment_sums

ADAPTER = "default"
_PEFT_PREFIX = "base_model.model."


def lora_config(plan: LoraPlan, layout):
    """peft's LoraConfig for a plan: exactly its modules, no dropout, no bias, fan_in_fan_out for Conv1D."""
    from peft import LoraConfig

    return LoraConfig(
        r=plan.rank,
        lora_alpha=plan.alpha,  # type: ignore[arg-type]  # peft annotates int; alpha/r is all it uses
        target_modules="|".join(re.escape(m) for m in plan.modules),  # a str is matched in full by peft
        lora_dropout=0.0,
        bias="none",
        fan_in_fan_out=any(layout.param(n).module_type == "Conv1D" for n in plan.adapted),
    )


def lora_model(model: torch.nn.Module, plan: LoraPlan, layout, seed: int):
    """A PeftModel around ``model`` (taken over, not copied); A drawn from ``seed``, B = 0."""
    from peft import get_peft_model

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # peft asks a transformers-5 model a deprecated question; nothing the user can act on
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, lora_config(plan, layout))
    for name, param in peft_model.named_parameters():
        param.requires_grad_(".lora_" in name)
    return peft_model


def is_lora(model) -> bool:
    return hasattr(model, "peft_config")


def lora_layers(model) -> dict[str, torch.nn.Module]:
    """{base weight name: its LoRA layer} of a peft-wrapped (or adapter-injected) model."""
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


class LoraDWTracker(DWTracker):
    """DWTracker for a LoRA arm: ΔW, drift and rel of the effective update scale * B @ A of each
    adapted matrix (in the base weight's orientation, split by q/k/v where fused); every matrix
    without an adapter is exactly 0. Its state is per adapter, not per parameter: DWTracker's
    __init__ does not apply, its measure/finish/as_dicts do."""

    def __init__(self, model: torch.nn.Module, splits) -> None:
        self.layers = {k: v for k, v in lora_layers(model).items() if any(s.param == k for s in splits)}
        self.splits = list(splits)
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
        return self.layers[key].get_delta_weight(ADAPTER).float()  # type: ignore[operator]

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


def save_lora(model, out: Path) -> Any:
    """Write the adapter in peft's format to ``out/adapter``; return the merged model (a copy) to save
    as ``out`` itself, loadable with from_pretrained like every other arm."""
    model.save_pretrained(out / "adapter", safe_serialization=True)
    return copy.deepcopy(model).merge_and_unload()


def lora_parts(plan: LoraPlan, model: torch.nn.Module, layout, splits, cfg):
    """(model with the plan's adapters, its trainable names, its ΔW tracker or None) for an arm;
    ``model`` is the arm's fresh copy. Only the adapters train."""
    model = lora_model(model, plan, layout, cfg.seed)
    model.train(cfg.dropout == "same")
    names = frozenset(n for n, p in model.named_parameters() if p.requires_grad)
    tracker = LoraDWTracker(model, splits) if splits and cfg.monitor and cfg.norm_every else None
    return model, names, tracker
