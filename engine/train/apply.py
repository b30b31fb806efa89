"""A spec of any arm kind (freeze, LoRA, ...) applied to a model the user trains themselves (torch, through the model).

``apply_spec(model, "targeted")`` sets ``requires_grad`` on the model's own parameters exactly as
an arm of ``freeze-tui run`` would start; an adapter spec (LoRA, ...) injects peft's adapters into
the model in place. Only the plan's step-0 set is applied: for ``@step``/``@epoch`` rules the caller applies
``plan.trainable_at(step, epoch)`` with ``engine.plans.freeze.apply_trainable`` when they fire.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.log.events import ArmRecord, measured_value
from engine.plans.describe import arm_record
from engine.plans.kinds import ArmPlan, resolve_plan
from engine.plans.roles import ModelLayout, build_layout

__all__ = ["AppliedPlan", "apply_spec"]


@dataclass(frozen=True)
class AppliedPlan:
    """What was applied: the plan, the model's layout (before any adapter) and the run_start arm
    record (an ArmRecord: counts, flop_ratio, r_pred, grid, ...) that a run log writes for it."""

    plan: ArmPlan
    layout: ModelLayout
    record: ArmRecord

    @property
    def n_trainable(self) -> int:
        return self.plan.n_trainable

    @property
    def n_total(self) -> int:
        return self.plan.n_total

    @property
    def pct(self) -> float:
        return self.plan.pct

    @property
    def flop_ratio(self) -> float:
        return _number(self.record.flop_ratio)

    @property
    def r_pred(self) -> float:
        return _number(self.record.r_pred)


def apply_spec(model, spec: str, *, arm: str = "arm", seed: int = 0, seq_len: int = 0) -> AppliedPlan:
    """Apply ``spec`` to ``model`` (in place) and return the plan. SpecError (a FreezeTuiError)
    says what does not fit this model. ``seed`` draws a LoRA spec's A matrices (B starts at 0);
    ``seq_len`` (your block size) adds attention scores to the FLOP model, as a run does."""
    layout = build_layout(model)
    plan = resolve_plan(arm, spec, layout)
    from engine.train.kinds import torch_kind

    torch_kind(plan).inject(model, plan, layout, seed=seed)
    return AppliedPlan(plan, layout, arm_record(plan, layout, seq_len=seq_len))


def _number(value) -> float:
    """A number of the record (nan where it has none)."""
    value = measured_value(value)
    return float("nan") if value is None else float(value)
