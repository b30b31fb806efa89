"""What every selector shares (pure, no torch): the candidate matrices, the greedy budget fill, the
stability of the chosen sets, and the forms the choice is printed in (spec, parameter names, peft).

A selector (engine.train.selectors) only scores the candidates; everything here is the same for
`rgn`, `snr`, `fisher` and `random`, so their outputs compare line by line.

Candidates ("units") are the block matrices a spec can name: attn.qkv (or attn.q/k/v), attn.o and
mlp per block. Embeddings and the head are left out: they sit lowest in the graph (training them
forces the full backward pass) and are a large share of a small model.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from engine.plans.flops import flop_ratio
from engine.plans.roles import ModelLayout

UNIT_ROLES = ("attn.qkv", "attn.q", "attn.k", "attn.v", "attn.o", "mlp")


@dataclass(frozen=True)
class Unit:
    """One candidate: a role in a block and the parameters (weights and biases) it names."""

    role: str
    block: int
    params: tuple[str, ...]
    numel: int

    @property
    def label(self) -> str:
        return f"{self.role}[{self.block}]"


@dataclass(frozen=True)
class Fill:
    """The greedy fill of a ranking: what it chose and, for each unit it passed over, why."""

    chosen: tuple[Unit, ...]
    skipped: tuple[tuple[Unit, str], ...]
    trainable: int  # parameters of the chosen units
    cost: float  # FLOP ratio of a step training exactly the chosen units (1.0 = full training)


@dataclass(frozen=True)
class Budget:
    """At least one of: share of the parameters (`params`), share of the full arm's step FLOPs (`time`)."""

    params: float | None = None
    time: float | None = None
    seq_len: int = 0  # the run's block size, for the attention part of the FLOP model

    def describe(self) -> str:
        parts = [f"{100 * self.params:g} % of parameters"] if self.params is not None else []
        if self.time is not None:
            parts.append(f"{100 * self.time:g} % of full training's FLOPs")
        return " and ".join(parts)


@dataclass
class Ranked:
    """A unit with its score (mean over probes) and the per-probe scores it came from."""

    unit: Unit
    score: float
    scores: list[float] = field(default_factory=list)


def candidate_units(layout: ModelLayout) -> list[Unit]:
    """The block matrices a spec can name, in layout order."""
    found: dict[tuple[str, int], list] = {}
    for p in layout.params:
        if p.block is not None and p.role in UNIT_ROLES:
            found.setdefault((p.role, p.block), []).append(p)
    return [
        Unit(role, block, tuple(p.name for p in ps), sum(p.numel for p in ps)) for (role, block), ps in found.items()
    ]


def rank(units: list[Unit], score_sets: list[dict[str, float]]) -> list[Ranked]:
    """Units by mean score over the probes (label -> score), largest first; ties by block, then role."""
    out = []
    for u in units:
        scores = [s[u.label] for s in score_sets]
        out.append(Ranked(u, sum(scores) / len(scores) if scores else 0.0, scores))
    return sorted(out, key=lambda r: (-r.score, r.unit.block, r.unit.role))


def fill_budget(ranked: list[Unit], layout: ModelLayout, budget: Budget) -> Fill:
    """Take the ranking in order; a unit joins when the chosen set still fits every budget with it,
    else it is skipped with the reason (the first budget it breaks and by how much)."""
    chosen: list[Unit] = []
    skipped: list[tuple[Unit, str]] = []
    names: set[str] = set()
    used = 0
    cost = 0.0
    n_total = layout.n_total
    for unit in ranked:
        share = (used + unit.numel) / n_total
        if budget.params is not None and share > budget.params:
            skipped.append((unit, f"params: {100 * share:.1f} % > {100 * budget.params:g} %"))
            continue
        trial = flop_ratio(layout, names | set(unit.params), seq_len=budget.seq_len)
        if budget.time is not None and trial > budget.time:
            low = min([u.block for u in chosen] + [unit.block])
            skipped.append((unit, f"time: {100 * trial:.1f} % > {100 * budget.time:g} % (backward to block {low})"))
            continue
        chosen.append(unit)
        names |= set(unit.params)
        used += unit.numel
        cost = trial
    return Fill(tuple(chosen), tuple(skipped), used, cost if chosen else flop_ratio(layout, (), seq_len=budget.seq_len))


def unit_cost(unit: Unit, layout: ModelLayout, seq_len: int) -> float:
    """FLOP ratio of a step that trains this unit alone: how far down backward must run for it."""
    return flop_ratio(layout, set(unit.params), seq_len=seq_len)


def jaccard_stability(sets: list[frozenset[str]]) -> float | None:
    """Mean pairwise Jaccard overlap |A & B| / |A | B| of the chosen sets; None with fewer than two."""
    pairs = list(itertools.combinations(sets, 2))
    if not pairs:
        return None
    return sum(len(a & b) / len(a | b) if a | b else 1.0 for a, b in pairs) / len(pairs)


def peft_modules(layout: ModelLayout, chosen) -> list[str]:
    """Names of the modules whose 2-D weights the chosen units hold (what LoRA attaches to)."""
    modules = []
    for unit in chosen:
        for name in unit.params:
            if len(layout.param(name).shape) == 2:
                modules.append(name.rsplit(".", 1)[0])
    return sorted(dict.fromkeys(modules))


def peft_regex(modules: list[str]) -> str:
    """A regex that peft's LoraConfig(target_modules=...) matches (re.fullmatch) against exactly these
    module names and no other."""
    return "(?:" + "|".join(re.escape(m) for m in modules) + ")"


@dataclass
class Selection:
    """One selector's answer: its ranking, the filled budget, the spec, and how stable the choice is."""

    method: str
    basis: str  # one line: what the score measures and over what
    budget: Budget
    ranking: list[Ranked]
    fill: Fill
    spec: str
    trainable_names: tuple[str, ...]  # what the spec trains, in layout order
    sets: list[frozenset[str]]  # the chosen labels of each probe (or seed) for the stability
    n_total: int
    fused_qkv: bool
    peft_modules: list[str] = field(default_factory=list)
    costs: dict[str, float] = field(default_factory=dict)  # label -> FLOP ratio of training it alone

    @property
    def stability(self) -> float | None:
        return jaccard_stability(self.sets)

    def to_json(self) -> dict:
        skipped = {u.label: why for u, why in self.fill.skipped}
        chosen = {u.label for u in self.fill.chosen}
        return {
            "method": self.method,
            "basis": self.basis,
            "budget": {"params": self.budget.params, "time": self.budget.time, "seq_len": self.budget.seq_len},
            "ranking": [
                {
                    "rank": i,
                    "matrix": r.unit.label,
                    "role": r.unit.role,
                    "block": r.unit.block,
                    "score": r.score,
                    "scores": r.scores,
                    "params": r.unit.numel,
                    "backward_to_block": r.unit.block,
                    "cost_alone": self.costs.get(r.unit.label),
                    "chosen": r.unit.label in chosen,
                    "skipped": skipped.get(r.unit.label),
                }
                for i, r in enumerate(self.ranking, 1)
            ],
            "spec": self.spec,
            "trainable": self.fill.trainable,
            "total": self.n_total,
            "flop_ratio": self.fill.cost,
            "stability": {"jaccard": self.stability, "sets": [sorted(s) for s in self.sets]},
            "names": list(self.trainable_names),
            "peft": {"target_modules": peft_regex(self.peft_modules), "modules": self.peft_modules},
        }
