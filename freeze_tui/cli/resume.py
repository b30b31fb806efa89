"""`run --resume LOG`: the run's settings from its log, the checkpoint to continue from, and the one-line
refusals (issue 21). No torch: the engine checks the model and data against the checkpoint's manifest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.core.errors import FreezeTuiError
from engine.log import events as ev
from engine.log.runlog import read_events, read_every_event
from engine.run.checkpoints import (
    MAY_DIFFER,
    ResumePoint,
    check_layout,
    checkpoint_root,
    differences,
    newest_intact,
    read_manifest,
    run_settings,
)
from engine.run.config import RunConfig
from freeze_tui.cli.run_options import FIELDS, flag_of


def config_of_log(config: dict) -> RunConfig:
    """The RunConfig a run_start's config records (only RunConfig's fields; the demo model is None)."""
    values = {name: config[name] for name in RunConfig.__dataclass_fields__ if name in config}
    if values.get("model") == "demo":
        values["model"] = None
    for name in ("data", "retain_data"):
        if name in values:
            values[name] = tuple(values[name])
    if "arms" in values:
        values["arms"] = tuple(tuple(a) for a in values["arms"])
    return RunConfig(**values)


def _shown(value) -> str:
    if isinstance(value, tuple):
        return ",".join("=".join(v) if isinstance(v, tuple) else str(v) for v in value) or "(none)"
    return str(value)


def resume_point(
    log: Path,
    given: RunConfig,
    explicit: set[str],
    warn: Callable[[str], None],
    world_size: int = 1,
    find_checkpoint: bool = True,
) -> tuple[RunConfig, ResumePoint | None]:
    """(the resumed run's config, where it continues); FreezeTuiError in one line for what cannot resume.
    given: the command line's config; explicit: the settings the command line named; world_size: the
    processes of this resume (a distributed run resumes with its own); find_checkpoint False (a
    distributed run's ranks but world rank 0, which finds it and tells them): the config only."""
    events = list(read_events(log))
    start = next((e for e in events if isinstance(e, ev.RunStart)), None)
    if start is None:
        raise FreezeTuiError(f"log {log} has no run_start: that run never began training; nothing to resume")
    logged = start.settings().world_size
    _check_world(log, 1 if logged is None else logged, world_size)
    end = next((e for e in events if isinstance(e, ev.RunEnd)), None)
    if end is not None and end.status != "stopped":  # a stopped run (ctrl+c) may go on; its run_end is superseded
        raise FreezeTuiError(f"log {log} already ended ({end.status}); nothing to resume: start a new run")
    try:
        cfg = config_of_log(start.config)
    except (TypeError, ValueError) as exc:
        raise FreezeTuiError(f"log {log}: its run_start config cannot be read ({exc}); it cannot be resumed") from None
    changed = {}
    for name in sorted(explicit & set(FIELDS)):
        mine, theirs = getattr(given, name), getattr(cfg, name)
        if name in MAY_DIFFER:
            changed[name] = mine
        elif mine != theirs and not (name == "lr" and mine is None):
            raise FreezeTuiError(
                f"{flag_of(name)} {_shown(mine)} differs from the run's {_shown(theirs)} (in {log}); a resume keeps "
                f"every setting that changes the run: drop {flag_of(name)} or start a new run"
            )
    cfg = RunConfig(**{**cfg.__dict__, **changed, "log": str(log)}).validate()
    if not find_checkpoint:
        return cfg, None
    folder = newest_intact(checkpoint_root(log), warn)
    manifest = read_manifest(folder)
    check_layout(folder, manifest, world_size, cfg.shards, cfg.replicas)
    for name, then, now in differences(manifest.settings, run_settings(start.config)):
        raise FreezeTuiError(
            f"checkpoint {folder} was written with {flag_of(name) if name in FIELDS else name} {then!r}, the run in "
            f"{log} has {now!r}; it is another run's checkpoint"
        )
    after = manifest.after_seq
    superseded = sum(1 for e in events if isinstance(e, ev.Step) and e.seq > after)
    next_seq = max(e.seq for e in read_every_event(log)) + 1
    return cfg, ResumePoint(folder, manifest, events, next_seq, superseded)


def _check_world(log: Path, logged: int, world_size: int) -> None:
    """A run resumes over as many processes as it ran over."""
    if logged == world_size:
        return
    if world_size == 1:
        raise FreezeTuiError(
            f"the run in {log} ran over {logged} processes: resume it the same way: "
            f"freeze-tui run --resume {log} --headless --nproc-per-node {logged} (or torchrun)"
        )
    if logged == 1:
        raise FreezeTuiError(f"the run in {log} ran in one process: resume it without --nproc-per-node or torchrun")
    raise FreezeTuiError(
        f"the run in {log} ran over {logged} processes, this resume starts {world_size}: resume with "
        f"{logged} (--nproc-per-node x --nnodes)"
    )
