"""What a process knows of a distributed run before torch loads: the torchrun environment, the world's
layout (arms x replicas x shards) and what a distributed run refuses. No torch. (World rank 0 merges the events of
the arm groups with the one merger, engine.log.merge.merge_parts.)
"""

from __future__ import annotations

import os
import re

from engine.run.config import RunConfig
from engine.core.errors import FreezeTuiError

DEFAULT_PORT = 29400  # torch's c10d rendezvous, for an endpoint without a port
LIVE_APP_REFUSED = (
    "the live app runs in one process: under torchrun (or with --nproc-per-node) pass --headless, "
    "then follow the run with `freeze-tui watch LOG` from another terminal"
)


def under_torchrun() -> bool:
    """True in a worker that torchrun (or torch's elastic launcher) started."""
    return "TORCHELASTIC_RUN_ID" in os.environ or ("RANK" in os.environ and "WORLD_SIZE" in os.environ)


def quiet_rank() -> bool:
    """A torchrun worker other than world rank 0: it prints only errors of its own."""
    return under_torchrun() and env_rank() != 0


def env_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def check_world(cfg: RunConfig, world_size: int, *, headless: bool, detach: bool = False) -> None:
    """One clear line for what a distributed run cannot do: the live app, or a world of the wrong size."""
    if not headless or detach:
        raise FreezeTuiError(LIVE_APP_REFUSED)
    if cfg.shards * cfg.replicas > 1 and cfg.dtype == "fp16":
        flag = "--shards" if cfg.shards > 1 else "--replicas"
        raise FreezeTuiError(
            f"--dtype fp16 with {flag}: each rank's GradScaler would skip steps on its own; use --dtype bf16"
        )
    if "," in cfg.device:
        raise FreezeTuiError(
            f"--device {cfg.device}: a distributed run has one device per process (its local rank's); "
            "pass --device cuda, cpu or auto"
        )
    need = len(cfg.arms) * cfg.replicas * cfg.shards
    if world_size != need:
        raise FreezeTuiError(
            f"the world has {world_size} process(es) but {len(cfg.arms)} arm(s) x --replicas {cfg.replicas} "
            f"x --shards {cfg.shards} need {need}: start {need} processes (--nproc-per-node x --nnodes) "
            "or change --arm/--replicas/--shards"
        )


def check_one_process(cfg: RunConfig) -> None:
    if cfg.replicas > 1:
        raise FreezeTuiError(
            f"--replicas {cfg.replicas} trains each arm over {cfg.replicas} processes: add --nproc-per-node "
            f"{len(cfg.arms) * cfg.replicas * cfg.shards} --headless (or start it with torchrun)"
        )
    if cfg.shards > 1:
        raise FreezeTuiError(
            f"--shards {cfg.shards} shards each arm over {cfg.shards} processes: add --nproc-per-node "
            f"{len(cfg.arms) * cfg.shards} --headless (or start it with torchrun)"
        )


def endpoint_parts(endpoint: str) -> tuple[str, int]:
    """(host, port) of a well-formed endpoint (torch's default port when none is given)."""
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(.*))?", endpoint)
    port = match.group(2) if match else None
    if not match or (port is not None and not (port.isdigit() and 0 < int(port) < 65536)):
        raise FreezeTuiError(
            f"--rdzv-endpoint {endpoint!r} is not HOST:PORT with a port in 1-65535; e.g. --rdzv-endpoint node0:29500"
        )
    return match.group(1).strip("[]"), int(port) if port is not None else DEFAULT_PORT
