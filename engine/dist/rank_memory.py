"""One rank's memory check before anything loads (torch, for the device's free memory): its share of its
arm (engine.plans.rank_memory) against its device's budget, which the ranks of a node share on the host."""

from __future__ import annotations

import os

import torch

from engine.core.errors import FreezeTuiError
from engine.plans.memory import PlanMemory, fmt_bytes, parse_size
from engine.plans.planned import PlannedRun
from engine.plans.rank_memory import host_while_loading, rank_problem, rank_share
from engine.run.config import RunConfig
from engine.train.devices import free_bytes, host_available


def node_ranks() -> int:
    """The ranks on this node (torchrun's LOCAL_WORLD_SIZE): they share its host memory."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def check_rank(
    cfg: RunConfig, planned: PlannedRun, arm: str, device: torch.device, *, own_weights: bool, ranks: int | None = None
) -> PlanMemory:
    """This rank's share of `arm` (its bytes); one
    FreezeTuiError line when it cannot fit. own_weights: the rank reads only its own weights
    (engine.dist.rank_load); else the whole model is loaded, and on a CPU rank kept, on the host."""
    ranks = node_ranks() if ranks is None else ranks
    share = rank_share(planned.memory[arm], planned.layout, cfg.shards, cfg.replicas)
    limited = cfg.memory_limit is not None
    if limited:
        budget: int | None = parse_size(str(cfg.memory_limit))
    else:
        free = free_bytes(device)
        budget = None if free is None else free // ranks if device.type == "cpu" else free
    kept = 0 if own_weights or device.type != "cpu" else 4 * planned.layout.n_total
    problem = rank_problem(
        arm,
        share,
        str(device),
        budget,
        shards=cfg.shards * cfg.replicas,
        node_ranks=ranks,
        limited=limited,
        host_extra=kept,
    )
    if problem:
        raise FreezeTuiError(problem)
    if device.type != "cpu" and not limited:  # a GPU rank's host: the weights while they load
        _check_host(arm, host_while_loading(planned.layout, own_weights), ranks)
    return share


def _check_host(arm: str, per_rank: int, ranks: int) -> None:
    host = host_available()
    if host is None or per_rank * ranks <= host:
        return
    raise FreezeTuiError(
        f"arm {arm}: loading holds {fmt_bytes(per_rank)} on the host per rank, {fmt_bytes(per_rank * ranks)} for the "
        f"{ranks} ranks of this node, but {fmt_bytes(host)} is available; save the model as safetensors "
        "(model.save_pretrained) so each rank reads only its own weights, or start fewer ranks per node"
    )
