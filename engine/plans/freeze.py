"""Resolve a freeze spec against a model layout into a Plan: which parameters train when.

Semantics (README.md, "Freeze specs"): the first rule sets the start (``+`` from all
frozen, ``-`` from all trainable); rules apply left to right; a rule with ``@step N``
/ ``@epoch N`` applies once the trainer's 0-based counter reaches N (gradual
unfreezing). A tied embed/head parameter is tracked as two "units" (its embed side
and its head side) so that a plan training one side and freezing the other is caught
instead of silently doing one of the two. Pure: no torch except ``apply_trainable``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

from engine.core.errors import SpecError
from engine.plans.flops import flop_ratio
from engine.plans.match import Unit, match_rule, matches_role
from engine.plans.memory import PlanMemory, arm_memory
from engine.plans.roles import ModelLayout, ParamInfo
from engine.plans.spec import Rule, Schedule, Spec, grid_targets, parse_spec

__all__ = ["ScheduledChange", "Plan", "FreezeKind", "FREEZE", "resolve_plan", "apply_trainable", "matches_role"]


@dataclass(frozen=True)
class ScheduledChange:
    """A delayed rule; ``trainable`` is the whole trainable set once it (and the
    delayed rules written before it) have fired."""

    schedule: Schedule
    rule: str
    sign: str
    touched: frozenset[str]
    trainable: frozenset[str]

    @property
    def at(self) -> str:
        return self.schedule.at

    @property
    def n(self) -> int:
        return self.schedule.n


@dataclass(frozen=True)
class Plan:
    """What an arm trains: ``base`` (the rules without a schedule), then the scheduled ``changes``.

    ``Schedule.reached`` is the one rule of when a change applies: the plan at a step, the plan
    ``run_start`` and ``freeze-tui plan`` report (step 0, so ``@step 0`` counts from the start) and
    the changes the training loop applies all derive from it. ``initial``, ``n_trainable`` and
    ``n_total`` describe step 0.
    """

    kind: ClassVar[str] = "freeze"
    arm: str
    spec: str
    base: frozenset[str]
    changes: tuple[ScheduledChange, ...]
    n_total: int
    n_trainable: int = 0  # set from ``initial`` by resolve_plan

    def trainable_at(self, step: int, epoch: int = 0) -> frozenset[str]:
        """The trainable set at a (0-based) step and epoch: the base plus the changes reached by then."""
        names = set(self.base)
        for change in self.changes:
            if change.schedule.reached(step, epoch):
                names = names | change.touched if change.sign == "+" else names - change.touched
        return frozenset(names)

    @cached_property
    def initial(self) -> frozenset[str]:
        """What trains at step 0 (``@step 0`` and ``@epoch 0`` rules included)."""
        return self.trainable_at(0, 0)

    def fired(self, before: tuple[int, int] | None, now: tuple[int, int]) -> list[ScheduledChange]:
        """The changes reached at (step, epoch) ``now`` but not at ``before`` (None: the start, where
        ``initial`` already holds everything reached at step 0)."""
        if before is None:
            return []
        return [c for c in self.changes if c.schedule.reached(*now) and not c.schedule.reached(*before)]

    @property
    def pct(self) -> float:
        return 100.0 * self.n_trainable / self.n_total if self.n_total else 0.0

    @property
    def ever_trainable(self) -> frozenset[str]:
        """Everything trainable at some point (for "later" cells of the plan grid)."""
        return self.initial.union(*(c.trainable for c in self.changes if c.n > 0))

    # -- the arm-kind seam (engine.plans.kinds.ArmPlan) --------------------------------------------
    def flop_ratio(self, layout: ModelLayout, *, seq_len: int) -> float:
        """The FLOP model's cost of a step at step 0, relative to training everything."""
        return flop_ratio(layout, self.initial, seq_len=seq_len)

    def memory(
        self, layout: ModelLayout, *, batch: int, block: int, dtype: str, checkpointed: bool = False
    ) -> PlanMemory:
        """Memory of the arm for everything it ever trains (its grads and moments stay once made)."""
        return arm_memory(layout, self.ever_trainable, batch=batch, block=block, dtype=dtype, checkpointed=checkpointed)

    def grid_marks(self) -> dict[str, str]:
        """Base weights whose plan-grid cell is not train/frozen/partial/later: none for a freeze plan."""
        return {}

    def record(self) -> dict:
        """The kind's own fields of run_start's ArmRecord: none for a freeze plan."""
        return {}


def resolve_plan(arm: str, spec_text: str, layout: ModelLayout) -> Plan:
    """Resolve a freeze spec for arm ``arm``; SpecError names the failing rule. Specs of every kind
    (LoRA, DoRA, ...) resolve with ``engine.plans.kinds.resolve_plan``."""
    spec = parse_spec(spec_text)
    if spec.adapter is not None:
        raise SpecError(
            f"bad spec {spec_text!r} for arm {arm!r}: a {spec.adapter.kind} spec is not a freeze spec "
            "(resolve it with engine.plans.kinds.resolve_plan)"
        )
    return FREEZE.resolve(arm, spec, layout)


def _resolve(arm: str, spec: Spec, layout: ModelLayout) -> Plan:
    spec_text = spec.text
    rules = spec.expand(layout.n_blocks)
    matched = [(rule, match_rule(rule, layout, spec_text, arm)) for rule in rules]
    state = dict.fromkeys(_units(layout), rules[0].sign == "-")
    last: dict[str, Rule] = {}
    for rule, units in matched:
        if rule.schedule is None:
            _apply(state, units, rule, last)
    base = _trainable(state, layout, spec_text, arm, last)
    changes = tuple(
        _change(state, rule, units, layout, spec_text, arm, last)
        for rule, units in matched
        if rule.schedule is not None
    )
    plan = Plan(arm, spec_text, base, changes, layout.n_total)
    if not plan.ever_trainable:
        raise SpecError(
            f"bad spec {spec_text!r} for arm {arm!r}: it trains nothing, now or later "
            "(a plan needs at least one trainable parameter; start with + to pick what trains)"
        )
    return dataclasses.replace(plan, n_trainable=layout.numel(plan.initial))


def _units(layout: ModelLayout) -> list[Unit]:
    return [(p.name, role) for p in layout.params for role in sorted(p.roles)]


def _apply(state: dict[Unit, bool], units: list[Unit], rule: Rule, last: dict[str, Rule]) -> None:
    for unit in units:
        state[unit] = rule.trains
        last[unit[0]] = rule


def _change(state, rule: Rule, units: list[Unit], layout, spec_text: str, arm: str, last) -> ScheduledChange:
    _apply(state, units, rule, last)
    trainable = _trainable(state, layout, spec_text, arm, last)
    touched = frozenset(name for name, _ in units)
    assert rule.schedule is not None  # only scheduled rules become changes
    return ScheduledChange(rule.schedule, rule.text, rule.sign, touched, trainable)


def _trainable(state: dict[Unit, bool], layout: ModelLayout, spec_text: str, arm: str, last) -> frozenset[str]:
    """Names whose units are all trainable; a tied parameter split both ways is an error."""
    names = set()
    for p in layout.params:
        sides = {state[(p.name, role)] for role in p.roles}
        if len(sides) > 1:
            raise _tie_error(p, state, spec_text, arm, last[p.name])
        if sides == {True}:
            names.add(p.name)
    return frozenset(names)


def _tie_error(p: ParamInfo, state, spec_text: str, arm: str, rule: Rule) -> SpecError:
    on = [r for r in sorted(p.roles) if state[(p.name, r)]]
    off = [r for r in sorted(p.roles) if not state[(p.name, r)]]
    alias = p.aliases[0] if p.aliases else "the output layer"
    return SpecError(
        f"bad spec {spec_text!r} for arm {arm!r}: {rule.describe()} leaves {'/'.join(on)} trainable and "
        f"{'/'.join(off)} frozen, but in this model they are one tied tensor ({p.name} = {alias}); "
        f"train or freeze both, e.g. +embed,+head or -embed,-head"
    )


def apply_trainable(model, names) -> None:
    """Set requires_grad on every parameter of ``model``: True exactly for ``names``."""
    names = set(names)
    known = {n for n, _ in model.named_parameters()}
    if names - known:
        raise ValueError(f"unknown parameter names: {sorted(names - known)[:5]}")
    for name, param in model.named_parameters():
        param.requires_grad_(name in names)


class FreezeKind:
    """Freeze plans as an arm kind: base parameters train or stay frozen, on a schedule."""

    name = "freeze"

    def claims(self, spec: Spec) -> bool:
        return spec.adapter is None

    def resolve(self, arm: str, spec: Spec, layout: ModelLayout) -> Plan:
        return _resolve(arm, spec, layout)

    def spec_for(self, matrices: Iterable[tuple[int | None, str]], layout: ModelLayout, **_options: Any) -> str:
        """``+ROLE[blocks]`` rules training exactly the given (block, role) cells (block None: outside
        the blocks, e.g. (None, "embed"))."""
        return ",".join(f"+{target}" for target in grid_targets(matrices, layout.n_blocks))


FREEZE = FreezeKind()
