"""What a process knows of a distributed run before torch loads: the torchrun environment, the world's
layout (arms x shards), and how world rank 0 merges the events of every arm group into one log. No torch.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from engine.config import RunConfig
from engine.errors import FreezeTuiError
from engine.log import events as ev

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
    if cfg.shards > 1 and cfg.dtype == "fp16":
        raise FreezeTuiError(
            "--dtype fp16 with --shards: each shard's GradScaler would skip steps on its own; use --dtype bf16"
        )
    if "," in cfg.device:
        raise FreezeTuiError(
            f"--device {cfg.device}: a distributed run has one device per process (its local rank's); "
            "pass --device cuda, cpu or auto"
        )
    need = len(cfg.arms) * cfg.shards
    if world_size != need:
        raise FreezeTuiError(
            f"the world has {world_size} process(es) but {len(cfg.arms)} arm(s) x --shards {cfg.shards} "
            f"need {need}: start {need} processes (--nproc-per-node x --nnodes) or change --arm/--shards"
        )


def check_one_process(cfg: RunConfig) -> None:
    if cfg.shards > 1:
        raise FreezeTuiError(
            f"--shards {cfg.shards} shards each arm over {cfg.shards} processes: add --nproc-per-node "
            f"{len(cfg.arms) * cfg.shards} --headless (or start it with torchrun)"
        )


# -- merging the events of the arm groups (world rank 0, at every sync point) ---------------------------
# kind -> the field that makes it "the same" (one step_zero per replicate, so its kind is enough)
_MERGED = {"step": "step", "dw": "step", "epoch_end": "epoch", "step_zero": "kind"}


def merge_rank_events(per_rank: list[list[ev.Event]]) -> list[ev.Event]:
    """One event stream from the streams of the arm groups, as one process would have emitted it:
    a step (dw, epoch_end) event of every group becomes one event with all arms; any other event
    keeps its place relative to them (before the next merged event it preceded in its own stream)."""
    out: list[ev.Event] = []
    index: dict[tuple, int] = {}
    for events in per_rank:
        cursor = 0
        for event in events:
            key = (event.kind, getattr(event, _MERGED[event.kind])) if event.kind in _MERGED else None
            if key is not None and key in index:
                at = index[key]
                out[at] = _union(out[at], event)
                cursor = at + 1
                continue
            at = cursor if key is not None else _next_merged(out, cursor)
            out.insert(at, event)
            index = {k: (i + 1 if i >= at else i) for k, i in index.items()}
            if key is not None:
                index[key] = at
            cursor = at + 1
    return out


def _next_merged(out: list[ev.Event], start: int) -> int:
    """Where an unmerged event goes: after the unmerged events already there, before the next merged one."""
    while start < len(out) and out[start].kind not in _MERGED:
        start += 1
    return start


def _union(a: ev.Event, b: ev.Event) -> ev.Event:
    changes: dict[str, Any] = {"arms": {**a.arms, **b.arms}}  # type: ignore[attr-defined]
    if a.kind == "dw":
        changes["drift"] = {**a.drift, **b.drift}  # type: ignore[attr-defined]
        changes["rel"] = {**a.rel, **b.rel}  # type: ignore[attr-defined]
    return dataclasses.replace(a, **changes)
