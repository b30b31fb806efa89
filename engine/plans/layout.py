"""Which layout a distributed run would use on N GPUs (`plan --gpus N`): each arm gets N / arms GPUs,
trained as data-parallel replicas when it fits one GPU whole with its optimizer (no weights travel in
forward or backward: the faster choice), else sharded with FSDP2 over the fewest GPUs that hold it,
its remaining GPUs replicas of those shards (HSDP). No torch: from the memory plan's counts.

Per rank, an arm over R replicas x K shards needs its state (weights, gradients, optimizer) / K and the
activations of its slice of the batch, activations / (R x K): the estimate of engine.plans.memory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from engine.core.errors import FreezeTuiError
from engine.plans.memory import PlanMemory, fmt_bytes, parse_size


@dataclass(frozen=True)
class Layout:
    gpus: int
    arms: int
    replicas: int
    shards: int
    kind: str  # "replicas", "shards", "hsdp", "one GPU per arm", or "does not fit"
    arm: str  # the arm that needs the most memory (every arm gets the same layout)
    state: int  # that arm's weights, gradients and optimizer state, in bytes (unsharded)
    per_rank: int  # bytes per rank in the chosen layout
    capacity: int  # one GPU's bytes
    reason: str  # the words `plan` prints

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        """What `plan --gpus N` prints."""
        shape = f"{self.arms} arm(s) x {self.replicas} replica(s) x {self.shards} shard(s)"
        head = f"layout on {self.gpus} GPU(s): {self.kind}, {shape}. {self.reason}"
        if self.kind == "does not fit":
            return head
        flags = f" --replicas {self.replicas}" * (self.replicas > 1) + f" --shards {self.shards}" * (self.shards > 1)
        return f"{head}. Start: freeze-tui run --nproc-per-node {self.gpus}{flags} --headless ..."


def per_rank_bytes(memory: PlanMemory, replicas: int, shards: int) -> int:
    """One rank's bytes of an arm (engine.plans.memory's counts) over `replicas` x `shards` ranks."""
    return -(-memory.state // shards) + -(-memory.activations // (replicas * shards))


def gpu_capacity(budgets: dict[str, int | None], memory_limit: str | None, gpus: int) -> int:
    """One GPU's bytes: --memory-limit, else the smallest free memory of the visible GPUs."""
    if memory_limit is not None:
        return parse_size(memory_limit)
    free = [b for d, b in budgets.items() if d.startswith("cuda") and b is not None]
    if not free:
        raise FreezeTuiError(
            f"plan --gpus {gpus}: no GPU is visible here to size one; give one GPU's memory with "
            "--memory-limit SIZE (e.g. --memory-limit 80GB for an H100)"
        )
    return min(free)


def choose_layout(memory: dict[str, PlanMemory], *, gpus: int, capacity: int, batch: int) -> Layout:
    """The layout for `gpus` GPUs shared equally by the arms of `memory` ({arm: its memory plan})."""
    arms = len(memory)
    if gpus < 1:
        raise FreezeTuiError(f"--gpus must be at least 1, got {gpus}")
    if gpus % arms:
        raise FreezeTuiError(
            f"--gpus {gpus} does not split over {arms} arm(s): give a multiple of {arms} "
            "(each arm trains on GPUs of its own)"
        )
    name = max(memory, key=lambda a: memory[a].total)
    mem, per_arm = memory[name], gpus // arms
    state = mem.state
    for shards in (k for k in range(1, per_arm + 1) if per_arm % k == 0):
        replicas = per_arm // shards
        need = per_rank_bytes(mem, replicas, shards)
        if need <= capacity:
            kind = _kind(replicas, shards)
            reason = _batch(_reason(name, state, need, capacity, replicas, shards, kind), batch, per_arm)
            return Layout(gpus, arms, replicas, shards, kind, name, state, need, capacity, reason)
    need = per_rank_bytes(mem, 1, per_arm)
    reason = (
        f"arm {name} does not fit even sharded over all {per_arm} GPU(s) of an arm: {fmt_bytes(need)} per GPU "
        f"against {fmt_bytes(capacity)}; use more GPUs, --dtype bf16, --activation-checkpointing or a "
        "smaller --batch-size"
    )
    return Layout(gpus, arms, 1, per_arm, "does not fit", name, state, need, capacity, reason)


def _kind(replicas: int, shards: int) -> str:
    if shards == 1:
        return "replicas" if replicas > 1 else "one GPU per arm"
    return "shards" if replicas == 1 else "hsdp"


def _reason(name: str, state: int, need: int, capacity: int, replicas: int, shards: int, kind: str) -> str:
    flags = f"--replicas {replicas} --shards {shards}"
    held = f"arm {name}'s weights, gradients and optimizer state ({fmt_bytes(state)})"
    if shards == 1:
        why = f"{held} fit one GPU: with its slice of the batch it needs {fmt_bytes(need)} of {fmt_bytes(capacity)}"
        if kind == "replicas":
            return why + f", so {replicas} data-parallel replicas per arm, {flags} (no weights travel: the fastest)"
        return why + ", so one GPU per arm (no flags)"
    why = (
        f"{held} and its activations do not fit one GPU ({fmt_bytes(capacity)}): sharded over {shards} GPUs "
        f"it needs {fmt_bytes(need)} per GPU"
    )
    if kind == "hsdp":
        return why + f", and its other GPUs replicate those shards: HSDP, {flags}"
    return why + f": {flags}"


def _batch(reason: str, batch: int, ranks: int) -> str:
    if batch % ranks == 0:
        return reason
    return reason + f"; --batch-size {batch} must then be a multiple of {ranks} (each rank takes an equal slice)"
