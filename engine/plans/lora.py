"""Resolve a LoRA spec (``lora:R[/ALPHA]:TARGETS``) against a model layout. Pure: no torch.

Targets are matched exactly as freeze rules match (roles, blocks, ``re:``; ``attn.q`` on a
fused QKV model is refused with the freeze spec's error). Of what they match, the weight
matrices of Linear and GPT-2 Conv1D layers get an adapter; biases, norms and embeddings
stay as they are. A fused QKV matrix is adapted as the model stores it, as one matrix.
Every base parameter is frozen: only the adapters train, r * (in + out) numbers each.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import SpecError
from engine.plans.freeze import Plan, _match
from engine.plans.roles import ModelLayout, ParamInfo
from engine.plans.spec import Spec

__all__ = ["LoraPlan", "resolve_lora_plan", "adaptable", "adapter_numel"]

_ADAPTABLE = ("Linear", "Conv1D")


@dataclass(frozen=True)
class LoraPlan(Plan):
    """A LoRA arm: no base parameter trains (``base`` and ``initial`` are empty); adapters on ``adapted``.

    ``n_trainable`` counts the adapters' numbers, ``n_total`` the base model plus the
    adapters (as peft's ``get_nb_trainable_parameters`` counts them).
    """

    rank: int = 0
    alpha: float = 0.0
    adapted: tuple[str, ...] = ()  # base weight names, model order

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    @property
    def modules(self) -> tuple[str, ...]:
        """The adapted modules' paths (what peft's ``target_modules`` names)."""
        return tuple(name.rsplit(".", 1)[0] for name in self.adapted)

    def record(self) -> dict:
        """What run_start's arm record says about the adapters."""
        return {"r": self.rank, "alpha": self.alpha, "matrices": len(self.adapted)}


def adaptable(p: ParamInfo) -> bool:
    """A weight matrix of a Linear or Conv1D layer: what a LoRA adapter can sit beside."""
    return len(p.shape) == 2 and p.module_type in _ADAPTABLE and p.name.endswith(".weight")


def adapter_numel(p: ParamInfo, rank: int) -> int:
    """r * (in + out): A is r x in, B is out x r."""
    return rank * (p.shape[0] + p.shape[1])


def resolve_lora_plan(arm: str, spec: Spec, layout: ModelLayout) -> LoraPlan:
    """The LoRA plan of a parsed LoRA spec; SpecError names the failing target."""
    lora = spec.lora
    assert lora is not None
    hit: set[str] = set()
    for rule in lora.targets:
        names = {name for name, _ in _match(rule, layout, spec.text, arm)}
        matrices = {n for n in names if adaptable(layout.param(n))}
        if not matrices:
            raise SpecError(
                f"bad spec {spec.text!r} for arm {arm!r}: {rule.describe()}: matches no weight matrix of a "
                "Linear or Conv1D layer (LoRA adapts those; e.g. attn.qkv, attn.o, mlp)"
            )
        hit |= matrices
    adapted = tuple(p.name for p in layout.params if p.name in hit)
    n_adapter = sum(adapter_numel(layout.param(n), lora.rank) for n in adapted)
    return LoraPlan(
        arm=arm,
        spec=spec.text,
        base=frozenset(),
        changes=(),
        n_total=layout.n_total + n_adapter,
        n_trainable=n_adapter,
        rank=lora.rank,
        alpha=lora.alpha,
        adapted=adapted,
    )
