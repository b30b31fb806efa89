"""One rank's memory in a distributed run, before anything loads (issue 22). Pure.

An arm sharded over K ranks (FSDP2, each block its own unit, the rest of the model the root unit) holds
on each rank:

* weights   = 4 N / K (its shard) + 4 (R + B): the root unit (embeddings, final norm, head: R parameters)
  stays gathered from its forward to its backward, and one block (the largest, B) is gathered at a time;
* grads     = 4 T / K + 4 (R + B) while anything trains: a unit's whole gradient exists until it is
  reduce-scattered;
* optimizer = 8 T / K (AdamW's moments of its shard);
* activations = the arm's / K (each rank takes 1/K of the batch).

With --replicas R as well (HSDP) each rank keeps the same share of the weights, grads and optimizer state
and takes 1/(R K) of the batch. Replicas alone (K = 1): FSDP2 replication keeps, beside its one-shard copy
of the weights, the unsharded weights it does not free after forward (measured on CPU): 2 x 4 N, the
grads and AdamW state of one process, and 1/R of the activations.

An arm on one rank holds what one process would (engine.plans.memory). The ranks of a node share its host
memory: on CPU each rank's budget is the free memory / the node's ranks. While its arm loads, a rank holds
on the host the largest tensor (it reads its own weights one tensor at a time from safetensors,
engine.dist.rank_load), or the whole model (4 N) when the checkpoint is not plain safetensors; in that
case the whole model stays on the host for the run.
"""

from __future__ import annotations

from engine.plans.memory import PlanMemory, fmt_bytes
from engine.plans.roles import ModelLayout

RANK_HINTS = "use more ranks per arm (--shards), lower --batch-size or --block-size, or --dtype bf16"


def gathered_params(layout: ModelLayout) -> int:
    """R + B of the module docstring: the parameters gathered at once on a sharded rank."""
    blocks: dict[int, int] = {}
    outside = 0
    for p in layout.params:
        if p.block is None:
            outside += p.numel
        else:
            blocks[p.block] = blocks.get(p.block, 0) + p.numel
    return outside + max(blocks.values(), default=0)


def rank_share(memory: PlanMemory, layout: ModelLayout, shards: int, replicas: int = 1) -> PlanMemory:
    """The bytes one rank holds of an arm over `shards` ranks, each shard group one of `replicas` (module
    docstring)."""
    if shards <= 1 and replicas <= 1:
        return memory
    activations = -(-memory.activations // (shards * replicas))
    optimizer = -(-memory.optimizer // shards)
    if shards > 1:
        gathered = 4 * gathered_params(layout)
        weights = -(-memory.weights // shards) + gathered
        grads = -(-memory.grads // shards) + (gathered if memory.grads else 0)
    else:
        weights, grads = 2 * memory.weights, memory.grads
    return PlanMemory.of(weights, grads, optimizer, activations)


def host_while_loading(layout: ModelLayout, own_weights: bool) -> int:
    """Host bytes a rank holds while its arm loads (module docstring)."""
    if own_weights:
        return 4 * max((p.numel for p in layout.params), default=0)
    return 4 * layout.n_total


def rank_problem(
    arm: str,
    share: PlanMemory,
    device: str,
    budget: int | None,
    *,
    shards: int,
    node_ranks: int,
    limited: bool,
    host_extra: int = 0,
) -> str | None:
    """The line a rank refuses with when its share (plus `host_extra`, what it keeps on the host of a CPU
    device) does not fit its budget; None when it fits or the budget is unknown."""
    needed = share.total + host_extra
    if budget is None or needed <= budget:
        return None
    whose = f"one rank of its {shards}" if shards > 1 else "its rank"
    where = "the --memory-limit" if limited else "free memory"
    shared = f" per rank ({node_ranks} ranks on this node share it)" if node_ranks > 1 and not limited else ""
    kept = f", the whole model kept on the host {fmt_bytes(host_extra)}" if host_extra else ""
    parts = (
        f"weights {fmt_bytes(share.weights)}, optimizer {fmt_bytes(share.optimizer)}, "
        f"activations {fmt_bytes(share.activations)}"
    )
    return (
        f"arm {arm} does not fit on {device}: {whose} needs {fmt_bytes(needed)} ({parts}{kept}), "
        f"but {where} there is {fmt_bytes(max(0, budget))}{shared}; {RANK_HINTS}"
    )
