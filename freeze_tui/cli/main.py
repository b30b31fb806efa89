"""The command line: run (live app or --headless), replay, watch, report, plan.

Only click and the torch-free parts of the engine are imported at start-up, so `--help`,
`replay`, `watch` and `report` never load torch; `run` loads it in the engine thread.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import click

from engine.core.errors import FreezeTuiError
from engine.dist.world import check_one_process, env_world_size, quiet_rank, under_torchrun
from engine.run.config import RunConfig
from engine.run.emitter import run_time
from freeze_tui.cli import exit_codes
from freeze_tui.cli.commands.export import export
from freeze_tui.cli.commands.serve import serve
from freeze_tui.cli.commands.study import study
from freeze_tui.cli.commands.suggest import suggest
from freeze_tui.cli.distributed_run import launch_options, pop_launch, run_distributed
from freeze_tui.cli.interrupts import (
    Guarded,
    Interrupts,
    exit_now,
    flush_std,
    ignore_file_size_signal,
    lost_output,
    run_app,
)
from freeze_tui.cli.run_options import config_from, config_options
from freeze_tui.version import __version__

PRODUCER = f"freeze-tui {__version__}"


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="freeze-tui")
@click.pass_context
def cli(ctx: click.Context) -> int | None:
    """Watch paired fine-tuning runs live: what does freezing these weights buy, and what does it cost?

    Without a command: `freeze-tui run` on the embedded demo (offline, CPU).
    """
    if ctx.invoked_subcommand is None:
        return ctx.invoke(run)
    return None


SCREENSHOT_DIR = click.option(
    "--screenshot-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Where ctrl+s saves (default: $FREEZE_TUI_SCREENSHOTS, else by the log; a replayed log in a git "
    "work tree: here, else ~/freeze-tui-screenshots).",
)
NOTIFY = click.option(
    "--notify",
    default="",
    metavar="CMD",
    help="Run CMD (through the shell) on each alert: non-finite or diverging loss, a stalled writer (watch), the "
    "run's end; the alert comes as FREEZE_TUI_* variables and JSON on stdin (README, Alerts).",
)


@cli.command()
@config_options()
@click.option("--headless", is_flag=True, help="No app: print progress and the summary table.")
@click.option("--detach", is_flag=True, help="Train in a background process (survives SSH loss) and watch it.")
@SCREENSHOT_DIR
@NOTIFY
@launch_options
@click.option(
    "--resume",
    metavar="LOG",
    default=None,
    help="Continue the killed run of LOG from its newest intact checkpoint (--checkpoint-every), in the same log.",
)
def run(**opts) -> int:
    """Run a paired experiment: the live app, or --headless (also over several processes: torchrun)."""
    headless, detach, shots = opts.pop("headless"), opts.pop("detach"), opts.pop("screenshot_dir")
    notify = opts.pop("notify")
    resume_log = opts.pop("resume")
    launch = pop_launch(opts)
    ctx = click.get_current_context()
    explicit = {n for n in opts if ctx.get_parameter_source(n) not in (None, click.core.ParameterSource.DEFAULT)}
    cfg = config_from(opts)
    log_path = Path(cfg.log) if cfg.log else cfg.default_log_path(run_time())
    if resume_log is not None:
        return _resume(
            Path(resume_log), cfg, explicit, headless=headless, detach=detach, shots=shots, launch=launch, notify=notify
        )
    if launch is not None or under_torchrun():
        if notify:
            raise FreezeTuiError(
                f"--notify is not available for distributed runs yet; follow the log instead: "
                f"freeze-tui watch {log_path} --notify CMD"
            )
        return run_distributed(
            cfg,
            log_path,
            headless=headless,
            detach=detach,
            launch=launch,
            precheck=lambda c: _precheck(c, log_path),
            producer=PRODUCER,
        )
    check_one_process(cfg)
    _precheck(cfg, log_path)
    if detach:
        from freeze_tui.cli.detach import detach_run

        return detach_run(cfg, log_path, watch=not headless)
    return _run_here(cfg, log_path, headless=headless, shots=shots, notify=notify)


def _run_here(cfg: RunConfig, log_path: Path, *, headless: bool, shots, notify: str, resume=None) -> int:
    """The run in this process, in the live app or headless; `resume`: the checkpoint a resumed run goes on from."""
    from freeze_tui.cli.engine_door import run_session

    session = run_session(cfg, log_path, producer=PRODUCER, resume=resume)
    notifier = _notifier(notify, log_path)
    with Interrupts() as interrupts:
        if headless:
            from freeze_tui.cli.headless import run_headless

            click.echo(f"log: {log_path}" + (f" (resumed from {resume.folder})" if resume is not None else ""))
            code = run_headless(session.start(), interrupts=interrupts, notifier=notifier)
        else:
            code = _run_app(session, interrupts, shots, notifier)
        if notifier is not None:
            notifier.close()  # the run's end reaches the phone before this process exits
        return _end(session, code, interrupts)


def _notifier(command: str, log_path):
    """--notify CMD: a Notifier whose failures are one warning line each (the app shows them as toasts)."""
    if not command.strip():
        return None
    from engine.run.notify import Notifier

    return Notifier(command, lambda message: click.echo(f"freeze-tui: warning: {message}", err=True), log=str(log_path))


def _resume(
    log: Path, given: RunConfig, explicit: set[str], *, headless: bool, detach: bool, shots, launch, notify: str
) -> int:
    """`run --resume LOG`: the same log goes on from its newest intact checkpoint (freeze_tui.cli.resume)."""
    from freeze_tui.cli.resume import resume_point

    if given.log is not None and Path(given.log).resolve() != log.resolve():
        raise FreezeTuiError(f"--log {given.log} differs from --resume {log}: a resumed run goes on in its own log")
    world = launch["nproc_per_node"] * launch["nnodes"] if launch is not None else env_world_size()
    # a damaged checkpoint is said once: by world rank 0 (a launcher's ranks look again)
    said = quiet_rank() or launch is not None
    warn = (lambda line: None) if said else (lambda line: click.echo(f"warning: {line}", err=True))
    cfg, point = resume_point(log, given, explicit, warn, world_size=world, find_checkpoint=not quiet_rank())
    if launch is not None or under_torchrun():  # a distributed run resumes over its own layout
        return run_distributed(
            cfg,
            log,
            headless=headless,
            detach=detach,
            launch=launch,
            precheck=lambda c: _precheck(c, log),
            producer=PRODUCER,
            resume=point,
        )
    check_one_process(cfg)
    _precheck(cfg, log)
    if detach:
        from freeze_tui.cli.detach import detach_run

        return detach_run(cfg, log, watch=not headless, resume=True)
    return _run_here(cfg, log, headless=headless, shots=shots, notify=notify, resume=point)


def _end(session, code: int, interrupts: Interrupts) -> int:
    """Wait for the engine thread (it ends right after run_end); one more interrupt, or a session
    already abandoned, quits at once without tearing the runtime down under the engine thread."""
    seen, deadline = interrupts.count, time.monotonic() + 30
    while not session.join(timeout=0.1):
        if session.abandoned or interrupts.count > seen or time.monotonic() > deadline:
            session.abandon()
            exit_now(code)
    if session.failure is not None:
        raise session.failure
    return code


def _precheck(cfg: RunConfig, log_path: Path) -> None:
    """Cheap checks before anything heavy loads: spec syntax, data files, model dir, --save."""
    from engine.core.textfiles import check_retain_data, check_text_file, find_text_files
    from engine.plans.spec import parse_spec

    for name, spec in cfg.arms:
        try:
            parse_spec(spec)
        except FreezeTuiError as exc:
            raise FreezeTuiError(f"arm {name}: {exc}") from None
    files = find_text_files(cfg.data)
    has_text = [check_text_file(path) for path in files]  # every file is checked, not only up to the first
    if files and not any(has_text):
        raise FreezeTuiError(f"the data ({', '.join(cfg.data)}) holds no text; pass non-empty text files")
    check_retain_data(cfg.retain_data)
    if cfg.model and (Path(cfg.model).is_dir() and not (Path(cfg.model) / "config.json").exists()):
        raise FreezeTuiError(
            f"model directory {cfg.model} has no config.json; pass a folder saved with save_pretrained"
        )
    if cfg.save:
        _check_save(cfg, Path(cfg.save), log_path)


def _check_save(cfg: RunConfig, save: Path, log_path: Path) -> None:
    """Weights are saved after hours of training: every DIR/<arm> must be a folder we can write."""
    _check_writable_dir(save, "--save")
    log, inside = log_path.resolve(), save.resolve()
    for name, _ in cfg.arms:  # a symlinked DIR/<arm> must not lead out of DIR either
        if not (save / name).resolve().is_relative_to(inside):
            raise FreezeTuiError(f"--save {save}: arm {name!r} would write outside {save}; rename the arm")
    for target in (save, *(save / name for name, _ in cfg.arms)):
        if target.resolve() == log:
            raise FreezeTuiError(f"--save {save} would write into the run log {log_path}; choose another folder")
        if target.exists() and not target.is_dir():
            raise FreezeTuiError(f"--save {save}: {target} is a file, not a folder; remove it or choose another --save")


def _check_writable_dir(path: Path, flag: str) -> None:
    """Now, not after hours of training: can `path` be created (or written into)?"""
    import os

    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise FreezeTuiError(f"{flag} {path}: {existing} is a file, not a folder; choose another {flag} folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise FreezeTuiError(f"{flag} {path}: {existing} is not writable; choose another {flag} folder")


def _run_app(session, interrupts: Interrupts, screenshot_dir: str | None, notifier=None) -> int:
    from freeze_tui.app.app import FreezeApp

    app = FreezeApp(session.start(), log_path=session.log_path, screenshot_dir=screenshot_dir, notifier=notifier)
    run_app(app, interrupts, ended=lambda: session.join(timeout=0), on_stuck=lambda: _leave_stuck_app(session))
    if not session.done:  # quit without waiting (q or a signal, twice): the log keeps what it has
        session.stop()
        session.abandon()
    click.echo(f"log: {session.log_path}  (replay: freeze-tui replay {session.log_path})", err=True)
    return exit_codes.for_status(session.state.status)


@cli.command()
@click.argument("logs", metavar="LOG...", nargs=-1, required=True)
@click.option("--speed", default="max", show_default=True, help="Time factor N (1 = real time) or max.")
@SCREENSHOT_DIR
def replay(logs: tuple[str, ...], speed: str, screenshot_dir: str | None) -> int:
    """Play saved run logs through the app.

    Several logs play as one run: their arms side by side, paired by step. Name a run NAME=LOG.
    """
    from engine.log.sources import ReplaySource
    from freeze_tui.cli.logs import source_of

    factor = None if speed == "max" else _speed(speed)
    source = source_of(logs, lambda log: ReplaySource(log, factor))  # a bad log fails here, before any app starts
    return _view(source, _first(logs), screenshot_dir)


def _first(logs: tuple[str, ...]) -> str:
    """The first log's path (NAME=LOG allowed): screenshots go next to it."""
    from freeze_tui.cli.logs import named

    return named(logs)[0][0]


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise FreezeTuiError(f"--speed {text!r} must be a positive number or 'max'")
    return value


@cli.command()
@click.argument("logs", metavar="LOG...", nargs=-1, required=True)
@SCREENSHOT_DIR
@NOTIFY
@click.option("--read-only", is_flag=True, help="Offer no key that stops the run (`serve --watch` sessions).")
def watch(logs: tuple[str, ...], screenshot_dir: str | None, notify: str, read_only: bool) -> int:
    """Follow logs that runs are still writing.

    For a --headless or --detach run, from another terminal. Several logs: one run, paired by step.
    """
    from freeze_tui.cli.logs import source_of

    source = source_of(logs, _watch_source)  # a bad log fails here, before any app starts
    notifier = _notifier(notify, _first(logs))
    try:
        return _view(source, _first(logs), screenshot_dir, notifier, stoppable=not read_only)
    finally:
        if notifier is not None:
            notifier.close()


def _leave_stuck_app(session) -> None:
    """The run has ended (its log is complete) but the app cannot close: its terminal is gone."""
    session.abandon()
    exit_now(exit_codes.for_status(session.state.status))


def _view(source, log_path: str, screenshot_dir: str | None, notifier=None, *, stoppable: bool = True) -> int:
    """replay and watch: 0 when the user quits, 130 when a stop signal closed the app."""
    from freeze_tui.app.app import FreezeApp

    app = FreezeApp(source, log_path=log_path, screenshot_dir=screenshot_dir, notifier=notifier)
    app.writer_stoppable = stoppable
    with Interrupts() as interrupts:
        run_app(app, interrupts, on_stuck=lambda: exit_now(exit_codes.INTERRUPTED))
    if app.source_error:  # shown in the app; said again where it stays readable
        raise FreezeTuiError(app.source_error)
    return exit_codes.INTERRUPTED if interrupts.count else exit_codes.FINISHED


WATCH_HEADER_WAIT = 2.0  # a run writes its header right after creating the log


def _watch_source(log: str):
    """A WatchSource whose header has arrived: an empty or headless file is not a run to wait for."""
    from engine.core.errors import LogError
    from engine.log.sources import WatchSource

    deadline = time.monotonic() + WATCH_HEADER_WAIT
    while True:
        source = WatchSource(log)
        if source.started:
            return source
        source.close()
        empty = Path(log).stat().st_size == 0
        if time.monotonic() >= deadline:
            what = "is empty" if empty else "has no complete first line"
            raise LogError(
                f"log {log} {what} after {WATCH_HEADER_WAIT:.0f} s; a run writes its header first, "
                "so this is not a run that has started: check the path"
            )
        time.sleep(0.1)


@cli.command()
@click.argument("logs", metavar="LOG...", nargs=-1, required=True)
@click.option(
    "--format",
    "form",
    type=click.Choice(["auto", "markdown", "text", "json"]),
    default="auto",
    show_default=True,
    help="auto: text laid out for the terminal's width, Markdown into a file or pipe; "
    "json: every statistic recomputed from the log's steps and samples.",
)
@click.option("--pair", metavar="A,B", default=None, help="A paired comparison of arm B against arm A of one run.")
@click.option(
    "--margin",
    type=float,
    default=None,
    help="Equivalence margin in points of r for the FLOP model's verdict (default: the run's "
    "--equivalence-margin, else 5).",
)
def report(logs: tuple[str, ...], form: str, pair: str | None, margin: float | None) -> int:
    """The study's table for run logs.

    Also for stopped or failed runs. Several logs: one table, their arms side by side, each run's
    arms timed against that run's own baseline.
    """
    from freeze_tui.cli.commands.report import print_report

    arms = None
    if pair is not None:
        names = [a.strip() for a in pair.split(",")]
        if len(names) != 2 or not all(names):
            raise click.BadParameter(f"give two arms as A,B, not {pair!r}", param_hint="--pair")
        arms = (names[0], names[1])
    if margin is not None and not 0 < margin < 100:
        raise click.BadParameter(f"points of r in (0, 100), not {margin:g}", param_hint="--margin")
    print_report(logs, form, arms, margin)
    return 0


@cli.command()
@config_options(
    ["model", "arms", "trust_remote_code", "batch_size", "block_size", "device", "dtype", "memory_limit"]
    + ["log", "checkpoint_every", "keep_checkpoints", "shards", "replicas"]
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--measure", is_flag=True, help="Load the model and time real steps of each arm: measured r vs FLOP r.")
@click.option("--steps", default=5, show_default=True, help="Timed steps per arm with --measure (after 2 warm-up).")
@click.option(
    "--gpus",
    type=int,
    metavar="N",
    help="Say which distributed layout (replicas, shards or both) a run on N GPUs would use, and why "
    "(one GPU's memory: the visible GPUs' or --memory-limit).",
)
def plan(as_json: bool, measure: bool, steps: int, gpus: int | None, **opts) -> int:
    """Show what each plan trains (block x role grid, parameter counts, FLOP-model cost vs full) and the
    memory each arm needs on its device, from the config alone; --measure times real steps."""
    import json

    import msgspec

    from engine.plans.describe import describe_layout
    from engine.run.checkpoints import checkpoint_line, checkpoint_plan
    from freeze_tui.cli.engine_door import add_memory_plan, planned_run
    from freeze_tui.draw.plan_grid import render_plans
    from freeze_tui.draw.plan_memory import render_memory

    cfg = config_from(opts)
    planned = planned_run(cfg)  # the layout is read once (meta device)
    desc = describe_layout(planned.model_name, planned.arch, planned.layout, cfg.arms, block_size=cfg.block_size)
    desc = add_memory_plan(desc, cfg, planned, measure=measure, steps=steps)
    log_path = Path(cfg.log) if cfg.log else cfg.default_log_path("<time>")
    optimizer = {name: memory.optimizer for name, memory in planned.memory.items()}
    checkpoints = checkpoint_plan(cfg, log_path, optimizer)
    layout = None if gpus is None else plan_layout(planned, cfg, gpus)
    desc = msgspec.structs.replace(desc, checkpoints=checkpoints, layout=msgspec.UNSET if layout is None else layout)
    if as_json:
        click.echo(json.dumps(msgspec.to_builtins(desc), indent=2))
    else:
        from rich.console import Console
        from rich.text import Text

        Console().print(render_plans(desc))
        Console().print(render_memory(desc))
        Console().print(Text(checkpoint_line(checkpoints)))
        if layout is not None:
            Console().print(Text(layout.line()))
    return 0


def plan_layout(planned, cfg, gpus: int):
    """`plan --gpus N`: the layout of the arms over N GPUs (engine.plans.layout)."""
    from engine.plans.layout import choose_layout, gpu_capacity

    capacity = gpu_capacity(planned.budgets, cfg.memory_limit, gpus)
    return choose_layout(planned.memory, gpus=gpus, capacity=capacity, batch=cfg.batch_size)


cli.add_command(export)
cli.add_command(suggest)
cli.add_command(serve)
cli.add_command(study)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one clear line on stderr and exit 2 for bad input, never a traceback."""
    saved = sys.stdout, sys.stderr
    ignore_file_size_signal()
    # a reader that goes away (| head, an SSH terminal hung up) must neither stop a run nor end in a traceback
    sys.stdout, sys.stderr = Guarded(sys.stdout), Guarded(sys.stderr)
    try:
        code = _main(argv)
        flush_std()
        lost = lost_output()
    finally:
        sys.stdout, sys.stderr = saved
    if lost is not None and code in (0, None):  # `report > file` on a full disk must not exit 0
        with contextlib.suppress(OSError, ValueError):
            print(f"freeze-tui: error: {lost}", file=sys.stderr, flush=True)
        code = exit_codes.BAD_INPUT
    sys.exit(code if isinstance(code, int) else 0)


def _main(argv: list[str] | None) -> object:
    try:
        return cli.main(args=argv, prog_name="freeze-tui", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        hint = (
            f" (see 'freeze-tui {exc.ctx.info_name} --help')"
            if exc.ctx and exc.ctx.parent
            else " (see 'freeze-tui --help')"
        )
        _fail(exc.format_message() + hint)
    except FreezeTuiError as exc:
        _fail(str(exc))
    except (click.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
    return exit_codes.INTERRUPTED


def _fail(message: str) -> None:
    from freeze_tui.draw.safe_text import clean

    if not quiet_rank():  # every rank of a distributed run sees the same bad input: rank 0 says it
        click.echo(f"freeze-tui: error: {clean(message, one_line=True, max_len=2000)}", err=True)
    flush_std()
    sys.exit(exit_codes.BAD_INPUT)
