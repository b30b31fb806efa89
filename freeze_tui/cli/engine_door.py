"""The CLI's one door to the torch side of the engine. Each function imports what it needs when it is
called, so `--help`, `replay`, `watch`, `report`, `export` and `serve` never load torch (a test checks
sys.modules), and the import contract for the CLI names this module alone."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.dist.dist_session import MeshRun
    from engine.plans.plan_record import PlanDescription
    from engine.plans.planned import PlannedRun
    from engine.plans.select import Budget, Selection
    from engine.run.checkpoints import ResumePoint
    from engine.run.config import RunConfig
    from engine.train.session import RunSession


def run_session(cfg: RunConfig, log_path: Path, *, producer: str, resume: ResumePoint | None = None) -> RunSession:
    """A one-process run (its engine thread loads torch when it starts); `resume`: `run --resume`'s checkpoint."""
    from engine.train.session import RunSession

    return RunSession(cfg, log_path, producer=producer, resume=resume)


def dist_run_session(cfg: RunConfig, log_path: Path, *, producer: str, resume=None) -> MeshRun:
    """World rank 0 of a distributed run: the only emitter (its `.session` is the run's RunSession)."""
    from engine.dist.dist_session import mesh_session

    return mesh_session(cfg, log_path, producer=producer, resume=resume)


def run_worker(cfg: RunConfig) -> int:
    """Any other rank of a distributed run."""
    from engine.dist.dist_session import run_worker as worker

    return worker(cfg)


def planned_run(cfg: RunConfig) -> PlannedRun:
    """Layout (meta device), plans, placement and memory, once."""
    from engine.train.memory_plan import planned_run as plan_it

    return plan_it(cfg)


def add_memory_plan(desc: PlanDescription, cfg: RunConfig, planned: PlannedRun, **options: Any) -> PlanDescription:
    """`plan`'s per-arm memory and devices (and `--measure`'s timed steps)."""
    from engine.train.memory_plan import add_memory_plan as add

    return add(desc, cfg, planned, **options)


def select(cfg: RunConfig, method: str, budget: Budget, **probe: int) -> Selection:
    """A selector's ranking and spec within the budget (`suggest`, `study`)."""
    from engine.train.probe import select as run_selector

    return run_selector(cfg, method, budget, **probe)


def elastic_launch(torchrun_args: list[str]) -> None:
    """Start this node's processes through torch's elastic launcher (raises its ChildFailedError)."""
    from torch.distributed.launcher.api import elastic_launch as launch
    from torch.distributed.run import config_from_args, parse_args

    config, cmd, cmd_args = config_from_args(parse_args(torchrun_args))
    _quiet_launcher_loggers()
    launch(config, cmd)(*cmd_args)


def _quiet_launcher_loggers() -> None:
    """The workers say what failed; the agent's own lines ("Received 2 death signal, shutting down
    workers") would only repeat it. Its loggers set their own level, so each one is quietened."""
    import logging

    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("torch.distributed.elastic", "torch.distributed.launcher", "torch.distributed.run")):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def child_failure_type() -> type[Exception]:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    return ChildFailedError


def launcher_signal_type() -> type[Exception]:
    """What torch's elastic launcher raises once it has passed a stop signal on to the ranks and they ended."""
    from torch.distributed.elastic.multiprocessing.api import SignalException

    return SignalException


def rendezvous_timeout_type() -> type[Exception]:
    """What torch's launcher raises when the nodes did not all arrive within the join timeout."""
    from torch.distributed.elastic.rendezvous.api import RendezvousTimeoutError

    return RendezvousTimeoutError


def check_rendezvous_port(endpoint: str) -> None:
    """A port on this node held by another service is refused before the launch."""
    from engine.dist.rendezvous import check_rendezvous_port as check

    check(endpoint)


def nodes_arrived(endpoint: str, run_id: str) -> str:
    """How many nodes reached the rendezvous, after a join timeout."""
    from engine.dist.rendezvous import nodes_arrived as count

    return count(endpoint, run_id)
