"""`run --detach`: train in a separate headless process that outlives this terminal, then watch its log."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from engine.core.control import STOP_SIGNALS
from engine.core.errors import FreezeTuiError
from engine.log import events as ev
from engine.run.config import RunConfig
from freeze_tui.cli import exit_codes

START_TIMEOUT = 120.0  # seconds until run_start (model and data loaded)


def child_argv(argv: list[str], log_path: Path) -> list[str]:
    """The user's own `run` arguments, headless, without --detach, with the log path fixed."""
    args = [a for a in argv if a not in ("--detach", "--headless")]
    if not args or args[0] != "run":
        args = ["run", *args]
    return [sys.executable, "-m", "freeze_tui", *args, "--headless", "--log", str(log_path)]


def open_watch_app(log_path: Path) -> None:
    from engine.log.sources import WatchSource
    from freeze_tui.app.app import FreezeApp
    from freeze_tui.cli.interrupts import Interrupts, exit_now, run_app

    with Interrupts() as interrupts:  # a signal closes the viewer (terminal restored); the run goes on
        run_app(FreezeApp(WatchSource(log_path), log_path=log_path), interrupts, on_stuck=lambda: exit_now(0))


def output_path(log_path: Path) -> Path:
    """Where the background run's stdout and stderr go: beside the log, never the log itself."""
    out = log_path.with_suffix(".out")
    return out if out != log_path else log_path.with_name(log_path.name + ".out")


def detach_run(
    cfg: RunConfig,
    log_path: Path,
    argv: list[str] | None = None,
    viewer=open_watch_app,
    *,
    watch: bool = True,
    resume: bool = False,
) -> int:
    """Start the background run, wait for its log to begin, then follow it with `viewer(log_path)`
    (watch=False, i.e. --headless: return once it has started). The exit code: 0 while the run goes on
    after the viewer closed, else the background run's own (freeze_tui.cli.exit_codes).
    resume: `run --resume`: the log exists and goes on (started = one more `resumed` line)."""
    if log_path.exists() and not cfg.overwrite and not resume:
        raise FreezeTuiError(f"log {log_path} already exists; choose another --log or pass --overwrite to replace it")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out_path = output_path(log_path)
    started = RESUMED if resume else RUN_START
    before = log_path.read_bytes().count(started) if resume else 0
    proc = _start(argv if argv is not None else sys.argv[1:], log_path, out_path, cfg.overwrite, append=resume)
    click.echo("starting a background run …")
    try:
        _wait_for_start(proc, log_path, out_path, started, before)
    except BaseException:
        _kill(proc)  # given up on (or interrupted): no orphan keeps training unseen
        raise
    # one fact per line, the path last: a long path wraps alone on 80 columns, never mid-sentence
    click.echo(f"training in background process {proc.pid}")
    click.echo(f"  log:       {log_path}")
    click.echo(f"  output:    {out_path}")
    click.echo(f"  re-attach: freeze-tui watch {log_path}")
    if not watch:
        return 0
    viewer(log_path)
    code = proc.poll()
    if code is None:
        click.echo(f"the run goes on in process {proc.pid}")
        click.echo(f"  re-attach: freeze-tui watch {log_path}")
        return 0
    if code < 0:
        name = _signal_name(-code)
        click.echo(f"the background run was killed by {name}; its log keeps every line it wrote", err=True)
    return background_code(code)


def background_code(code: int) -> int:
    """The background run's exit status as one of the documented codes (freeze_tui.cli.exit_codes): its
    own code, or for a process killed by a signal (Popen's -N) 130 for a stop signal and 1 (failed) for
    any other (SIGKILL, the OOM killer, a crash), instead of the shell's 256 - N (247 for SIGKILL)."""
    if code >= 0:
        return code
    return exit_codes.INTERRUPTED if -code in STOP_SIGNALS else exit_codes.FAILED


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _start(argv: list[str], log_path: Path, out_path: Path, overwrite: bool, append: bool = False) -> subprocess.Popen:
    try:
        out = open(out_path, "ab" if append else "wb" if overwrite else "xb")  # noqa: SIM115 - the child holds it
    except FileExistsError:
        raise FreezeTuiError(
            f"{out_path} (the background run's output) already exists; choose another --log or pass --overwrite"
        ) from None
    except OSError as exc:
        raise FreezeTuiError(f"cannot write {out_path}: {exc.strerror}; choose a writable --log path") from None
    with out:
        return subprocess.Popen(
            child_argv(argv, log_path),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "TERM": "dumb"},
        )


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the whole group, nothing else
        proc.wait()


RUN_START = ev.line_mark(ev.RunStart)
RESUMED = ev.line_mark(ev.Resumed)


def _wait_for_start(
    proc: subprocess.Popen, log_path: Path, out_path: Path, started: bytes = RUN_START, before: int = 0
) -> None:
    """Until the run has loaded its model and data (run_start in the log, or one more `resumed` line):
    bad input fails here, with the background run's own one-line message."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        code = proc.poll()
        whole = started == RESUMED  # a `resumed` line is appended at the end
        head = (log_path.read_bytes() if whole else log_path.read_bytes()[:1_000_000]) if log_path.exists() else b""
        if head.count(started) > before:
            return
        if code is not None:
            lines = out_path.read_text(errors="replace").strip().splitlines()
            last = lines[-1] if lines else f"exit code {code}"
            raise FreezeTuiError(f"the background run did not start: {last.removeprefix('freeze-tui: error: ')}")
        time.sleep(0.1)
    raise FreezeTuiError(
        f"the background run did not start within {START_TIMEOUT:.0f} s and was stopped; see {out_path}"
    )
