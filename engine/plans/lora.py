"""Adapter arm kinds (LoRA: ``lora:R[/ALPHA]:TARGETS``) resolved against a model layout. Pure: no torch.

Targets are matched exactly as freeze rules match (``engine.plans.match``: roles, blocks, ``re:``;
``attn.q`` on a fused QKV model is refused with the freeze spec's error). Of what they match, the
weight matrices of Linear and GPT-2 Conv1D layers get an adapter; biases, norms and embeddings stay
as they are. A fused QKV matrix is adapted as the model stores it, as one matrix. Every base
parameter is frozen: only the adapters train, r * (in + out) numbers each (plus what a kind adds,
``AdapterKind.extra``), under the names peft gives them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.core.errors import SpecError
from engine.log.events import AdapterRecord
from engine.plans.flops import lora_flop_ratio
from engine.plans.match import match_rule
from engine.plans.memory import PlanMemory, activation_bytes
from engine.plans.roles import ModelLayout, ParamInfo
from engine.plans.spec import Spec, grid_targets

__all__ = ["AdapterPlan", "AdapterKind", "LORA", "adaptable", "out_features", "ADAPTER"]

_ADAPTABLE = ("Linear", "Conv1D")
ADAPTER = "default"  # peft's adapter name, part of every adapter parameter's name


@dataclass(frozen=True)
class AdapterPlan:
    """An adapter arm: no base parameter trains; adapters of ``kind`` on ``adapted``.

    ``n_trainable`` counts the adapters' numbers, ``n_total`` the base model plus the adapters (as
    peft's ``get_nb_trainable_parameters`` counts them); ``trainable`` names the adapter tensors as
    peft names them in the model it injects into (a ``PeftModel`` adds ``base_model.model.``).
    """

    kind: str
    arm: str
    spec: str
    n_total: int
    n_trainable: int
    rank: int
    alpha: float
    adapted: tuple[str, ...]  # base weight names, model order
    trainable: frozenset[str]
    peft_options: tuple[tuple[str, object], ...] = ()  # the kind's LoraConfig options (e.g. use_dora)
    changes: tuple = field(default=(), init=False)  # no schedule: the adapters train from step 0

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    @property
    def modules(self) -> tuple[str, ...]:
        """The adapted modules' paths (what peft's ``target_modules`` names)."""
        return tuple(name.rsplit(".", 1)[0] for name in self.adapted)

    def trainable_at(self, step: int, epoch: int = 0) -> frozenset[str]:
        """The adapter tensors, at every step."""
        return self.trainable

    @property
    def initial(self) -> frozenset[str]:
        return self.trainable

    @property
    def ever_trainable(self) -> frozenset[str]:
        return self.trainable

    def fired(self, before: tuple[int, int] | None, now: tuple[int, int]) -> list:
        return []

    @property
    def pct(self) -> float:
        return 100.0 * self.n_trainable / self.n_total if self.n_total else 0.0

    # -- the arm-kind seam (engine.plans.kinds.ArmPlan) --------------------------------------------
    def flop_ratio(self, layout: ModelLayout, *, seq_len: int) -> float:
        return lora_flop_ratio(layout, self.adapted, self.rank, seq_len=seq_len)

    def memory(
        self, layout: ModelLayout, *, batch: int, block: int, dtype: str, checkpointed: bool = False
    ) -> PlanMemory:
        """Weights 4 (N + A), grads 4 A, AdamW 8 A; activations as a plan training the adapted
        matrices (backward reaches the lowest one, each keeps its input for A's gradient)."""
        n = self.n_trainable
        activations = activation_bytes(
            layout, set(self.adapted), batch=batch, block=block, dtype=dtype, checkpointed=checkpointed
        )
        return PlanMemory.of(4 * (layout.n_total + n), 4 * n, 8 * n, activations)

    def grid_marks(self) -> dict[str, str]:
        """Every adapted weight's plan-grid cell reads "lora" (the grid's adapter mark, any kind)."""
        return dict.fromkeys(self.adapted, "lora")

    def record(self) -> dict[str, AdapterRecord]:
        """The kind's own field of run_start's ArmRecord: its adapters, under the kind's name."""
        return {self.kind: AdapterRecord(self.rank, self.alpha, len(self.adapted))}


def adaptable(p: ParamInfo) -> bool:
    """A weight matrix of a Linear or Conv1D layer: what an adapter can sit beside."""
    return len(p.shape) == 2 and p.module_type in _ADAPTABLE and p.name.endswith(".weight")


def out_features(p: ParamInfo) -> int:
    """A matrix's output width: GPT-2's Conv1D stores (in, out), nn.Linear (out, in)."""
    return p.shape[p.out_dim]


@dataclass(frozen=True)
class AdapterKind:
    """A peft adapter kind: its spec prefix, the LoraConfig options beyond r/alpha/targets, and the
    tensors it trains per adapted matrix beside A and B ({peft tensor name: numbers})."""

    name: str
    peft_options: tuple[tuple[str, object], ...] = ()
    extra: Callable[[ParamInfo], dict[str, int]] = lambda p: {}

    def claims(self, spec: Spec) -> bool:
        return spec.adapter is not None and spec.adapter.kind == self.name

    def resolve(self, arm: str, spec: Spec, layout: ModelLayout) -> AdapterPlan:
        """The adapter plan of a parsed adapter spec; SpecError names the failing target."""
        adapter = spec.adapter
        assert adapter is not None and adapter.kind == self.name
        hit: set[str] = set()
        for rule in adapter.targets:
            names = {name for name, _ in match_rule(rule, layout, spec.text, arm)}
            matrices = {n for n in names if adaptable(layout.param(n))}
            if not matrices:
                raise SpecError(
                    f"bad spec {spec.text!r} for arm {arm!r}: {rule.describe()}: matches no weight matrix of a "
                    "Linear or Conv1D layer (adapters sit beside those; e.g. attn.qkv, attn.o, mlp)"
                )
            hit |= matrices
        adapted = tuple(p.name for p in layout.params if p.name in hit)
        tensors = {name: self._tensors(layout.param(name), adapter.rank) for name in adapted}
        n_adapter = sum(sum(t.values()) for t in tensors.values())
        return AdapterPlan(
            kind=self.name,
            arm=arm,
            spec=spec.text,
            n_total=layout.n_total + n_adapter,
            n_trainable=n_adapter,
            rank=adapter.rank,
            alpha=adapter.alpha,
            adapted=adapted,
            trainable=frozenset(
                f"{name.rsplit('.', 1)[0]}.{tensor}.{ADAPTER}.weight" for name in adapted for tensor in tensors[name]
            ),
            peft_options=self.peft_options,
        )

    def _tensors(self, p: ParamInfo, rank: int) -> dict[str, int]:
        """{peft tensor name: numbers} of one adapted matrix: A is r x in, B is out x r, then the kind's own."""
        d_out = out_features(p)
        return {"lora_A": rank * (p.shape[0] + p.shape[1] - d_out), "lora_B": rank * d_out, **self.extra(p)}

    def spec_for(
        self,
        matrices: Iterable[tuple[int | None, str]],
        layout: ModelLayout,
        *,
        rank: int = 8,
        alpha: float = 0.0,
        **_unused: Any,
    ) -> str:
        """``KIND:R[/ALPHA]:TARGETS`` adapting exactly the given (block, role) cells' weight matrices."""
        numbers = f"{rank}/{alpha:g}" if alpha and alpha != rank else f"{rank}"
        return f"{self.name}:{numbers}:{','.join(grid_targets(matrices, layout.n_blocks))}"


LORA = AdapterKind("lora")
