"""Arm kinds behind one seam, torch side: build an arm's model, hand the optimizer its tensors, track
its ΔW, save it (torch). The torch-free side (parse, resolve, counts, FLOPs, memory, grid) is
``engine.plans.kinds``; a plan's ``kind`` picks its entry here. Nothing else tests for a kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from engine.plans.freeze import apply_trainable
from engine.plans.lora import ADAPTER
from engine.train.lora import AdapterDWTracker, adapter_layers, add_adapters, lora_delta, save_adapters
from engine.train.metrics import DWTracker

__all__ = ["PreparedArm", "TorchKind", "TORCH_KINDS", "torch_kind", "tracker_for_model"]


def _unchanged(model: torch.nn.Module) -> torch.nn.Module:
    return model


@dataclass
class PreparedArm:
    """An arm's model as it trains, the tensor names its optimizer gets, its ΔW tracker (or None)."""

    model: Any
    trainable: frozenset[str]
    tracker: DWTracker | None


class TorchKind(Protocol):
    def prepare(self, model, plan, layout, *, seed: int, splits, monitor: bool, wrap=_unchanged) -> PreparedArm:
        """The arm built from its fresh copy ``model``; ``wrap`` (a sharded run's) is applied where the
        kind can take it; the tracker (when ``monitor``) follows ``splits``."""
        ...

    def inject(self, model, plan, layout, *, seed: int) -> None:
        """Apply the plan's step-0 state to a user's own model in place."""
        ...

    def save(self, model, out: Path) -> Any:
        """What to save_pretrained as ``out`` (writing anything else the kind keeps beside it)."""
        ...

    def tracker(self, model, splits) -> DWTracker:
        """ΔW, drift and rel of the matrices in ``splits`` as this kind changes them."""
        ...

    def owns(self, model) -> bool:
        """Whether ``model`` (a user's, without a plan) carries this kind's parts."""
        ...


class FreezeTorch:
    """Freeze plans: the base parameters themselves train (step 0's set; the loop applies the rest)."""

    def prepare(self, model, plan, layout, *, seed: int, splits, monitor: bool, wrap=_unchanged) -> PreparedArm:
        names = plan.trainable_at(0, 0)
        apply_trainable(model, names)
        model = wrap(model)
        return PreparedArm(model, names, self.tracker(model, splits) if monitor else None)  # on the wrapped parameters

    def inject(self, model, plan, layout, *, seed: int) -> None:
        apply_trainable(model, plan.trainable_at(0, 0))

    def save(self, model, out: Path) -> Any:
        return model

    def tracker(self, model, splits) -> DWTracker:
        return DWTracker(model, splits)

    def owns(self, model) -> bool:
        return True


@dataclass(frozen=True)
class PeftAdapterTorch:
    """peft adapter kinds: LoraConfig with the kind's options; ΔW of the effective update ``delta``."""

    name: str
    delta: Callable[[torch.nn.Module], torch.Tensor] = lora_delta
    owns_layer: Callable[[torch.nn.Module], bool] = field(default=lambda layer: True)

    def prepare(self, model, plan, layout, *, seed: int, splits, monitor: bool, wrap=_unchanged) -> PreparedArm:
        model = add_adapters(model, plan, layout, seed, in_place=False)
        names = frozenset(n for n, p in model.named_parameters() if p.requires_grad)
        tracker = self.tracker(model, splits) if splits and monitor else None
        return PreparedArm(wrap(model), names, tracker)  # the tracker reads the layers before sharding

    def inject(self, model, plan, layout, *, seed: int) -> None:
        add_adapters(model, plan, layout, seed, in_place=True)

    def save(self, model, out: Path) -> Any:
        return save_adapters(model, out)  # + out/adapter

    def tracker(self, model, splits) -> DWTracker:
        return AdapterDWTracker(model, splits, self.delta)

    def owns(self, model) -> bool:
        layers = adapter_layers(model).values()
        return bool(layers) and all(self.owns_layer(layer) for layer in layers)


def dora_delta(layer) -> torch.Tensor:
    """DoRA's effective update m / ||W + sBA||_c * (W + sBA) - W, in the base weight's orientation (the
    norm is per output feature, as peft's merge computes it)."""
    w, lora = layer.get_base_layer().weight.float(), lora_delta(layer)
    out_dim = 1 if layer.fan_in_fan_out else 0  # GPT-2's Conv1D stores (in, out)
    direction = w + lora
    scale = layer.lora_magnitude_vector[ADAPTER].weight.float() / direction.norm(dim=1 - out_dim)
    return scale.view((1, -1) if out_dim else (-1, 1)) * direction - w


def _uses_dora(layer) -> bool:
    return bool(getattr(layer, "use_dora", {}).get(ADAPTER))


TORCH_KINDS: dict[str, TorchKind] = {
    "freeze": FreezeTorch(),
    "lora": PeftAdapterTorch("lora"),
    "dora": PeftAdapterTorch("dora", delta=dora_delta, owns_layer=_uses_dora),
}


def torch_kind(plan) -> TorchKind:
    """The torch side of a plan's kind."""
    return TORCH_KINDS[plan.kind]


def tracker_for_model(model, splits, plan=None) -> DWTracker:
    """The ΔW tracker of a user's own model: its plan's kind, else the kind whose parts it carries
    (adapter kinds first: a freeze "kind" owns every model)."""
    kind = torch_kind(plan) if plan is not None else next(k for k in reversed(TORCH_KINDS.values()) if k.owns(model))
    return kind.tracker(model, splits)
