"""A freeze plan suggested from the model itself: a short probe run ranks each block's matrices by
how far they want to move (torch).

The probe trains everything for a few steps on the run's own data with the run's optimizer (AdamW)
and measures each unit's relative update ||W_n - W_0||_F / ||W_0||_F. Full training rather than
gradient statistics because Adam rescales gradients per weight: raw gradient norms mostly tell
matrix sizes and scales apart, while the relative update is what the arm would actually get.

Units are the block matrices a spec can name (attn.qkv or attn.q/k/v, attn.o, mlp per block).
Embeddings and the head are left out: they sit lowest (training them forces a full backward pass, so
freezing the rest saves nothing) and are a large share of a small model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.config import RunConfig
from engine.plans.freeze import resolve_plan
from engine.plans.roles import ModelLayout
from engine.train.arm import train_step
from engine.train.data import batch_order
from engine.train.measure import build_arm

UNIT_ROLES = ("attn.qkv", "attn.q", "attn.k", "attn.v", "attn.o", "mlp")


@dataclass(frozen=True)
class Unit:
    role: str
    block: int
    params: tuple[str, ...]
    numel: int
    score: float  # relative update over the probe

    @property
    def label(self) -> str:
        return f"{self.role}[{self.block}]"


def units(layout: ModelLayout) -> dict[tuple[str, int], list]:
    found: dict[tuple[str, int], list] = {}
    for p in layout.params:
        if p.block is not None and p.role in UNIT_ROLES:
            found.setdefault((p.role, p.block), []).append(p)
    return found


def probe(setup, steps: int) -> list[Unit]:
    """Train a copy of the model fully for `steps` steps; units ranked by relative update, largest first."""
    cfg: RunConfig = setup.cfg
    arm = build_arm(setup.model, "probe", resolve_plan("probe", "full", setup.layout), setup.device, cfg, setup.lr)
    model = arm.model
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    order = batch_order(len(setup.data.train), cfg.batch_size, cfg.seed, 0)
    for step in range(steps):
        batch = setup.data.train[order[step % len(order)]].to(arm.device)
        train_step(
            arm,
            batch,
            lr=setup.lr,
            rng_seed=cfg.seed * 1_000_003 + step + 1,
            grad_clip=cfg.grad_clip,
            autocast_dtype=None,
            measure=False,
        )
    now = dict(model.named_parameters())
    ranked = [_unit(role, block, params, start, now) for (role, block), params in units(setup.layout).items()]
    return sorted(ranked, key=lambda u: (-u.score, u.block, u.role))


def _unit(role: str, block: int, params: list, start: dict, now: dict) -> Unit:
    moved = sum(float((now[p.name].detach() - start[p.name]).float().pow(2).sum()) for p in params if len(p.shape) == 2)
    size = sum(float(start[p.name].float().pow(2).sum()) for p in params if len(p.shape) == 2)
    score = math.sqrt(moved / size) if size > 0 else 0.0
    return Unit(role, block, tuple(p.name for p in params), sum(p.numel for p in params), score)


def choose(ranked: list[Unit], budget: float, n_total: int) -> list[Unit]:
    """The top of the ranking, skipping any unit that would take the trained share past `budget`."""
    chosen, used = [], 0
    for unit in ranked:
        if used + unit.numel <= budget * n_total:
            chosen.append(unit)
            used += unit.numel
    return chosen


def spec_for(chosen: list[Unit]) -> str:
    """A freeze spec that trains exactly the chosen units: one +ROLE[blocks] rule per role."""
    by_role: dict[str, list[int]] = {}
    for unit in chosen:
        by_role.setdefault(unit.role, []).append(unit.block)
    return ",".join(f"+{role}[{','.join(str(b) for b in sorted(blocks))}]" for role, blocks in sorted(by_role.items()))


def suggest(setup, budget: float, steps: int) -> tuple[list[Unit], list[Unit], str, object]:
    """Ranking, chosen units, their spec and the plan it resolves to (checked against the layout)."""
    ranked = probe(setup, steps)
    chosen = choose(ranked, budget, setup.layout.n_total)
    spec = spec_for(chosen)
    plan = resolve_plan("suggested", spec, setup.layout) if spec else None
    return ranked, chosen, spec, plan


def suggest_for_config(cfg: RunConfig, budget: float, steps: int):
    """`freeze-tui suggest`'s one entry into the engine: load, probe, choose. Returns (ranking, chosen,
    spec, plan, layout); transformers' config chatter is silenced (it would land among the lines)."""
    from transformers.utils import logging as hf_logging

    from engine.train.setup import prepare

    hf_logging.set_verbosity_error()
    setup = prepare(cfg)
    return (*suggest(setup, budget, steps), setup.layout)
