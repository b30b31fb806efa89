"""Checkpoints of a run, the torch-free part (issue 21): when one is due, where they go, the manifest
and its checksums, atomic writing, which one a resume starts from, and which settings may differ then.

A checkpoint is a folder `<log stem>.ckpt/step-000020/` (`r01-step-000020` under --seeds) beside the log.
It is written under a temporary name, every file fsynced, then renamed into place (and the parent folder
fsynced): a folder with the final name is whole. Its `manifest.json` holds the position, the settings
that change the run, the model's and data's identity, and a sha256 per file. engine.train.checkpoint
writes and reads the tensors.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from engine.core.errors import FreezeTuiError
from engine.plans.plan_record import CheckpointPlan
from engine.run.config import RunConfig

MANIFEST = "manifest.json"
FORMAT = 1
NAME = re.compile(r"^(?:r(\d+)-)?step-(\d+)$")

# settings a resume may change: where things are written, how the run is shown, the machine's threads
# and memory cap; every other RunConfig field changes what is computed and must stay as the run began
MAY_DIFFER = frozenset(
    {"log", "overwrite", "save", "checkpoint_every", "keep_checkpoints", "threads", "memory_limit", "device"}
)


class RunIdentity(msgspec.Struct, kw_only=True):
    """What makes a checkpoint this run's: the settings that change the run, their digest, the model's and
    the data's identity; the same in every checkpoint of a run."""

    settings: dict[str, Any]
    settings_digest: str
    model: str
    data: str


class CheckpointManifest(RunIdentity, kw_only=True, omit_defaults=True):
    """A checkpoint's `manifest.json`: the run's identity, the position, the arms, and (seal adds them) the
    format and a sha256 per file. world_size, shards and replicas: a distributed run's layout, absent from a
    one-process run's manifest (1 each); None is not written."""

    step: int
    epoch: int
    batch: int
    replicate: int
    after_seq: int  # the seq of the last event the checkpoint covers
    arm_names: list[str]
    world_size: int | None = None
    shards: int | None = None
    replicas: int | None = None
    format: int | None = None
    files: dict[str, str] | None = None

    def layout(self) -> tuple[int, int, int]:
        """(world_size, shards, replicas) of the world that wrote it."""
        return (
            self.world_size if self.world_size is not None else 1,
            self.shards if self.shards is not None else 1,
            self.replicas if self.replicas is not None else 1,
        )


def checkpoint_root(log_path: str | Path) -> Path:
    """Where a log's checkpoints go: `<log stem>.ckpt` beside it."""
    p = Path(log_path)
    return p.with_name(p.stem + ".ckpt")


def folder_name(replicate: int, step: int, seeds: int) -> str:
    return f"r{replicate:02d}-step-{step:06d}" if seeds > 1 else f"step-{step:06d}"


def position(folder: Path) -> tuple[int, int] | None:
    """(replicate, step) from a checkpoint folder's name; None for anything else."""
    m = NAME.match(folder.name)
    return (int(m.group(1) or 0), int(m.group(2))) if m else None


def run_settings(config: dict) -> dict:
    """The settings that change the run, from a config dict as run_start records it (lr resolved, the
    demo model named "demo")."""
    names = [f for f in RunConfig.__dataclass_fields__ if f not in MAY_DIFFER]
    out = {}
    for name in names:
        value = config.get(name)
        if isinstance(value, (list, tuple)):  # JSON's lists and a config's tuples alike
            value = [list(v) if isinstance(v, (list, tuple)) else v for v in value]
        out[name] = value
    return out


def digest(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomically(root: Path, name: str, fill: Callable[[Path], None], manifest: CheckpointManifest) -> Path:
    """fill(tmp) writes the files; then the manifest (with each file's sha256), fsync, rename into place."""
    tmp = open_temporary(root, name)
    try:
        fill(tmp)
        return seal(root, name, tmp, manifest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def open_temporary(root: Path, name: str) -> Path:
    """The empty temporary folder a checkpoint is written into (a distributed run's ranks all write there)."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def seal(root: Path, name: str, tmp: Path, manifest: CheckpointManifest) -> Path:
    """Once every file is in `tmp`: the manifest (a sha256 per file, subfolders' too), fsync, rename into place."""
    files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
    manifest = msgspec.structs.replace(manifest, format=FORMAT, files={f: sha256_file(tmp / f) for f in files})
    (tmp / MANIFEST).write_text(json.dumps(msgspec.to_builtins(manifest), indent=1, sort_keys=True))
    for f in [*files, MANIFEST]:
        with open(tmp / f, "rb+") as fh:
            os.fsync(fh.fileno())
    for sub in [p for p in tmp.rglob("*") if p.is_dir()]:
        _fsync_dir(sub)
    final = root / name
    if final.exists():  # a damaged one of the same step, resumed from an earlier one: replaced
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    return final


def problem(folder: Path) -> str:
    """What is wrong with a checkpoint folder ('' when it is intact): which file, and how."""
    try:
        text = (folder / MANIFEST).read_bytes()
    except FileNotFoundError:
        return f"{folder / MANIFEST} is missing"
    except OSError as exc:
        return f"{folder / MANIFEST} cannot be read ({exc})"
    try:
        json.loads(text)
    except ValueError as exc:
        return f"{folder / MANIFEST} cannot be read ({exc})"
    manifest = decode_manifest(text)
    if manifest is None or manifest.files is None or manifest.format != FORMAT:
        return f"{folder / MANIFEST} is not a freeze-tui checkpoint manifest of format {FORMAT}"
    for name, expected in manifest.files.items():
        path = folder / name
        if not path.is_file():
            return f"{path} is missing"
        if sha256_file(path) != expected:
            return f"{path} is damaged (its checksum differs from the manifest's)"
    return ""


def decode_manifest(text: bytes) -> CheckpointManifest | None:
    """The manifest in `text`; None where it is not one (JSON of another shape)."""
    try:
        return msgspec.json.decode(text, type=CheckpointManifest)
    except msgspec.DecodeError:
        return None


def read_manifest(folder: Path) -> CheckpointManifest:
    """The manifest of a checkpoint that problem() found intact; a FreezeTuiError in one line otherwise."""
    manifest = decode_manifest((folder / MANIFEST).read_bytes())
    if manifest is None:
        raise FreezeTuiError(f"{folder / MANIFEST} is not a freeze-tui checkpoint manifest of format {FORMAT}")
    return manifest


def checkpoints(root: Path) -> list[Path]:
    """Checkpoint folders under root, oldest first by (replicate, step)."""
    if not root.is_dir():
        return []
    found = [(position(p), p) for p in root.iterdir() if p.is_dir() and position(p) is not None]
    return [p for _, p in sorted(found, key=lambda x: x[0])]  # type: ignore[arg-type, return-value]


def newest_intact(root: Path, warn: Callable[[str], None]) -> Path:
    """The newest intact checkpoint; each damaged newer one is named in a warning line."""
    found = checkpoints(root)
    if not found:
        raise FreezeTuiError(
            f"no checkpoint in {root}: the run was started without --checkpoint-every (or stopped before its "
            "first one); nothing to resume from: start it again"
        )
    for folder in reversed(found):
        what = problem(folder)
        if not what:
            return folder
        warn(f"checkpoint {folder.name} cannot be used: {what}; trying the previous one")
    raise FreezeTuiError(f"no intact checkpoint in {root} (the newest: {problem(found[-1])}); start the run again")


def prune(root: Path, keep: int) -> None:
    """Only the newest `keep` checkpoints stay (and no temporary folder of a killed writer)."""
    for folder in checkpoints(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(folder, ignore_errors=True)
    for tmp in root.glob(".tmp-*"):
        if tmp.name.endswith(f"-{os.getpid()}"):
            continue
        shutil.rmtree(tmp, ignore_errors=True)


def differences(recorded: dict, now: dict) -> list[tuple[str, object, object]]:
    """(setting, recorded value, value now) of every run setting that differs."""
    return [(k, recorded.get(k), now.get(k)) for k in sorted(set(recorded) | set(now)) if recorded.get(k) != now.get(k)]


class Clock:
    """Time since the last checkpoint (or the start), for the time form of --checkpoint-every."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def since(self) -> float:
        return time.monotonic() - self.last

    def reset(self) -> None:
        self.last = time.monotonic()


@dataclass
class ResumePoint:
    """What `run --resume` found: the checkpoint to continue from and the log so far (its standing events,
    the seq the next event gets, the step events of the killed run that the `resumed` event supersedes)."""

    folder: Path
    manifest: CheckpointManifest
    events: list
    next_seq: int
    superseded_steps: int

    @property
    def replicate(self) -> int:
        return self.manifest.replicate


def checkpoint_plan(cfg: RunConfig, log_path: Path, optimizer: dict[str, int]) -> CheckpointPlan:
    """What `plan` says of checkpoints: where they go and their size on disk, per checkpoint and x K.
    optimizer: {arm: its memory plan's optimizer bytes}; a checkpoint holds an arm's trained tensors
    (4 bytes each, fp32) and AdamW's two moments (the plan's `optimizer`, 8 bytes each): 1.5 x that.
    A sharded arm (--shards K, DCP) holds the same tensors, each of its K ranks writing a K-th: `per_rank`."""
    per_arm = {name: size * 3 // 2 for name, size in optimizer.items()}
    each = sum(per_arm.values())
    return CheckpointPlan(
        folder=str(checkpoint_root(log_path)),
        every=cfg.checkpoint_every,
        keep=cfg.keep_checkpoints,
        per_arm=per_arm,
        per_checkpoint=each,
        kept=each * cfg.keep_checkpoints * (1 if cfg.checkpoint_every else 0),
        shards=cfg.shards,
        per_rank={name: -(-size // cfg.shards) for name, size in per_arm.items()},
    )


def checkpoint_line(plan: CheckpointPlan) -> str:
    from engine.plans.memory import fmt_bytes

    size = fmt_bytes(plan.per_checkpoint)
    if not plan.every:
        return (
            f"checkpoints: off (--checkpoint-every N|TIME writes them to {plan.folder}/; "
            f"{size} each, x --keep-checkpoints {plan.keep})"
        )
    kept = fmt_bytes(plan.kept)
    line = f"checkpoints: every {plan.every} to {plan.folder}/: {size} each, {kept} for the {plan.keep} kept"
    if plan.shards > 1:
        largest = fmt_bytes(max(plan.per_rank.values(), default=0))
        line += f" (DCP: each of an arm's {plan.shards} ranks writes 1/{plan.shards} of it, at most {largest})"
    return line


def check_layout(folder: Path, manifest: CheckpointManifest, world_size: int, shards: int, replicas: int = 1) -> None:
    """A checkpoint is resumed by a world of its own layout: as many processes, the same --shards and --replicas."""
    then = manifest.layout()
    if then != (world_size, shards, replicas):
        raise FreezeTuiError(
            f"checkpoint {folder} was written by {then[0]} process(es) with --shards {then[1]} --replicas {then[2]}, "
            f"this run has {world_size} with --shards {shards} --replicas {replicas}; resume with the run's own "
            f"layout (--nproc-per-node {then[0]})"
        )
