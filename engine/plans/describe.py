"""Plans described: per-arm counts, FLOP-model cost and a block x role grid (types in engine.plans.plan_record).

``describe_plans`` is what ``freeze-tui plan`` prints (via ``freeze_tui.draw.plan_grid``);
``arm_record`` is what the trainer writes into ``run_start.arms``. No torch at
import: the model is only read (as a config, on the meta device) inside
``describe_plans``.

Grid format (a PlanGrid; plain JSON in run logs and `plan --json`)::

    {"blocks": L,
     "roles": ["attn.q", "attn.k", "attn.v", "attn.o", "mlp", "norm"],   # or attn.qkv if fused
     "cells": [[cell per role] for each block 0..L-1],
     "other": {"embed": cell, "pos": cell, "head": cell, "final_norm": cell},
     "tied": ["embed", "head"]}                                           # [] if untied

cell: "train" (all its parameters train at step 0), "lora" (an adapter on its weight: LoRA, DoRA), "partial" (some do),
"later" (none at step 0, some after a scheduled rule), "frozen", "absent" (no such
parameters in this model).
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET

from engine.core.errors import FreezeTuiError
from engine.log.events import ArmRecord
from engine.plans.kinds import ArmPlan, resolve_plan
from engine.plans.plan_record import PlanArm, PlanChange, PlanDescription, PlanGrid, PlanModel
from engine.plans.roles import ModelLayout, ParamInfo
from engine.plans.spec import DEFAULT_ARMS

__all__ = ["plan_grid", "arm_record", "describe_layout", "flop_cost", "grid_columns"]

OUTER_ROLES = ("embed", "pos", "head", "final_norm")


def grid_columns(layout: ModelLayout) -> list[str]:
    attn = ["attn.qkv"] if layout.fused_qkv else ["attn.q", "attn.k", "attn.v"]
    return attn + ["attn.o", "mlp", "norm"]


def plan_grid(plan: ArmPlan, layout: ModelLayout) -> PlanGrid:
    """The block x role grid of a plan (format in the module docstring)."""
    columns = grid_columns(layout)
    groups: dict[tuple, list[str]] = {}
    for p in layout.params:
        for key in _cell_keys(p):
            groups.setdefault(key, []).append(p.name)
    ever = plan.ever_trainable
    marks = plan.grid_marks()

    def cell(key) -> str:
        names = groups.get(key, ())
        mark = next((marks[n] for n in names if n in marks), None)
        return mark or _cell_state(names, plan.initial, ever)

    return PlanGrid(
        blocks=layout.n_blocks,
        roles=columns,
        cells=[[cell((b, r)) for r in columns] for b in range(layout.n_blocks)],
        other={r: cell((None, r)) for r in OUTER_ROLES},
        tied=sorted(next((p.roles for p in layout.params if p.tied), ())),
    )


def _cell_keys(p: ParamInfo) -> list[tuple]:
    return [(p.block, role) for role in p.roles]


def _cell_state(names, initial: frozenset[str], ever: frozenset[str]) -> str:
    if not names:
        return "absent"
    now = sum(n in initial for n in names)
    if now == len(names):
        return "train"
    if now:
        return "partial"
    return "later" if any(n in ever for n in names) else "frozen"


def flop_cost(plan: ArmPlan, layout: ModelLayout, *, seq_len: int) -> tuple[float, float]:
    """(flop_ratio, r_pred) as run_start, `plan` and `plan --measure` give them: the FLOP model's cost of a
    step of the plan vs full training, and its predicted saving 1 - that, each to 4 places."""
    ratio = plan.flop_ratio(layout, seq_len=seq_len)
    return round(ratio, 4), round(1.0 - ratio, 4)


def arm_record(plan: ArmPlan, layout: ModelLayout, *, seq_len: int) -> ArmRecord:
    """The run_start ``arms`` entry: name, spec, counts, FLOP ratio, r_pred, grid and the kind's own
    record (``lora`` for a LoRA arm, ...); the FLOP model includes attention scores for sequences of
    ``seq_len`` tokens (the run's block size)."""
    ratio, r_pred = flop_cost(plan, layout, seq_len=seq_len)
    return ArmRecord(
        name=plan.arm,
        spec=plan.spec,
        trainable=plan.n_trainable,
        total=plan.n_total,
        flop_ratio=ratio,
        r_pred=r_pred,
        grid=msgspec.to_builtins(plan_grid(plan, layout)),  # the log keeps it as plain JSON
        **plan.record(),
    )


def describe_layout(name: str, arch: str, layout: ModelLayout, arms, *, block_size: int) -> PlanDescription:
    """Model info and, per arm, its record, share and schedule, for a layout already in hand (pure)."""
    arms = list(arms) or list(DEFAULT_ARMS)
    names = [arm for arm, _ in arms]
    if len(set(names)) != len(names):
        raise FreezeTuiError(f"arm names must be unique, got: {', '.join(names)}")
    model = PlanModel(
        name=name,
        arch=arch,
        n_params=layout.n_total,
        n_blocks=layout.n_blocks,
        fused_qkv=layout.fused_qkv,
        tied=any(p.tied for p in layout.params),
        block_size=block_size,
    )
    plans = [resolve_plan(arm, spec, layout) for arm, spec in arms]
    return PlanDescription(model=model, arms=[_describe_arm(plan, layout, block_size) for plan in plans])


def _describe_arm(plan: ArmPlan, layout: ModelLayout, block_size: int) -> PlanArm:
    """Its run_start record's fields (those set) with the grid typed, its share in % and its schedule."""
    record = arm_record(plan, layout, seq_len=block_size)
    fields = {k: v for k, v in msgspec.structs.asdict(record).items() if v is not UNSET}
    return PlanArm(
        **dict(fields, grid=msgspec.convert(record.grid, PlanGrid)),
        pct=round(plan.pct, 2),
        schedule=[PlanChange(c.at, c.n, c.rule, layout.numel(c.trainable)) for c in plan.changes],
    )
