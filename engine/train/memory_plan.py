"""The memory plan of a run, from the config alone (the model on the meta device), and the check that
refuses a plan that cannot fit before any weights load (torch, for the meta model and free memory)."""

from __future__ import annotations

from engine.config import RunConfig
from engine.errors import FreezeTuiError
from engine.plans.memory import HINTS, misfit, parse_size, plan_memory
from engine.train.devices import free_bytes, place


def memory_of_plans(cfg: RunConfig, layout, plans) -> dict[str, dict]:
    """{arm: {weights, grads, optimizer, activations, total}}; a scheduled plan counts everything it
    ever trains (the optimizer keeps the state of tensors frozen again later)."""
    return {
        name: plan_memory(layout, plan, batch=cfg.batch_size, block=cfg.block_size, dtype=cfg.dtype)
        for name, plan in plans
    }


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


def hints(cfg: RunConfig) -> str:
    return ("use --dtype bf16 (activations halve), " if cfg.dtype == "fp32" else "") + HINTS


def check_memory_plan(cfg: RunConfig, devices) -> tuple[dict, dict]:
    """(placement {arm: device}, memory {arm: bytes}); raises FreezeTuiError naming the first arm that
    does not fit on its device."""
    from engine.plans.kinds import resolve_plan
    from engine.train.models import load_layout

    _, _, layout = load_layout(cfg.model, trust_remote_code=cfg.trust_remote_code)
    plans = [(name, resolve_plan(name, spec, layout)) for name, spec in cfg.arms]
    placement = place([name for name, _ in plans], devices)
    memory = memory_of_plans(cfg, layout, plans)
    problem = misfit(
        memory,
        {name: str(d) for name, d in placement.items()},
        budgets(cfg, devices, layout),
        limited=cfg.memory_limit is not None,
        hints=hints(cfg),
    )
    if problem:
        raise FreezeTuiError(problem)
    return placement, memory


def plan_report(cfg: RunConfig) -> dict:
    """What `plan` adds: per arm its device and memory, per device what the arms need against its budget."""
    from engine.plans.kinds import resolve_plan
    from engine.train.devices import resolve_devices
    from engine.train.models import load_layout

    devices = resolve_devices(cfg.device)
    _, _, layout = load_layout(cfg.model, trust_remote_code=cfg.trust_remote_code)
    plans = [(name, resolve_plan(name, spec, layout)) for name, spec in cfg.arms]
    placement = {name: str(d) for name, d in place([name for name, _ in plans], devices).items()}
    memory = memory_of_plans(cfg, layout, plans)
    budget = budgets(cfg, devices, layout)
    per_device = {
        d: {"needed": sum(memory[a]["total"] for a in placement if placement[a] == d), "budget": budget.get(d)}
        for d in dict.fromkeys(placement.values())
    }
    for entry in per_device.values():
        entry["fits"] = entry["budget"] is None or entry["needed"] <= entry["budget"]
    problem = misfit(memory, placement, budget, limited=cfg.memory_limit is not None, hints=hints(cfg))
    return {"placement": placement, "memory": memory, "devices": per_device, "problem": problem}


def add_memory_plan(desc: dict, cfg: RunConfig, *, measure: bool = False, steps: int = 5) -> dict:
    """Each arm gains `device` and `memory` (and `measured` with --measure); the plan gains `placement`,
    `devices` (needed vs budget per device) and `memory_problem` (the line `run` would refuse with)."""
    report = plan_report(cfg)
    for arm in desc["arms"]:
        arm["device"] = report["placement"][arm["name"]]
        arm["memory"] = report["memory"][arm["name"]]
    desc["placement"] = report["placement"]
    desc["devices"] = report["devices"]
    desc["memory_problem"] = report["problem"]
    desc["settings"] = {"batch_size": cfg.batch_size, "block_size": cfg.block_size, "dtype": cfg.dtype}
    if measure:
        from engine.train.measure import measure_plan

        measured = measure_plan(cfg, steps=steps)
        for arm in desc["arms"]:
            arm["measured"] = measured["arms"][arm["name"]]
        desc["measured"] = {k: v for k, v in measured.items() if k != "arms"}
    return desc
