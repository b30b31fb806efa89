"""Checkpoints of a distributed run (issue 21 §1) through torch.distributed.checkpoint (DCP) (torch).

A checkpoint has the one-process layout (`<log stem>.ckpt/step-000020/`, manifest.json with a sha256 per
file, written under a temporary name and renamed when whole) with, instead of one safetensors file per
arm, one DCP folder per arm: `arm-<i>/` (`.metadata` and a `__<rank>_0.distcp` per rank of the arm's
group). Every arm group saves at once, each over its own shard process group, so a sharded arm (FSDP2)
is written shard by shard and never gathered. World rank 0 writes the rest: `ranks.pt` (every rank's RNG
streams, trainable set, optimizer groups, scaler and ΔW-tracker state), `run.json` (position and every
arm's totals), then the manifest, once every rank has finished writing (a gather is the barrier).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from engine.core.errors import FreezeTuiError
from engine.dist.rank_load import on_meta
from engine.dist.agreement import SettingsDiffer
from engine.plans.freeze import apply_trainable
from engine.run.checkpoints import check_layout, checkpoint_root, folder_name, open_temporary, prune, seal
from engine.run.every import parse_every
from engine.train.checkpoint import (
    RUN_FILE,
    Checkpointer,
    _group_names,
    _rng_state,
    _set_rng_state,
    restore_bookkeeping,
    restore_position,
)

if TYPE_CHECKING:
    from engine.train.experiment import Experiment
    from engine.train.setup import Setup

RANKS_FILE = "ranks.pt"
REFUSAL_WAIT_S = 60.0  # how long a rank waits for world rank 0 to say why a resume is refused


def arm_folder(folder: Path, arm_index: int) -> Path:
    """The DCP folder of arm `arm_index` inside a checkpoint."""
    return folder / f"arm-{arm_index}"


class DistCheckpointer(Checkpointer):
    """The Checkpointer of one rank: every rank takes part in each save, at the same step boundary."""

    world: Any = None  # engine.dist.distributed.World, set by DistCheckpoints.attach

    def due(self, step: int) -> bool:
        local = super().due(step)
        if self.every.steps:  # the same count on every rank
            return local
        # a time: world rank 0's clock decides for all, or the ranks would disagree by milliseconds
        flag = [local]
        dist.broadcast_object_list(flag, src=0, group=self.world.ctl)
        return bool(flag[0])

    def save(self, exp: Experiment, epoch: int, batch: int) -> Path:
        world = self.world
        exp._sync()  # every event so far reaches rank 0's log: the checkpoint covers them (after_seq)
        name = folder_name(self.replicate, exp.step, self.seeds)
        exp.control.activity.enter("save", exp.step, epoch)
        where = {"step": exp.step, "epoch": epoch, "batch": batch, "replicate": self.replicate}
        shared = [str(open_temporary(self.root, name)) if world.rank == 0 else None]
        dist.broadcast_object_list(shared, src=0, group=world.ctl)
        tmp = Path(str(shared[0]))
        try:
            if world.replica_index == 0:  # replicas hold the same state: the first replica's shards write it
                save_arm(exp.arms[0], arm_folder(tmp, world.arm_index), world.shard_group)
            states = world.gather(rank_state(exp))  # after every rank's save: the barrier before the seal
            if world.rank == 0:
                totals = {name: t for s in states for name, t in s.pop("totals").items()}
                run = {**where, "last_point": exp._last_point, "nan_stop": exp.nan_stop, "totals": totals}
                (tmp / RUN_FILE).write_text(json.dumps(run))
                torch.save(states, tmp / RANKS_FILE)
                arms = [s["arm"] for s in states[:: world.group_size]]
                manifest = msgspec.structs.replace(
                    self.manifest(exp, epoch, batch, arm_names=arms),
                    world_size=world.size,
                    shards=world.shards,
                    replicas=world.replicas,
                )
                seal(self.root, name, tmp, manifest)
                prune(self.root, self.keep)
        except OSError as exc:
            if world.rank == 0:
                shutil.rmtree(tmp, ignore_errors=True)
            raise FreezeTuiError(f"cannot write checkpoint {self.root / name}: {exc.strerror or exc}") from None
        world.gather(None)  # the checkpoint is in place before any rank trains on
        self.last_step = exp.step
        self.clock.reset()
        return self.root / name


def _stateful(arm) -> list[str]:
    """The arm's tensors that have optimizer state (a tensor joins the state at its first step)."""
    names = {id(p): n for n, p in arm.model.named_parameters()}
    return sorted(names[id(p)] for p in arm.optimizer.state)


@contextlib.contextmanager
def _only_held(arm) -> Iterator[None]:
    """For the duration, exactly the tensors the arm's optimizer holds count as trainable: the state dict
    (ignore_frozen_params) then has those, as a one-process checkpoint does: every other tensor is frozen
    and still equals the initial weights (a tensor frozen by a rule after training stays held)."""
    held = {n for names in _group_names(arm) for n in names}
    flags = {n: p.requires_grad for n, p in arm.model.named_parameters()}
    try:
        for n, p in arm.model.named_parameters():
            p.requires_grad_(n in held)
        yield
    finally:
        for n, p in arm.model.named_parameters():
            p.requires_grad_(flags[n])


HELD = StateDictOptions(ignore_frozen_params=True)
# the loaded dict has exactly the held tensors (the keys came from the same call): the frozen rest is not missing
HELD_LOAD = StateDictOptions(ignore_frozen_params=True, strict=False)


def save_arm(arm, folder: Path, group) -> None:
    """The arm's trained tensors and optimizer state, each rank its own shards, over the arm group's `group`."""
    with _only_held(arm):
        state: dict = {"model": get_model_state_dict(arm.model, options=HELD)}
    if arm.optimizer.state:  # an optimizer with no state yet would get one (a zero step) from the call
        state["optim"] = get_optimizer_state_dict(arm.model, arm.optimizer)
    dcp.save(state, checkpoint_id=folder, process_group=group)


def rank_state(exp: Experiment) -> dict:
    """Everything of this rank that is not its arm's tensors."""
    arm = exp.arms[0]
    tracker = getattr(arm.tracker, "_ever_trained", None)
    return {
        "arm": arm.name,
        "groups": _group_names(arm),
        "stateful": _stateful(arm),
        "trainable": sorted(arm.trainable),
        "stopped": arm.stopped,
        "scaler": arm.scaler.state_dict() if arm.scaler is not None else None,
        "ever_trained": sorted(tracker) if tracker is not None else None,
        "rng": _rng_state(),
        "totals": {
            name: {"t_total": t.t_total, "t_epoch_start": t.t_epoch_start, "epoch_losses": t.epoch_losses}
            for name, t in exp.totals.items()
        },
    }


def restore_rank(exp: Experiment, folder: Path, world: Any) -> None:
    """Put the checkpoint into this rank's freshly built experiment: its arm via DCP, its RNG streams,
    the loop's position and its arm's totals."""
    states = torch.load(folder / RANKS_FILE, weights_only=True)
    mine, arm = states[world.rank], exp.arms[0]
    if mine["arm"] != arm.name:
        raise FreezeTuiError(
            f"checkpoint {folder} has arm {mine['arm']} on rank {world.rank}, this run {arm.name}; "
            "resume with the run's own arms and --shards"
        )
    _restore_arm(arm, arm_folder(folder, world.arm_index), mine, exp.s.lr, world.shard_group)
    restore_position(exp, json.loads((folder / RUN_FILE).read_text()))
    _set_rng_state(mine["rng"])


def _restore_arm(arm, folder: Path, state: dict, lr: float, group) -> None:
    params = dict(arm.model.named_parameters())
    trainable = frozenset(state["trainable"])
    apply_trainable(arm.model, trainable)
    kinds = {k: arm.optimizer.defaults.get(k) for k in ("fused", "foreach")}
    groups = [{"params": [params[n] for n in names]} for names in state["groups"]]
    arm.optimizer = torch.optim.AdamW(groups, lr=lr, **kinds)
    _zero_step(arm.optimizer, [params[n] for n in state["stateful"]])
    with _only_held(arm):
        loaded: dict = {"model": get_model_state_dict(arm.model, options=HELD)}
    if state["stateful"]:
        loaded["optim"] = get_optimizer_state_dict(arm.model, arm.optimizer)
    dcp.load(loaded, checkpoint_id=folder, process_group=group)
    with _only_held(arm):
        set_model_state_dict(arm.model, loaded["model"], options=HELD_LOAD)
    if state["stateful"]:  # hyper-parameters (weight decay per group) come back too
        set_optimizer_state_dict(arm.model, arm.optimizer, loaded["optim"])
    restore_bookkeeping(arm, state, trainable)


def _zero_step(optimizer: torch.optim.Optimizer, tensors: list) -> None:
    """Optimizer state for exactly `tensors` (those that had one when saved), so that the state dict
    that DCP loads into has the checkpoint's keys: one step with zero gradients and lr 0."""
    for p in tensors:
        p.grad = torch.zeros_like(p)
    lrs = [g["lr"] for g in optimizer.param_groups]
    for g in optimizer.param_groups:
        g["lr"] = 0.0
    optimizer.step()
    for g, lr in zip(optimizer.param_groups, lrs):
        g["lr"] = lr
    optimizer.zero_grad(set_to_none=True)


class DistCheckpoints:
    """The checkpoints of one rank of a distributed run. World rank 0 holds the run's session: it checks
    a resume against the checkpoint (settings, model, data, layout) and says to every rank where to
    resume from, or why not (one line, every rank alike)."""

    def __init__(self, cfg, world: Any, setup: Setup, session: Any = None, loading: Any = None) -> None:
        self.cfg, self.world, self.setup = cfg, world, setup
        self.session_checkpoints: Any = None
        self.root = Path(".")  # only world rank 0 makes, seals and prunes the folders; the others write into them
        decision: dict = {"folder": None, "replicate": 0, "error": None}
        if session is not None:  # world rank 0
            self.root = checkpoint_root(session.log_path)
            from engine.train.session_checkpoints import SessionCheckpoints

            # a rank that reads its own weights (engine.dist.rank_load) holds the model on meta: its
            # identity is the checksum of the weights in the files, the same as of those weights loaded
            checksum = loading.checksum(setup.model) if loading is not None and on_meta(setup.model) else None
            self.session_checkpoints = SessionCheckpoints(
                setup, session.log_path, session.emitter, session.log, session.resume_point, checksum
            )
            decision = self._decide(session.resume_point)
        shared = [decision]
        dist.broadcast_object_list(shared, src=0, group=world.ctl)
        decision = shared[0]
        if decision["error"]:  # bad input, the same on every rank: world rank 0 says it, every rank exits 2
            if world.rank != 0:  # leave after rank 0 has said it: a launcher ends the others once one exits
                world.board.wait_done(REFUSAL_WAIT_S)
                time.sleep(1.0)
            raise SettingsDiffer(decision["error"], rank=0)
        self.folder = Path(decision["folder"]) if decision["folder"] else None
        self.replicate = int(decision["replicate"])

    def _decide(self, resume) -> dict:
        if resume is None:
            return {"folder": None, "replicate": 0, "error": None}
        try:
            self.session_checkpoints.check()
            check_layout(resume.folder, resume.manifest, self.world.size, self.cfg.shards, self.cfg.replicas)
        except FreezeTuiError as exc:
            return {"folder": None, "replicate": 0, "error": str(exc)}
        return {"folder": str(resume.folder), "replicate": resume.replicate, "error": None}

    def attach(self, exp: Experiment) -> Experiment:
        if self.cfg.checkpoint_every is None:
            return exp
        zero = self.session_checkpoints
        checkpointer = DistCheckpointer(
            self.root,
            parse_every(self.cfg.checkpoint_every),
            self.cfg.keep_checkpoints,
            replicate=exp.cfg.seed - self.cfg.seed,
            seeds=self.cfg.seeds,
            identity=zero.base if zero is not None else None,
            seq_now=(lambda: zero.emitter.seq - 1) if zero is not None else (lambda: -1),
        )
        checkpointer.world = self.world
        exp.checkpointer = checkpointer
        return exp

    def resume(self) -> tuple[int, Any] | None:
        """run_replicates' `resume`: (the replicate, how to restore its experiment), or None."""
        if self.folder is None:
            return None
        return self.replicate, self._restore

    def _restore(self, exp: Experiment) -> None:
        assert self.folder is not None
        restore_rank(exp, self.folder, self.world)
        if exp.checkpointer is not None:
            exp.checkpointer.last_step = exp.step
        self.world.gather(None)  # every rank has loaded before the log says so
        if self.session_checkpoints is not None:
            self.session_checkpoints.open_log(exp)

