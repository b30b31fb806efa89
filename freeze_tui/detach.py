"""`run --detach`: train in a separate headless process that outlives this terminal, then watch its log."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import click

from engine.config import RunConfig
from engine.errors import FreezeTuiError

START_TIMEOUT = 120.0


def child_argv(argv: list[str], log_path: Path) -> list[str]:
    """The user's own `run` arguments, headless, without --detach, with the log path fixed."""
    args = [a for a in argv if a != "--detach"]
    if not args or args[0] != "run":
        args = ["run", *args]
    return [sys.executable, "-m", "freeze_tui", *args, "--headless", "--log", str(log_path)]


def open_watch_app(log_path: Path) -> None:
    from engine.log.sources import WatchSource
    from freeze_tui.app import FreezeApp

    FreezeApp(WatchSource(log_path), log_path=log_path).run()


def detach_run(cfg: RunConfig, log_path: Path, argv: list[str] | None = None, viewer=open_watch_app) -> int:
    """Start the background run, wait for its log to begin, then follow it with `viewer(log_path)`."""
    if log_path.exists() and not cfg.overwrite:
        raise FreezeTuiError(f"log {log_path} already exists; choose another --log or pass --overwrite to replace it")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out_path = log_path.with_suffix(".out")
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            child_argv(argv if argv is not None else sys.argv[1:], log_path),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "TERM": "dumb"},
        )
    click.echo("starting a background run …")
    _wait_for_start(proc, log_path, out_path)
    # one fact per line, the path last: a long path wraps alone on 80 columns, never mid-sentence
    click.echo(f"training in background process {proc.pid}")
    click.echo(f"  log:       {log_path}")
    click.echo(f"  output:    {out_path}")
    click.echo(f"  re-attach: freeze-tui watch {log_path}")
    viewer(log_path)
    if proc.poll() is None:
        click.echo(f"the run goes on in process {proc.pid}")
        click.echo(f"  re-attach: freeze-tui watch {log_path}")
    return 0


def _wait_for_start(proc: subprocess.Popen, log_path: Path, out_path: Path) -> None:
    """Until the run has loaded its model and data (run_start in the log): bad input fails here,
    with the background run's own one-line message."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        code = proc.poll()
        if log_path.exists() and b'"kind":"run_start"' in log_path.read_bytes()[:1_000_000]:
            return
        if code is not None:
            lines = out_path.read_text(errors="replace").strip().splitlines()
            last = lines[-1] if lines else f"exit code {code}"
            raise FreezeTuiError(f"the background run did not start: {last.removeprefix('freeze-tui: error: ')}")
        time.sleep(0.1)
    raise FreezeTuiError(f"the background run did not start within {START_TIMEOUT:.0f} s; see {out_path}")
