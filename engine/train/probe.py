"""`freeze-tui suggest`'s engine side (torch): the `rgn` probe, and the one entry that runs any
selector, fills the budget and measures the choice's stability.

The `rgn` probe trains everything for a few steps on the run's own data with the run's optimizer
(AdamW) and measures each unit's relative update ||W_n - W_0||_F / ||W_0||_F. Full training rather
than gradient statistics because Adam rescales gradients per weight: raw gradient norms mostly tell
matrix sizes and scales apart, while the relative update is what the arm would actually get. (Issue
17 found it correlates 0.73-0.91 with 1/RMS of the weights; the other selectors are there to test it.)
"""

from __future__ import annotations

from engine.core.errors import FreezeTuiError
from engine.plans.freeze import resolve_plan
from engine.plans.kinds import spec_for_matrices
from engine.plans.select import (
    Budget,
    Selection,
    Unit,
    candidate_units,
    fill_budget,
    peft_modules,
    rank,
    unit_cost,
)
from engine.run.config import RunConfig


def select(
    cfg: RunConfig, method: str, budget: Budget, *, probe_seeds: int, probe_steps: int, probe_batches: int
) -> Selection:
    """`freeze-tui suggest`'s one entry into the engine: score with `method` over `probe_seeds` probes
    (seeds cfg.seed, cfg.seed + 1, ...), rank, fill the budget, and check the spec against the layout.
    snr and random load no data and no tokenizer; snr reads the weights tensor by tensor."""
    from transformers.utils import logging as hf_logging

    from engine.train import selectors as sel

    hf_logging.set_verbosity_error()
    selector: sel.Selector
    if method in ("snr", "random"):
        from engine.train.models import load_layout

        layout = load_layout(cfg.model, trust_remote_code=cfg.trust_remote_code)[2]
        units = candidate_units(layout)
        if method == "snr":
            files = sel.safetensors_files(cfg.model, cfg.trust_remote_code)
            selector = sel.SnrSelector(files, layout, units)
        else:
            selector = sel.RandomSelector(units, cfg.seed)
    else:
        from engine.train.setup import prepare

        setup = prepare(cfg, memory_check=False)
        layout = setup.layout
        units = candidate_units(layout)
        if method == "rgn":
            selector = sel.RgnSelector(setup, probe_steps, units)
        else:
            selector = sel.FisherSelector(setup, probe_batches, units)
    if not units:
        raise FreezeTuiError(f"model {cfg.model or 'demo'!r}: no block matrices found to rank (unknown layout)")
    probes = 1 if selector.deterministic else probe_seeds
    score_sets = [selector.scores(k) for k in range(probes)]
    ranking = rank(units, score_sets if selector.averaged else score_sets[:1])
    fill = fill_budget([r.unit for r in ranking], layout, budget)
    sets = [_chosen_labels(units, s, layout, budget) for s in score_sets]
    matrices = [(unit.block, unit.role) for unit in fill.chosen]
    spec = spec_for_matrices("freeze", matrices, layout) if matrices else ""  # through the arm-kind seam
    names: tuple[str, ...] = ()
    if spec:
        plan = resolve_plan("suggested", spec, layout)
        names = tuple(n for n in layout.names if n in plan.initial)
    return Selection(
        method=method,
        basis=selector.basis,
        budget=budget,
        ranking=ranking,
        fill=fill,
        spec=spec,
        trainable_names=names,
        sets=sets if probes > 1 else [],
        n_total=layout.n_total,
        fused_qkv=layout.fused_qkv,
        peft_modules=peft_modules(layout, fill.chosen),
        costs={u.label: unit_cost(u, layout, budget.seq_len) for u in units},
    )


def _chosen_labels(units: list[Unit], scores: dict[str, float], layout, budget: Budget) -> frozenset[str]:
    """What one probe (or seed) alone would choose: its own ranking filled to the same budget."""
    return frozenset(u.label for u in fill_budget([r.unit for r in rank(units, [scores])], layout, budget).chosen)
