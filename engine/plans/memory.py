"""A memory plan per arm from the model's layout alone (config on the meta device), before anything loads. Pure.

Per arm, in bytes (weights stay fp32 under autocast; AdamW keeps two fp32 moments):

* weights    = 4 * N (every arm holds its own copy)
* grads      = 4 * T (T = parameters the plan ever trains, over its whole schedule)
* optimizer  = 8 * T
* activations = b * s * e * (sum over the blocks backward reaches of: for each matrix its output width,
  plus its input width when it trains, plus 2 * h for the norms) + b * s * V * (e + 8) for the logits
  (the log-softmax the loss keeps and the two gradients backward makes) -- where b = batch, s = block,
  e = 2 bytes under bf16/fp16 autocast and 4 in fp32, h = hidden width, V = vocabulary. Why: a matmul
  keeps its input only to compute its own weight gradient (a frozen one needs just its weight), while
  the ops after a matmul (attention, GELU/SiLU, the gate product) keep its output; backward reaches
  the blocks at and above the lowest trainable parameter (all of them when the embedding trains) and
  autograd keeps nothing below it. An estimate, checked against the tensors autograd actually saves
  (4 blocks, width 256, 4x128 tokens): Llama's blocks within 5 % in fp32; GPT-2's blocks about 40 %
  under, since its tanh-GELU is written as several ops that each keep a tensor; the totals (blocks +
  logits) within -20 %..+80 % (the logits term counts the backward's peak, not only what is kept).
  Under bf16/fp16 autocast the casted weight copies (2 bytes per weight) come on top.
  With --activation-checkpointing (per block) each block reached keeps only its input (h per token) and
  backward recomputes one block at a time: the blocks' term becomes h * blocks + the largest block's.

A LoRA arm (``AdapterPlan.memory``): its adapters add 4 * A weights, and only they have grads (4 * A) and
optimizer state (8 * A); backward reaches down to the lowest adapted matrix, and an adapted matrix
keeps its input (for A's gradient) like a trained one.

Sizes accept `24GB`, `512MiB`, `1MB`, `1e9` (bytes).
"""

from __future__ import annotations

import re

import msgspec

from engine.core.errors import FreezeTuiError
from engine.plans.roles import ModelLayout

__all__ = ["PlanMemory", "arm_memory", "plan_memory", "parse_size", "fmt_bytes", "ACT_BYTES"]

ACT_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?(?:e\d+)?)\s*([a-z]*)\s*$")


class PlanMemory(msgspec.Struct, frozen=True):
    """Bytes an arm needs (this module), or one rank's share of them (engine.plans.rank_memory). Its field
    order is the key order `plan --json` and run_start.arms[].memory have always written."""

    weights: int
    grads: int
    optimizer: int
    activations: int
    total: int

    @classmethod
    def of(cls, weights: int, grads: int, optimizer: int, activations: int) -> PlanMemory:
        """The parts, with their total."""
        return cls(weights, grads, optimizer, activations, weights + grads + optimizer + activations)

    @property
    def state(self) -> int:
        """The weights, gradients and optimizer state (all but the activations)."""
        return self.weights + self.grads + self.optimizer


def arm_memory(
    layout: ModelLayout, trainable, *, batch: int, block: int, dtype: str, checkpointed: bool = False
) -> PlanMemory:
    """The bytes one arm training `trainable` (names) needs."""
    n_train = layout.numel(trainable)
    activations = activation_bytes(layout, trainable, batch=batch, block=block, dtype=dtype, checkpointed=checkpointed)
    return PlanMemory.of(4 * layout.n_total, 4 * n_train, 8 * n_train, activations)


def plan_memory(
    layout: ModelLayout, plan, *, batch: int, block: int, dtype: str, checkpointed: bool = False
) -> PlanMemory:
    """The memory of a plan of any kind, as its kind models it (a freeze plan: arm_memory of everything
    it ever trains; an adapter plan: its adapters, see the module docstring); `checkpointed`: under
    --activation-checkpointing."""
    return plan.memory(layout, batch=batch, block=block, dtype=dtype, checkpointed=checkpointed)


def activation_bytes(
    layout: ModelLayout, trainable, *, batch: int, block: int, dtype: str, checkpointed: bool = False
) -> int:
    """The estimate in the module docstring; 0 when nothing trains (no backward at all). `checkpointed`
    (--activation-checkpointing, per block): each block reached keeps only its input (h per token) and
    backward recomputes one block at a time, so one block's saved tensors (the largest) come on top."""
    trainable = set(trainable)
    if not trainable:
        return 0
    e, tokens = ACT_BYTES[dtype], batch * block
    hidden, vocab = _widths(layout)
    lowest = _lowest_block(layout, trainable)
    outside = 0
    per_block = dict.fromkeys((b for b in range(layout.n_blocks) if lowest is None or b >= lowest), 0)
    for p in layout.params:
        reached = p.block is None or lowest is None or p.block >= lowest
        if len(p.shape) == 2 and reached and (p.block is not None or not p.roles & {"embed", "head", "pos"}):
            d_in, d_out = _in_out(p)
            width = d_out + (d_in if p.name in trainable else 0)
            if p.block is not None and p.block in per_block:
                per_block[p.block] += width
            else:
                outside += width
    blocks = len(per_block)
    if checkpointed and blocks:
        kept = hidden * blocks + max(per_block.values()) + 2 * hidden
    else:
        kept = sum(per_block.values()) + 2 * hidden * blocks
    return tokens * e * (kept + outside) + tokens * vocab * (e + 8)


def _in_out(p) -> tuple[int, int]:
    """(input, output) width of a matrix: GPT-2's Conv1D stores (in, out), nn.Linear (out, in)."""
    return (p.shape[0], p.shape[1]) if "conv1d" in p.module_type.lower() else (p.shape[1], p.shape[0])


def _widths(layout: ModelLayout) -> tuple[int, int]:
    """(hidden width, vocabulary) from the embedding / head shapes; 0 where there is none."""
    embed = next((p for p in layout.params if "embed" in p.roles and len(p.shape) == 2), None)
    head = next((p for p in layout.params if "head" in p.roles and len(p.shape) == 2), embed)
    hidden = min(embed.shape) if embed else 0
    return hidden, max(head.shape) if head else 0


def _lowest_block(layout: ModelLayout, trainable: set) -> int | None:
    """The lowest block holding a trainable parameter; None when something below every block trains
    (the embedding) or blocks are unknown, so backward runs through every block."""
    if layout.problem:
        return None
    blocks = []
    for p in layout.params:
        if p.name in trainable:
            if p.block is None and p.roles & {"embed", "pos", "other"}:
                return None
            blocks.append(p.block if p.block is not None else layout.n_blocks)
    return min(blocks, default=None)


def parse_size(text: str, flag: str = "--memory-limit") -> int:
    """`24GB` -> 24e9 bytes (GB = 10^9, GiB = 2^30); one clear line for anything else."""
    match = _SIZE.match(str(text).lower())
    unit = match.group(2) if match else None
    if not match or unit not in _UNITS or float(match.group(1)) <= 0:
        raise FreezeTuiError(f"{flag} {text!r} is not a size; write e.g. 24GB, 512MiB or 1MB")
    size = float(match.group(1)) * _UNITS[unit]
    if not size < MAX_SIZE:  # 1e400GB reads as inf: int() of it would be an OverflowError traceback
        raise FreezeTuiError(f"{flag} {text!r} is beyond any machine (at most 1 EB); write e.g. 24GB")
    return int(size)


MAX_SIZE = 1e18  # bytes: an exabyte, far above any device


def fmt_bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


HINTS = "lower --batch-size or --block-size, drop an arm, or spread arms over more devices (--device cuda:0,cuda:1)"


def misfit(
    memory: dict[str, PlanMemory], placement: dict, budget: dict, *, limited: bool, hints: str = HINTS
) -> str | None:
    """The first arm that does not fit, as one line (None when all fit). memory: {arm: arm_memory(...)},
    placement: {arm: device name}, budget: {device: bytes available or None (unknown: not checked)};
    arms fill their device in arm order, so the line names the one that overflows it."""
    used: dict[str, int] = {}
    for name, mem in memory.items():
        device = placement[name]
        used[device] = used.get(device, 0) + mem.total
        free = budget.get(device)
        if free is None or used[device] <= free:
            continue
        where = "the --memory-limit" if limited else "free memory"
        shared = f" ({fmt_bytes(used[device])} with the arms before it)" if used[device] > mem.total else ""
        return (
            f"arm {name} does not fit on {device}: it needs {fmt_bytes(mem.total)}{shared}, "
            f"activations {fmt_bytes(mem.activations)} of it, but {where} there "
            f"is {fmt_bytes(max(0, free))}; {hints}"
        )
    return None
