"""`freeze-tui suggest --method rgn|snr|fisher|random`: rank the model's block matrices by one signal,
fill a parameter and/or FLOP budget from the top, and print the ranking and a spec (or the choice as
JSON, peft target modules, or parameter names)."""

from __future__ import annotations

import json

import click

from engine.core.errors import FreezeTuiError
from engine.plans.select import Budget, Selection
from freeze_tui.cli.run_options import config_from, config_options

DEFAULT_PROBE_STEPS = 8
SHOWN = 24  # ranking lines printed; the rest are summarised (--format json has them all)
METHODS = ("rgn", "snr", "fisher", "random")
FORMATS = ("text", "json", "peft", "names")
FUSED_NOTE = (
    "note: this model fuses q, k and v in one matrix: peft puts one adapter on the whole fused matrix "
    "and cannot target q, k or v alone"
)


@click.command()
@config_options(["model", "data", "block_size", "batch_size", "lr", "seed", "device", "trust_remote_code"])
@click.option("--method", type=click.Choice(METHODS), default="rgn", show_default=True, help="What ranks the matrices.")
@click.option("--budget", type=float, default=None, help="Share of the parameters to train, e.g. 0.1 for 10 %.")
@click.option(
    "--time-budget", type=float, default=None, help="Share of full training's step FLOPs the plan may spend, e.g. 0.8."
)
@click.option(
    "--probe-seeds",
    type=int,
    default=3,
    show_default=True,
    help="Probes (rgn, fisher) or seeds (random).",
)
@click.option(
    "--max-steps", "probe_steps", type=int, default=DEFAULT_PROBE_STEPS, show_default=True, help="rgn: probe steps."
)
@click.option("--probe-batches", type=int, default=8, show_default=True, help="fisher: batches per probe.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True, help="Output form.")
def suggest(
    method: str,
    budget: float | None,
    time_budget: float | None,
    probe_seeds: int,
    probe_steps: int,
    probe_batches: int,
    fmt: str,
    **opts,
) -> int:
    """Suggest which block matrices to train: rank them by --method (rgn: relative update of a short
    full-training probe; snr: singular values vs the Marchenko-Pastur edge, data-free; fisher: squared
    gradients on your data; random: the control), then train the top within --budget and/or
    --time-budget. The last line is the spec (pass it to `plan` or `run --arm suggested=SPEC`)."""
    if budget is None and time_budget is None:
        raise FreezeTuiError("suggest needs --budget F (share of parameters) or --time-budget F (share of FLOPs)")
    for flag, value in (("--budget", budget), ("--time-budget", time_budget)):
        if value is not None and not 0 < value <= 1:
            raise FreezeTuiError(f"{flag} must be a share in (0, 1], got {value}; e.g. {flag} 0.1 for 10 %")
    for flag, value in (
        ("--probe-seeds", probe_seeds),
        ("--max-steps", probe_steps),
        ("--probe-batches", probe_batches),
    ):
        if value < 1:
            raise FreezeTuiError(f"{flag} must be at least 1, got {value}")
    cfg = config_from({**opts, "samples": 0})
    from freeze_tui.cli.engine_door import select

    plan_budget = Budget(budget, time_budget, cfg.block_size)
    sel = select(
        cfg, method, plan_budget, probe_seeds=probe_seeds, probe_steps=probe_steps, probe_batches=probe_batches
    )
    if not sel.spec:
        raise FreezeTuiError(_nothing_fits(sel))
    if fmt == "json":
        click.echo(json.dumps(sel.to_json(), indent=2))
    elif fmt == "names":
        click.echo("\n".join(sel.trainable_names))
    elif fmt == "peft":
        if sel.fused_qkv:
            click.echo(FUSED_NOTE, err=True)
        click.echo(json.dumps({"target_modules": sel.to_json()["peft"]["target_modules"]}))
    else:
        for line in text_lines(sel, probe_seeds):
            click.echo(line)
    return 0


def _nothing_fits(sel: Selection) -> str:
    smallest = min(sel.ranking, key=lambda r: r.unit.numel).unit
    cheapest = min(sel.costs.values())
    return (
        f"no block matrix fits in {sel.budget.describe()}: the smallest ({smallest.label}) has "
        f"{smallest.numel:,} parameters ({100 * smallest.numel / sel.n_total:.2f} %), the cheapest costs "
        f"{100 * cheapest:.1f} % of full training's FLOPs; raise the budget"
    )


def text_lines(sel: Selection, probe_seeds: int) -> list[str]:
    """The ranking (score, parameters, how far down backward runs and what training it alone costs),
    what the fill skipped and why, the stability, and the spec as the last line."""
    chosen = {u.label for u in sel.fill.chosen}
    skipped = {u.label: why for u, why in sel.fill.skipped}
    lines = [f"method {sel.method}: {sel.basis}; budget {sel.budget.describe()}"]
    lines.append(f"  {'rank':>4}  {'matrix':<14} {'score':>10} {'params':>12}  backward to  cost alone")
    for i, r in enumerate(sel.ranking[:SHOWN], 1):
        label = r.unit.label
        mark = "*" if label in chosen else " "
        tail = f"  skipped: {skipped[label]}" if label in skipped and _before_last_chosen(sel, i) else ""
        lines.append(
            f"{mark} {i:4d}  {label:<14} {r.score:10.4g} {r.unit.numel:12,}  block {r.unit.block:<5}"
            f"  {100 * sel.costs[label]:5.1f} %{tail}"
        )
    if len(sel.ranking) > SHOWN:
        lines.append(f"  ... {len(sel.ranking) - SHOWN} more (--format json lists all)")
    passed = [(u, why) for u, why in sel.fill.skipped if _rank_of(sel, u.label) <= _last_chosen_rank(sel)]
    if passed:
        lines.append(
            f"skipped above the last chosen: {len(passed)} ("
            + "; ".join(f"{u.label} {why}" for u, why in passed[:4])
            + (" ..." if len(passed) > 4 else "")
            + ")"
        )
    lines.append(_stability_line(sel, probe_seeds))
    pct = 100 * sel.fill.trainable / sel.n_total
    lines.append(
        f"* = trained: {len(sel.fill.chosen)} matrices, {sel.fill.trainable:,} of {sel.n_total:,} parameters "
        f"({pct:.2f} %); FLOP model: {100 * sel.fill.cost:.1f} % of full training's step "
        f"(r {100 * (1 - sel.fill.cost):.1f} %) at block {sel.budget.seq_len}"
    )
    if sel.fused_qkv:
        lines.append(FUSED_NOTE.replace("note: ", "note (--format peft): "))
    lines.append(sel.spec)
    return lines


def _stability_line(sel: Selection, probe_seeds: int) -> str:
    what = "seeds" if sel.method == "random" else "probes"
    if sel.stability is None:
        if sel.method == "snr":
            return "stability: 1 (snr is deterministic: no probes, no data)"
        return f"stability: n/a (one {what[:-1]}; pass --probe-seeds 2 or more)"
    return (
        f"stability: mean pairwise Jaccard overlap of the chosen sets over {len(sel.sets)} {what}: {sel.stability:.2f}"
    )


def _rank_of(sel: Selection, label: str) -> int:
    return next(i for i, r in enumerate(sel.ranking, 1) if r.unit.label == label)


def _last_chosen_rank(sel: Selection) -> int:
    chosen = {u.label for u in sel.fill.chosen}
    return max((i for i, r in enumerate(sel.ranking, 1) if r.unit.label in chosen), default=0)


def _before_last_chosen(sel: Selection, rank: int) -> bool:
    return rank <= _last_chosen_rank(sel)
