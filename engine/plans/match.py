"""Which parameters a spec rule names: the one matcher of every arm kind. Pure: no torch.

A freeze rule and an adapter target are matched alike (roles, block lists, ``re:``), so a target
means the same parameters in every kind; errors name the rule and what the model has instead.
"""

from __future__ import annotations

import time

from engine.core.errors import SpecError
from engine.plans.roles import ATTN_ROLES, ModelLayout, ParamInfo
from engine.plans.spec import Rule

__all__ = ["Unit", "match_rule", "matches_role", "REGEX_BUDGET_S"]

Unit = tuple[str, str]  # (parameter name, role)


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


def match_rule(rule: Rule, layout: ModelLayout, spec_text: str, arm: str) -> list[Unit]:
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
