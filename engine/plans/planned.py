"""A run's plan, made once before any weights load and passed down: the model's layout, every arm's
resolved plan, where each arm trains and the memory it needs there. No torch: the caller reads the
layout (on the meta device) and each device's free memory, and hands them in.

`run` refuses a plan that does not fit (`PlannedRun.check`), `plan` shows it (`per_device`), the
experiment and `plan --measure` build their arms from its plans and placement.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from engine.core.errors import FreezeTuiError
from engine.plans.kinds import ArmPlan, resolve_plan
from engine.plans.memory import HINTS, PlanMemory, misfit, plan_memory
from engine.plans.plan_record import DeviceNeed
from engine.plans.roles import ModelLayout


@dataclass(frozen=True)
class PlannedRun:
    model_name: str
    arch: str
    layout: ModelLayout
    plans: list[tuple[str, ArmPlan]]  # (arm name, its resolved plan), in arm order
    devices: list[str]  # the run's devices, in --device order (the first holds what is not an arm's)
    placement: dict[str, str]  # {arm: device name}
    memory: dict[str, PlanMemory]  # {arm: the bytes it needs}
    budgets: dict[str, int | None]  # {device name: bytes the arms may use there; None: unknown}
    limited: bool = False  # the budgets are --memory-limit's, not the devices' free memory
    hints: str = HINTS  # how to make a plan fit, for the refusal

    @property
    def problem(self) -> str | None:
        """The line `run` refuses with, naming the first arm that does not fit on its device; None if all fit."""
        return misfit(self.memory, self.placement, self.budgets, limited=self.limited, hints=self.hints)

    def check(self) -> None:
        problem = self.problem
        if problem:
            raise FreezeTuiError(problem)

    def per_device(self) -> dict[str, DeviceNeed]:
        """{device: what the arms placed there need against its budget}."""
        out: dict[str, DeviceNeed] = {}
        for device in dict.fromkeys(self.placement.values()):
            needed = sum(self.memory[a].total for a, d in self.placement.items() if d == device)
            budget = self.budgets.get(device)
            out[device] = DeviceNeed(needed=needed, budget=budget, fits=budget is None or needed <= budget)
        return out

    def only(self, arms: list[str]) -> PlannedRun:
        """The same plan restricted to some arms (what one rank of a distributed run holds)."""
        return dataclasses.replace(
            self,
            plans=[(n, p) for n, p in self.plans if n in arms],
            placement={n: d for n, d in self.placement.items() if n in arms},
            memory={n: m for n, m in self.memory.items() if n in arms},
        )


def plan_run(
    arms: list[tuple[str, str]] | tuple[tuple[str, str], ...],
    *,
    batch: int,
    block: int,
    dtype: str,
    model_name: str,
    arch: str,
    layout: ModelLayout,
    devices: list[str],
    budgets: dict[str, int | None],
    limited: bool,
    checkpointed: bool = False,
) -> PlannedRun:
    """Resolve every arm's (name, spec) once, place the arms over `devices` round-robin in arm order, and count
    their memory; a scheduled plan counts everything it ever trains (the optimizer keeps the state of
    tensors frozen again later)."""
    plans = [(name, resolve_plan(name, spec, layout)) for name, spec in arms]
    placement = {name: devices[i % len(devices)] for i, (name, _) in enumerate(plans)}
    memory = {
        name: plan_memory(layout, plan, batch=batch, block=block, dtype=dtype, checkpointed=checkpointed)
        for name, plan in plans
    }
    hints = ("use --dtype bf16 (activations halve), " if dtype == "fp32" else "") + HINTS
    return PlannedRun(model_name, arch, layout, plans, list(devices), placement, memory, budgets, limited, hints)
