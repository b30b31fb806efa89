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
import time
from dataclasses import dataclass
from functools import cached_property

from engine.errors import SpecError
from engine.plans.roles import ATTN_ROLES, ModelLayout, ParamInfo
from engine.plans.spec import Rule, Schedule, parse_spec

__all__ = ["ScheduledChange", "Plan", "resolve_plan", "apply_trainable", "matches_role"]

Unit = tuple[str, str]  # (parameter name, role)


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


def resolve_plan(arm: str, spec_text: str, layout: ModelLayout) -> Plan:
    """Resolve ``spec_text`` for arm ``arm``; SpecError names the failing rule. A LoRA spec
    resolves to an ``engine.plans.lora.LoraPlan``."""
    spec = parse_spec(spec_text)
    if spec.lora is not None:
        from engine.plans.lora import resolve_lora_plan  # it builds on this module

        return resolve_lora_plan(arm, spec, layout)
    rules = spec.expand(layout.n_blocks)
    matched = [(rule, _match(rule, layout, spec_text, arm)) for rule in rules]
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


REGEX_BUDGET_S = 2.0  # for all of a rule's names; a sane pattern needs microseconds per name


def _regex_hits(rule: Rule, layout: ModelLayout, fail) -> list[ParamInfo]:
    """Parameters whose name (or alias) the rule's regex finds. Matched with the `regex` module, which
    releases the GIL (signals reach the main thread meanwhile) and stops at a time budget: a pattern
    that backtracks catastrophically, e.g. (.*.*)*X, is refused instead of hanging the run for hours."""
    import regex

    pattern = regex.compile(rule.regex, flags=regex.VERSION0)
    deadline = time.monotonic() + REGEX_BUDGET_S
    hits = []
    try:
        for p in layout.params:
            names = (p.name, *p.aliases)
            if any(pattern.search(n, timeout=max(1e-3, deadline - time.monotonic()), concurrent=True) for n in names):
                hits.append(p)
    except TimeoutError:
        fail(
            f"the regex takes longer than {REGEX_BUDGET_S:g} s to match {len(layout.params)} parameter names "
            "(it backtracks catastrophically, e.g. nested repeats like (.*)*); simplify it"
        )
    return hits


def _match(rule: Rule, layout: ModelLayout, spec_text: str, arm: str) -> list[Unit]:
    """The units a rule touches; a rule that touches nothing is an error."""
    fail = _failer(rule, spec_text, arm)
    if rule.regex is not None:
        hits = _regex_hits(rule, layout, fail)
        return [(p.name, r) for p in hits for r in sorted(p.roles)] or fail(
            f"the regex matches no parameter name (names look like {layout.params[len(layout.params) // 2].name})"
        )
    if layout.problem:
        fail(layout.problem)
    blocks = _blocks(rule, layout, fail)
    units = [
        (p.name, r)
        for p in layout.params
        for r in sorted(p.roles)
        if matches_role(rule.role or "", r, p) and (blocks is None or p.block in blocks)
    ]
    return units or fail(_nothing_message(rule, layout))


def _failer(rule: Rule, spec_text: str, arm: str):
    def fail(what: str):
        raise SpecError(f"bad spec {spec_text!r} for arm {arm!r}: {rule.describe()}: {what}")

    return fail


def _blocks(rule: Rule, layout: ModelLayout, fail) -> frozenset[int] | None:
    if rule.blocks is None:
        return None
    if rule.role in ("embed", "pos", "head", "final_norm"):
        fail(f"{rule.role} is not inside the blocks; drop the [{rule.blocks.text}]")
    n = layout.n_blocks
    if rule.blocks.out_of_range(n):
        fail(f"block index out of range: the model has {n} blocks: 0..{n - 1}")
    return frozenset(rule.blocks.select(n))


def matches_role(wanted: str, role: str, p: ParamInfo) -> bool:
    """Whether a spec role covers a parameter's role (attn.qkv covers q, k and v too)."""
    if wanted == "all":
        return True
    if wanted == "block":
        return p.block is not None
    if wanted == "attn":
        return role == "attn" or role in ATTN_ROLES
    if wanted == "attn.qkv":
        return role in ("attn.qkv", "attn.q", "attn.k", "attn.v")
    return role == wanted


def _nothing_message(rule: Rule, layout: ModelLayout) -> str:
    if rule.role in ("attn.q", "attn.k", "attn.v") and layout.fused_qkv:
        fused = next(p.name for p in layout.params if "attn.qkv" in p.roles)
        return (
            f"in this model q, k and v are one fused tensor ({fused}), so {rule.role} alone "
            "cannot be frozen or trained; use attn.qkv"
        )
    where = f" in blocks [{rule.blocks.text}]" if rule.blocks else ""
    return f"matches no parameter: this model has no {rule.role} parameters{where}"


def apply_trainable(model, names) -> None:
    """Set requires_grad on every parameter of ``model``: True exactly for ``names``."""
    names = set(names)
    known = {n for n, _ in model.named_parameters()}
    if names - known:
        raise ValueError(f"unknown parameter names: {sorted(names - known)[:5]}")
    for name, param in model.named_parameters():
        param.requires_grad_(name in names)
