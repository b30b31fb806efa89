"""`freeze-tui run` over several processes: as a torchrun worker, or starting them itself
(`--nproc-per-node N [--nnodes M --rdzv-endpoint HOST:PORT]`) through torch's elastic launcher,
the same machinery as torchrun, in this process. No torch at import.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import click

from engine.core.errors import FreezeTuiError
from engine.dist.world import check_world, env_rank, env_world_size, under_torchrun
from engine.run.checkpoints import MAY_DIFFER, ResumePoint
from engine.run.config import RunConfig
from freeze_tui.cli import exit_codes
from freeze_tui.cli.interrupts import Interrupts
from freeze_tui.cli.launch_checks import JOIN_TIMEOUT_S, check_launch

LAUNCH_FLAGS = ("nproc_per_node", "nnodes", "node_rank", "rdzv_endpoint", "rdzv_id", "rdzv_backend", "join_timeout")


def launch_options(command):
    """The launcher's options of `run` (torchrun's names)."""
    options = [
        click.option("--nproc-per-node", type=int, help="Start N processes on this node (a distributed run)."),
        click.option(
            "--nnodes", type=int, default=1, show_default=True, help="Nodes in the run (with --nproc-per-node)."
        ),
        click.option("--node-rank", type=int, help="This node's rank (static rendezvous only)."),
        click.option(
            "--rdzv-endpoint", metavar="HOST:PORT", help="Rendezvous of a multi-node run (the same on every node)."
        ),
        click.option(
            "--rdzv-id", default="freeze-tui", show_default=True, help="Rendezvous id (the same on every node)."
        ),
        click.option("--rdzv-backend", default="c10d", show_default=True, help="torch rendezvous backend."),
        click.option(
            "--join-timeout",
            type=float,
            default=JOIN_TIMEOUT_S,
            show_default=True,
            metavar="SECONDS",
            help="How long the nodes of a multi-node run wait for each other at the rendezvous.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def pop_launch(opts: dict) -> dict | None:
    """The launcher's settings, or None when this `run` starts no processes."""
    launch = {name: opts.pop(name) for name in LAUNCH_FLAGS}
    return launch if launch["nproc_per_node"] is not None and not under_torchrun() else None


def run_distributed(
    cfg: RunConfig,
    log_path: Path,
    *,
    headless: bool,
    detach: bool,
    launch: dict | None,
    precheck,
    producer: str,
    resume: ResumePoint | None = None,
) -> int:
    """`resume`: `run --resume LOG`'s checkpoint (world rank 0 and a launcher; None on the other ranks)."""
    if launch is not None:
        if launch["nproc_per_node"] < 1 or launch["nnodes"] < 1:
            raise FreezeTuiError("--nproc-per-node and --nnodes must be at least 1")
        check_launch(launch, detach=detach)
        check_world(cfg, launch["nproc_per_node"] * launch["nnodes"], headless=headless, detach=detach)
        precheck(cfg)
        return launch_workers(cfg, log_path, launch, resume=resume is not None)
    check_world(cfg, env_world_size(), headless=headless, detach=detach)
    precheck(cfg)
    if env_rank() != 0:
        from freeze_tui.cli.engine_door import run_worker

        _exit(run_worker(cfg))
    return _run_rank0(cfg, log_path, producer, resume)


def _run_rank0(cfg: RunConfig, log_path: Path, producer: str, resume: ResumePoint | None = None) -> int:
    from freeze_tui.cli.engine_door import dist_run_session
    from freeze_tui.cli.headless import run_headless

    mesh = dist_run_session(cfg, log_path, producer=producer, resume=resume)
    session = mesh.session
    click.echo(f"log: {log_path}" + (f" (resumed from {resume.folder})" if resume is not None else ""))
    with LaunchedInterrupts() as interrupts:
        code = run_headless(session.start(), interrupts=interrupts)
    mesh.end_unfinished(interrupted=code == 130)
    mesh.mark_done()
    stuck = not session.join(timeout=10)  # the engine thread may wait in a collective of a failed rank
    # interpreter shutdown with a thread inside torch aborts ("terminate called without an active
    # exception"), exit 1 after a finished run: those threads end first, else the process leaves at once
    stuck = not mesh.quiet() or stuck
    if stuck:
        if session.failure is not None:  # bad input, said as main() says it
            from freeze_tui.draw.safe_text import clean

            click.echo(f"freeze-tui: error: {clean(str(session.failure), one_line=True, max_len=2000)}", err=True)
            _exit(exit_codes.BAD_INPUT)
        _exit(code)
    if session.failure is not None:
        raise session.failure
    return code


class LaunchedInterrupts(Interrupts):
    """Ctrl-C in a terminal reaches every process of the group, and the launcher passes it on once
    more: a repeat within ECHO_S of the first is that echo, not a second request to quit at once."""

    ECHO_S = 1.0

    def __init__(self) -> None:
        super().__init__()
        self._last = -math.inf

    def _on_signal(self, signum, frame) -> None:
        now = time.monotonic()
        if now - self._last >= self.ECHO_S:
            self.note()
        self._last = now


def _exit(code: int) -> None:
    """Leave now: a thread may still wait in a collective that will never finish (the log is whole)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def launch_workers(cfg: RunConfig, log_path: Path, launch: dict, resume: bool = False) -> int:
    """Start this node's processes through torch's elastic launcher; the exit code of the lowest rank
    that failed (rank 0's: 1 for a failed run, 2 for bad input), else 0. `resume`: each process
    resumes the run of `log_path` (its settings from the log, those that may differ from `cfg`)."""
    import logging

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # what torchrun sets, without its banner
    from freeze_tui.cli.engine_door import (
        check_rendezvous_port,
        child_failure_type,
        elastic_launch,
        launcher_signal_type,
        nodes_arrived,
        rendezvous_timeout_type,
    )
    from freeze_tui.cli.run_options import FIELDS, config_args

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # workers say what failed
    child = ["-m", "freeze_tui", "run", "--headless", "--log-path", str(log_path), *config_args(cfg, skip=["log"])]
    if resume:
        kept = [name for name in FIELDS if name not in MAY_DIFFER or name == "log"]
        child = ["-m", "freeze_tui", "run", "--headless", "--resume", str(log_path), *config_args(cfg, skip=kept)]
    torchrun_args = _torchrun_args(launch) + child
    if launch["rdzv_endpoint"] is not None:
        check_rendezvous_port(launch["rdzv_endpoint"])
        nodes, at = launch["nnodes"], launch["rdzv_endpoint"]
        click.echo(f"waiting for {nodes} node(s) at {at} (at most {launch['join_timeout']:g} s, --join-timeout)…")
    try:
        elastic_launch(torchrun_args)
    except rendezvous_timeout_type():
        arrived = nodes_arrived(launch["rdzv_endpoint"], launch["rdzv_id"])
        raise FreezeTuiError(
            f"the nodes did not all arrive at {launch['rdzv_endpoint']} within {launch['join_timeout']:g} s: "
            f"{arrived} of {launch['nnodes']} node(s) came; start freeze-tui on every node with the same "
            "--rdzv-endpoint and --rdzv-id, or raise --join-timeout"
        ) from None
    except KeyboardInterrupt:  # Ctrl-C before the ranks started (at the rendezvous): nothing ran
        return exit_codes.INTERRUPTED
    except child_failure_type() as exc:
        failures = getattr(exc, "failures", {})  # ChildFailedError: {rank: its failure}
        # a rank ended by the launcher's signal once another exited (negative) is not the cause
        codes = [failures[r].exitcode for r in sorted(failures) if failures[r].exitcode > 0]
        return codes[0] if codes else 1
    except launcher_signal_type():  # Ctrl-C, SIGTERM or SIGHUP: the ranks stopped at a step boundary
        return exit_codes.INTERRUPTED
    return 0


def _torchrun_args(launch: dict) -> list[str]:
    args = ["--nproc-per-node", str(launch["nproc_per_node"]), "--nnodes", str(launch["nnodes"])]
    if launch["rdzv_endpoint"] is None:
        if launch["nnodes"] > 1:
            raise FreezeTuiError("--nnodes above 1 needs --rdzv-endpoint HOST:PORT (the same on every node)")
        import uuid  # torchrun's --standalone: a c10d store on a free local port

        return [*args, "--rdzv-backend", "c10d", "--rdzv-endpoint", "localhost:0", "--rdzv-id", str(uuid.uuid4())]
    args += ["--rdzv-endpoint", launch["rdzv_endpoint"], "--rdzv-id", launch["rdzv_id"]]
    join = math.ceil(launch["join_timeout"])  # torch reads it as whole seconds
    args += ["--rdzv-backend", launch["rdzv_backend"], "--rdzv-conf", f"join_timeout={join}"]
    return args + (["--node-rank", str(launch["node_rank"])] if launch["node_rank"] is not None else [])
