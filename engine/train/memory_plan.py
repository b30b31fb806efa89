"""The planned run from the config alone (the model on the meta device, each device's free memory),
made once before any weights load, and what `plan` shows of it (torch, for the meta model and free
memory)."""

from __future__ import annotations

from msgspec.structs import replace

from engine.plans.memory import parse_size
from engine.plans.plan_record import (
    PlanDescription,
    PlanSettings,
    RankPlan,
)
from engine.plans.planned import PlannedRun, plan_run
from engine.run.config import RunConfig
from engine.train.devices import free_bytes, resolve_devices


def budgets(cfg: RunConfig, devices, layout) -> dict[str, int | None]:
    """Bytes each device may use: --memory-limit, else its free memory. The host also keeps the shared
    initial weights (4 N bytes) that every arm copies from."""
    if cfg.memory_limit is not None:
        return {str(d): parse_size(cfg.memory_limit) for d in devices}
    out = {}
    for d in dict.fromkeys(devices):
        free = free_bytes(d)
        out[str(d)] = None if free is None else free - (4 * layout.n_total if d.type == "cpu" else 0)
    return out


def planned_run(cfg: RunConfig, devices=None) -> PlannedRun:
    """Layout, plans, placement over `devices` (default: --device's) and memory, once. Raises
    FreezeTuiError for a model or spec that cannot be planned; a plan that does not fit is refused by
    `PlannedRun.check`, not here (`plan` shows it)."""
    from engine.train.models import load_layout

    devices = resolve_devices(cfg.device) if devices is None else devices
    name, arch, layout = load_layout(cfg.model, trust_remote_code=cfg.trust_remote_code)
    return plan_run(
        cfg.arms,
        batch=cfg.batch_size,
        block=cfg.block_size,
        dtype=cfg.dtype,
        model_name=name,
        arch=arch,
        layout=layout,
        devices=[str(d) for d in devices],
        budgets=budgets(cfg, devices, layout),
        limited=cfg.memory_limit is not None,
        checkpointed=cfg.activation_checkpointing,
    )


def add_memory_plan(
    desc: PlanDescription, cfg: RunConfig, planned: PlannedRun, *, measure: bool = False, steps: int = 5
) -> PlanDescription:
    """The description with each arm's `device` and `memory` (and `measured` with --measure), and the plan's
    `placement`, `devices` (needed vs budget per device), `memory_problem` (the line `run` would refuse
    with) and `settings`; with --shards/--replicas one rank's share (`rank_memory`, `rank`)."""
    arms = [replace(arm, device=planned.placement[arm.name], memory=planned.memory[arm.name]) for arm in desc.arms]
    desc = replace(
        desc,
        arms=arms,
        placement=dict(planned.placement),
        devices=planned.per_device(),
        memory_problem=planned.problem,
        settings=PlanSettings(cfg.batch_size, cfg.block_size, cfg.dtype),
    )
    if cfg.shards > 1 or cfg.replicas > 1:
        desc = add_rank_memory(desc, cfg, planned)
    if measure:
        from engine.train.measure import measure_plan

        measured, per_arm = measure_plan(cfg, planned, steps=steps)
        desc = replace(desc, arms=[replace(arm, measured=per_arm[arm.name]) for arm in desc.arms], measured=measured)
    return desc


def add_rank_memory(desc: PlanDescription, cfg: RunConfig, planned: PlannedRun) -> PlanDescription:
    """With --shards K or --replicas R: each arm's `rank_memory` (one rank's share, engine.plans.rank_memory) and the
    plan's `rank` (K, and the host bytes a rank holds while it loads, reading its own weights or not)."""
    from engine.plans.rank_memory import host_while_loading, rank_share

    arms = [
        replace(
            arm,
            rank_memory=rank_share(planned.memory[arm.name], planned.layout, cfg.shards, cfg.replicas),
        )
        for arm in desc.arms
    ]
    rank = RankPlan(
        shards=cfg.shards,
        replicas=cfg.replicas,
        host_loading_own=host_while_loading(planned.layout, True),
        host_loading_whole=host_while_loading(planned.layout, False),
    )
    return replace(desc, arms=arms, rank=rank)
