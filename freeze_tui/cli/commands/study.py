"""`freeze-tui study`: one paired run of `full`, one arm per selector and K random controls of the same
budget, through the `run` path (live app, --headless, --detach, --seeds, devices, torchrun). The arm
roles go into run_start (`--arm-roles`), so run_end's summary says whether each method beats random."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import msgspec

from engine.core.errors import FreezeTuiError
from engine.log.events import RunEnd, StudyResult
from engine.plans.select import Budget
from engine.run.emitter import run_time
from freeze_tui.cli.distributed_run import launch_options
from freeze_tui.cli.run_options import FIELDS, config_from, config_options
from freeze_tui.draw.frontier_report import study_lines

STUDY_FIELDS = [name for name in FIELDS if name not in ("arms", "arm_roles")]
SELECTORS = ("rgn", "snr", "fisher")


@click.command()
@config_options(STUDY_FIELDS)
@click.option("--budget", type=float, default=None, help="Share of the parameters each selected arm trains.")
@click.option("--time-budget", type=float, default=None, help="Share of full training's step FLOPs per arm.")
@click.option(
    "--methods", default="rgn,snr,fisher", show_default=True, help="Selectors, comma separated: rgn, snr, fisher."
)
@click.option(
    "--lora", "lora_rank", type=int, default=0, help="Also a rank-R LoRA arm on the first method's matrices (0 = none)."
)
@click.option("--random", "n_random", type=int, default=3, show_default=True, help="Random control arms (K).")
@click.option("--probe-seeds", type=int, default=1, show_default=True, help="rgn/fisher: probes averaged.")
@click.option("--probe-steps", type=int, default=8, show_default=True, help="rgn: steps of each probe.")
@click.option("--probe-batches", type=int, default=8, show_default=True, help="fisher: batches of each probe.")
@click.option("--headless", is_flag=True, help="No app: print progress and the summary table.")
@click.option("--detach", is_flag=True, help="Train in a background process (survives SSH loss) and watch it.")
@click.option("--screenshot-dir", default=None, type=click.Path(file_okay=False), help="Where ctrl+s saves.")
@launch_options
@click.pass_context
def study(
    ctx: click.Context,
    budget: float | None,
    time_budget: float | None,
    methods: str,
    lora_rank: int,
    n_random: int,
    probe_seeds: int,
    probe_steps: int,
    probe_batches: int,
    **opts,
) -> int:
    """Which selector earns trust? Builds arms full, one per --methods selector and random-1..K at the
    same budget, shows the plan, and runs them as one paired run (every `run` option works). The
    summary says per method: r, validation-loss gap to full, and whether it beats the random arms."""
    chosen = _methods(methods)
    if budget is None and time_budget is None:
        raise FreezeTuiError("study needs --budget F (share of parameters) or --time-budget F (share of FLOPs)")
    for flag, value in (("--budget", budget), ("--time-budget", time_budget)):
        if value is not None and not 0 < value <= 1:
            raise FreezeTuiError(f"{flag} must be a share in (0, 1], got {value}; e.g. {flag} 0.1 for 10 %")
    counts = (("--random", n_random), ("--probe-seeds", probe_seeds), ("--probe-steps", probe_steps))
    for flag, value in (*counts, ("--probe-batches", probe_batches)):
        if value < 1:
            raise FreezeTuiError(f"{flag} must be at least 1, got {value}")
    if lora_rank < 0:
        raise FreezeTuiError(f"--lora must be a rank of at least 1 (or 0 for no LoRA arm), got {lora_rank}")
    base = config_from({k: opts[k] for k in STUDY_FIELDS if k in opts} | {"samples": 0})
    arms, roles, matrices = study_arms(
        base, chosen, n_random, Budget(budget, time_budget, base.block_size), probe_seeds, probe_steps, probe_batches
    )
    if lora_rank:
        arms.append(lora_arm(base, chosen[0], matrices[chosen[0]], lora_rank))
    shares = Budget(budget, time_budget).describe()
    click.echo(f"study: {len(chosen)} selector arm(s) and {n_random} random control(s) at {shares}")
    _preview(base, arms, roles)
    root = ctx.find_root()
    group = root.command
    assert isinstance(group, click.Group)
    run = group.get_command(root, "run")  # the run command itself (no import: cli registers us)
    assert run is not None
    if not opts.get("log"):  # the study names the log itself, to read its verdicts back at the end
        opts["log"] = str(base.default_log_path(run_time()))
    run_opts = {
        **opts,
        "arms": tuple(f"{n}={s}" for n, s in arms),
        "arm_roles": ",".join(f"{n}={r}" for n, r in roles.items()),
    }
    code = ctx.invoke(run, **run_opts)
    for line in verdict_lines(Path(opts["log"])):
        click.echo(line)
    return code


def verdict_lines(log: Path) -> list[str]:
    """The study's answer from the log's run_end, one line per method; [] while the run has not ended
    (--detach) or when it ended without one."""
    from engine.log.runlog import read_events

    try:
        end = next((e for e in read_events(log) if isinstance(e, RunEnd)), None)
    except (OSError, FreezeTuiError):
        return []
    study = (getattr(end, "summary", None) or {}).get("study") if end is not None else None
    if not study:
        return []
    try:
        return study_lines(msgspec.convert(study, StudyResult))
    except msgspec.ValidationError:  # a log's summary is read, not trusted: no verdicts rather than a traceback
        return []


def _methods(text: str) -> list[str]:
    chosen = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in chosen if m not in SELECTORS]
    if bad or not chosen:
        raise FreezeTuiError(f"--methods {text!r}: give one or more of {', '.join(SELECTORS)}, comma separated")
    return list(dict.fromkeys(chosen))


def study_arms(
    cfg, methods: list[str], n_random: int, budget: Budget, probe_seeds: int, probe_steps: int, probe_batches: int
) -> tuple[list[tuple[str, str]], dict[str, str], dict[str, list[tuple[int | None, str]]]]:
    """(arms as (name, spec), {arm: role}, {arm: its chosen (block, role) matrices}): full, one arm per
    method, random-1..K with seeds s..s+K-1."""
    from freeze_tui.cli.engine_door import select

    arms = [("full", "full")]
    roles = {"full": "full"}
    matrices: dict[str, list[tuple[int | None, str]]] = {}
    picks = [(m, m, cfg) for m in methods]
    picks += [
        (f"random-{k}", "random", dataclasses.replace(cfg, seed=cfg.seed + k - 1)) for k in range(1, n_random + 1)
    ]
    for name, method, run_cfg in picks:
        sel = select(
            run_cfg, method, budget, probe_seeds=probe_seeds, probe_steps=probe_steps, probe_batches=probe_batches
        )
        if not sel.spec:
            raise FreezeTuiError(f"{name}: no block matrix fits in {budget.describe()}; raise the budget")
        arms.append((name, sel.spec))
        roles[name] = "random" if method == "random" else "method"
        matrices[name] = [(unit.block, unit.role) for unit in sel.fill.chosen]
    return arms, roles, matrices


def lora_arm(cfg, method: str, matrices: list[tuple[int | None, str]], rank: int) -> tuple[str, str]:
    """A LoRA arm on exactly the matrices `method` chose (`lora:R:attn.o[0,3],mlp[1]`), written by the
    arm-kind seam; it has no study role (it is no selector), the summary lists it."""
    from engine.plans.kinds import spec_for_matrices
    from freeze_tui.cli.engine_door import planned_run

    layout = planned_run(cfg).layout  # the model's layout on the meta device (no weights)
    return f"lora-{method}", spec_for_matrices("lora", matrices, layout, rank=rank)


def _preview(cfg, arms: list[tuple[str, str]], roles: dict[str, str]) -> None:
    """The plan of every arm before anything trains: role, trained share, FLOP cost, memory, spec."""
    from engine.plans.describe import describe_layout
    from freeze_tui.cli.engine_door import add_memory_plan, planned_run

    study_cfg = dataclasses.replace(cfg, arms=tuple(arms))
    planned = planned_run(study_cfg)  # the layout is read once (meta device)
    desc = describe_layout(planned.model_name, planned.arch, planned.layout, study_cfg.arms, block_size=cfg.block_size)
    desc = add_memory_plan(desc, study_cfg, planned)
    click.echo(f"  {'arm':<10} {'role':<7} {'trains':>8} {'FLOPs':>7} {'r_pred':>7} {'memory':>9}  spec")
    for arm in desc.arms:
        mem_text = f"{arm.memory.total / 2**20:7.1f} MB" if arm.memory else "        –"
        role = roles.get(arm.name, "lora")
        click.echo(
            f"  {arm.name:<10} {role:<7} {arm.pct:7.2f}% {100 * arm.flop_ratio:6.1f}% "
            f"{100 * arm.r_pred:6.1f}% {mem_text}  {arm.spec}"
        )
