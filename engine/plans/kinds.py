"""Arm kinds behind one seam, torch-free side: what a spec means before any model loads. Pure: no torch.

A kind (freeze rules, LoRA, ...) parses its spec form (``engine.plans.spec``), resolves it against a
``ModelLayout`` into a plan, and spells a chosen set of (block, role) matrices as a spec. Its plan
answers every question the rest of the engine asks about an arm: what trains when
(``trainable_at``), counts, the FLOP model, the memory model, the plan-grid marks and the run_start
record. The torch side (build, ΔW, save, what the optimizer gets) is ``engine.train.kinds``.
Callers ask the plan or ``kind_of``; nothing else tests for a kind.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from engine.core.errors import SpecError
from engine.plans.freeze import FREEZE
from engine.plans.lora import LORA, AdapterKind, out_features
from engine.plans.memory import PlanMemory
from engine.plans.roles import ModelLayout
from engine.plans.spec import Spec, parse_spec

__all__ = ["ArmPlan", "ArmKind", "KINDS", "kind_of", "resolve_plan", "spec_for_matrices"]


class ArmPlan(Protocol):
    """What an arm trains, as every kind's plan answers it."""

    @property
    def kind(self) -> str: ...

    @property
    def arm(self) -> str: ...

    @property
    def spec(self) -> str: ...

    @property
    def n_total(self) -> int: ...

    @property
    def n_trainable(self) -> int: ...

    @property
    def changes(self) -> tuple: ...

    def trainable_at(self, step: int, epoch: int = 0) -> frozenset[str]: ...

    @property
    def initial(self) -> frozenset[str]: ...

    @property
    def ever_trainable(self) -> frozenset[str]: ...

    def fired(self, before: tuple[int, int] | None, now: tuple[int, int]) -> list: ...

    @property
    def pct(self) -> float: ...

    def flop_ratio(self, layout: ModelLayout, *, seq_len: int) -> float: ...

    def memory(
        self, layout: ModelLayout, *, batch: int, block: int, dtype: str, checkpointed: bool = False
    ) -> PlanMemory: ...

    def grid_marks(self) -> dict[str, str]: ...

    def record(self) -> dict: ...  # the kind's own fields of run_start's ArmRecord (engine.log.events)


class ArmKind(Protocol):
    @property
    def name(self) -> str: ...

    def claims(self, spec: Spec) -> bool: ...

    def resolve(self, arm: str, spec: Spec, layout: ModelLayout) -> ArmPlan: ...

    def spec_for(self, matrices: Iterable[tuple[int | None, str]], layout: ModelLayout, **options: Any) -> str: ...


# DoRA (Liu et al. 2024): LoRA's A and B for the direction plus a trained magnitude per output feature
DORA = AdapterKind(
    "dora", peft_options=(("use_dora", True),), extra=lambda p: {"lora_magnitude_vector": out_features(p)}
)
_ALL: tuple[ArmKind, ...] = (FREEZE, LORA, DORA)
KINDS: dict[str, ArmKind] = {kind.name: kind for kind in _ALL}


def kind_of(spec: Spec) -> ArmKind:
    """The kind a parsed spec is written in."""
    return next(kind for kind in KINDS.values() if kind.claims(spec))


def resolve_plan(arm: str, spec_text: str, layout: ModelLayout) -> ArmPlan:
    """Resolve a spec of any kind for arm ``arm``; SpecError names what does not fit the model."""
    spec = parse_spec(spec_text)
    return kind_of(spec).resolve(arm, spec, layout)


def spec_for_matrices(kind: str, matrices: Iterable[tuple[int | None, str]], layout: ModelLayout, **options) -> str:
    """The spec of kind ``kind`` ("freeze", "lora", ...) that trains (or adapts) exactly the chosen
    (block, role) matrices, roles as the plan grid names them (``attn.q`` or ``attn.qkv`` when fused,
    ``attn.o``, ``mlp``, ...; block None for ``embed``/``head``); ``options`` are the kind's (``rank``,
    ``alpha`` for adapters). The spec is resolved against ``layout`` before it is returned, so a
    choice the model cannot take (``attn.q`` of a fused QKV) is a SpecError here."""
    if kind not in KINDS:
        raise SpecError(f"unknown arm kind {kind!r} (expected one of: {', '.join(KINDS)})")
    chosen = list(matrices)
    text = KINDS[kind].spec_for(chosen, layout, **options)
    resolve_plan(kind, text, layout)
    return text
