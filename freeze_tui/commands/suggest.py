"""`freeze-tui suggest`: rank the model's block matrices by how far a short full-training probe moves
them, and print a freeze spec that trains the top of the ranking within a parameter budget."""

from __future__ import annotations

import click

from engine.errors import FreezeTuiError
from freeze_tui.run_options import config_from, config_options

DEFAULT_PROBE_STEPS = 8
SHOWN = 12  # ranking lines printed; the rest are summarised


@click.command()
@config_options(["model", "data", "block_size", "batch_size", "lr", "seed", "device", "trust_remote_code"])
@click.option("--budget", type=float, required=True, help="Share of the parameters to train, e.g. 0.1 for 10 %.")
@click.option(
    "--max-steps", "probe_steps", type=int, default=DEFAULT_PROBE_STEPS, show_default=True, help="Probe steps."
)
def suggest(budget: float, probe_steps: int, **opts) -> int:
    """Suggest a freeze plan from the model itself: train everything for a few steps, rank each block's
    matrices by relative update ||W_n - W_0|| / ||W_0||, train the top within --budget.
    The last line is the spec (pass it to `plan` or `run --arm suggested=SPEC`)."""
    if not 0 < budget <= 1:
        raise FreezeTuiError(f"--budget must be a share in (0, 1], got {budget}; e.g. --budget 0.1 for 10 %")
    if probe_steps < 1:
        raise FreezeTuiError(f"--max-steps must be at least 1, got {probe_steps}")
    cfg = config_from({**opts, "samples": 0})
    from engine.train.probe import suggest_for_config

    ranked, chosen, spec, plan, layout = suggest_for_config(cfg, budget, probe_steps)
    if plan is None:
        raise FreezeTuiError(
            f"no block matrix fits in --budget {budget}; the smallest has {min(u.numel for u in ranked):,} parameters"
        )
    picked = {u.label for u in chosen}
    click.echo(f"probe: {probe_steps} steps of full training; rank by relative update ||W_n - W_0|| / ||W_0||")
    for i, unit in enumerate(ranked[:SHOWN], 1):
        mark = "*" if unit.label in picked else " "
        click.echo(f"{mark} {i:3d}  {unit.label:<14} {unit.score:.4g}  {unit.numel:>12,} params")
    if len(ranked) > SHOWN:
        click.echo(f"  ... {len(ranked) - SHOWN} more; * = trained ({len(chosen)} units)")
    from engine.plans.flops import predicted_saving

    r_pred = predicted_saving(layout, plan.initial, seq_len=cfg.block_size)
    click.echo(
        f"trains {plan.n_trainable:,} of {plan.n_total:,} parameters ({plan.pct:.2f} %, budget {100 * budget:g} %); "
        f"FLOP model r {100 * r_pred:.1f} % at block {cfg.block_size}"
    )
    click.echo(spec)
    return 0
