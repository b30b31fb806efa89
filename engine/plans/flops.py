"""FLOP model of one training step of a plan, relative to training everything. Pure.

Per token, for every weight matmul with N_p weights (attention q/k/v/o or fused
qkv, MLP matrices, and the LM head -- tied to the embedding or not):

* forward: 2 N_p, always (embedding and position lookups cost 0);
* backward, input gradients: 2 N_p, but only for matmuls *above* the lowest
  trainable parameter -- autograd computes nothing below it;
* backward, weight gradients: 2 N_p, only for trainable matmul weights.

Training everything costs 6 N (the usual 6N rule). Layers are ordered by block,
then within a block: norms (0), q/k/v (1), attention scores (1.5), o (2), MLP
matrices (3, 4, ... in registration order). Embedding-side parameters lie below
every block, final norm and head above. Biases and norms cost nothing themselves
but count as trainable for "lowest trainable".

With ``seq_len`` > 0, attention scores add 2 * seq_len * d_attn per block forward
(QK^T and AV, Kaplan et al.'s convention) and twice that backward, only in blocks
whose scores lie above the lowest trainable parameter.

The ratio is cost(plan) / cost(full); the predicted time saving is r_pred = 1 - ratio.

A LoRA arm (``lora_step_flops``) trains no base weight: backward input gradients still run
down to the lowest adapted matrix, there are no base weight gradients, and each adapter
(x -> A (r x in) -> B (out x r)) adds 2 r (in + out) forward, 2 r (in + out) for its weight
gradients, and input gradients of 2 r out (to reach A) plus 2 r in above the lowest adapter.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.plans.roles import ModelLayout, ParamInfo

__all__ = ["StepFlops", "step_flops", "flop_ratio", "predicted_saving", "lora_step_flops", "lora_flop_ratio"]

_BELOW = (-1, 0.0)
_SUB = {"norm": 0.0, "attn.q": 1.0, "attn.k": 1.0, "attn.v": 1.0, "attn.qkv": 1.0, "attn": 1.0, "attn.o": 2.0}
_SCORES = 1.5


@dataclass(frozen=True)
class StepFlops:
    """FLOPs per token of one training step, by part."""

    forward: float
    backward_input: float
    backward_weight: float
    attention: float

    @property
    def total(self) -> float:
        return self.forward + self.backward_input + self.backward_weight + self.attention


@dataclass(frozen=True)
class _Layer:
    name: str
    lowest: tuple[int, float]  # lowest place the parameter is used (a tied head: the embedding)
    position: tuple[int, float]  # where its matmul runs
    matmul: int  # weights used in a matmul, 0 for lookups, norms, biases


def step_flops(layout: ModelLayout, trainable, *, seq_len: int) -> StepFlops:
    """FLOPs per token of one step when exactly ``trainable`` (names) is trained."""
    layers = _layers(layout)
    low = min((lay.lowest for lay in layers if lay.name in trainable), default=None)
    above = [lay for lay in layers if low is not None and lay.position > low]
    return StepFlops(
        forward=2.0 * sum(lay.matmul for lay in layers),
        backward_input=2.0 * sum(lay.matmul for lay in above),
        backward_weight=2.0 * sum(lay.matmul for lay in layers if lay.name in trainable),
        attention=_attention(layout, low, seq_len),
    )


def flop_ratio(layout: ModelLayout, trainable, *, seq_len: int) -> float:
    """cost(plan) / cost(train everything); 1.0 for full training. The one FLOP model of freeze-tui:
    `plan`, run_start (hence the Time view, report, headless) and the bench all call it with the
    run's block size as ``seq_len``, so they print the same number."""
    full = step_flops(layout, set(layout.names), seq_len=seq_len).total
    return step_flops(layout, set(trainable), seq_len=seq_len).total / full if full else 1.0


def predicted_saving(layout: ModelLayout, trainable, *, seq_len: int) -> float:
    """r_pred = 1 - flop_ratio: the share of step time the plan should save."""
    return 1.0 - flop_ratio(layout, trainable, seq_len=seq_len)


def lora_step_flops(layout: ModelLayout, adapted, rank: int, *, seq_len: int) -> StepFlops:
    """FLOPs per token of one step of a LoRA arm with rank-``rank`` adapters on ``adapted`` (names)."""
    layers = {lay.name: lay for lay in _layers(layout)}
    low = min((layers[n].position for n in adapted), default=None)
    adapters = a_inputs = b_inputs = 0.0
    for name in adapted:
        p = layout.param(name)
        n_in, n_out = p.shape[1 - p.out_dim], p.shape[p.out_dim]
        adapters += 2.0 * rank * (n_in + n_out)
        b_inputs += 2.0 * rank * n_out
        if low is not None and layers[name].position > low:
            a_inputs += 2.0 * rank * n_in
    above = [lay for lay in layers.values() if low is not None and lay.position > low]
    return StepFlops(
        forward=2.0 * sum(lay.matmul for lay in layers.values()) + adapters,
        backward_input=2.0 * sum(lay.matmul for lay in above) + a_inputs + b_inputs,
        backward_weight=adapters,
        attention=_attention(layout, low, seq_len),
    )


def lora_flop_ratio(layout: ModelLayout, adapted, rank: int, *, seq_len: int) -> float:
    """cost(LoRA arm) / cost(train everything)."""
    full = step_flops(layout, set(layout.names), seq_len=seq_len).total
    return lora_step_flops(layout, adapted, rank, seq_len=seq_len).total / full if full else 1.0


def _layers(layout: ModelLayout) -> list[_Layer]:
    if layout.problem:
        return [_Layer(p.name, (0, float(i)), (0, float(i)), _unknown_matmul(p)) for i, p in enumerate(layout.params)]
    mlp_rank: dict[int, int] = {}
    layers = []
    for p in layout.params:
        if p.block is not None and p.role == "mlp" and len(p.shape) == 2:
            mlp_rank[p.block] = mlp_rank.get(p.block, 0) + 1
        position = _position(p, layout.n_blocks, mlp_rank)
        lowest = _BELOW if "embed" in p.roles else position
        layers.append(_Layer(p.name, lowest, position, _matmul(p)))
    return layers


def _position(p: ParamInfo, n_blocks: int, mlp_rank: dict[int, int]) -> tuple[int, float]:
    if p.block is not None:
        if p.role == "mlp":
            return (p.block, 2.0 + mlp_rank.get(p.block, 1))
        return (p.block, _SUB.get(p.role, 0.0))
    if "head" in p.roles:
        return (n_blocks, 1.0)
    return _BELOW if p.roles & {"embed", "pos", "other"} else (n_blocks, 0.0)


def _matmul(p: ParamInfo) -> int:
    if len(p.shape) != 2:
        return 0
    if "head" in p.roles or (p.block is not None and p.role != "norm"):
        return p.numel
    return 0


def _unknown_matmul(p: ParamInfo) -> int:
    return p.numel if len(p.shape) == 2 and "embedding" not in p.module_type.lower() else 0


def _attention(layout: ModelLayout, low, seq_len: int) -> float:
    arch = layout.arch
    if seq_len <= 0 or not arch.n_heads or not arch.head_dim:
        return 0.0
    per_block = 2.0 * seq_len * arch.n_heads * arch.head_dim
    backward = sum(2 * per_block for b in range(layout.n_blocks) if low is not None and (b, _SCORES) > low)
    return per_block * layout.n_blocks + backward
