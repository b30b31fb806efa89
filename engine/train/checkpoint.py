"""A run's checkpoints, the torch side (issue 21): write every arm's trained tensors (safetensors),
optimizer, GradScaler and ΔW-tracker state, the loop's position and totals and every RNG stream; read
them back into a freshly built experiment so that it continues exactly.

Only the tensors an arm's optimizer holds are saved: every other tensor is frozen, so it still equals
the initial weights that a resume loads again (the manifest's model hash checks that they are the same).
Where the folder goes, the manifest and atomic writing are engine.run.checkpoints (no torch).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import torch
from safetensors.torch import load_file, save_file

from engine.core.errors import FreezeTuiError
from engine.plans.freeze import apply_trainable
from engine.run.accumulate import ArmTotals
from engine.run.checkpoints import (
    CheckpointManifest,
    Clock,
    RunIdentity,
    folder_name,
    prune,
    read_manifest,
    write_atomically,
)
from engine.run.every import Every

if TYPE_CHECKING:
    from engine.train.setup import Setup

Experiment = Any  # engine.train.experiment.Experiment (which imports this module)

RUN_FILE = "run.json"
RNG_FILE = "rng.pt"


def model_identity(setup: Setup, checksum: str) -> str:
    """The initial weights (their checksum) and the config that shapes the model (not where it was loaded from)."""
    where = ("_name_or_path", "transformers_version")
    config = {k: v for k, v in setup.model.config.to_dict().items() if k not in where}
    h = hashlib.sha256(checksum.encode())
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def data_identity(setup: Setup) -> str:
    """The token cache's key: a hash of the text's bytes and the tokenizer."""
    from engine.train.tokens import cache_key

    return cache_key(setup.corpus, setup.tokenizer)


@dataclass
class Checkpointer:
    """Writes the checkpoints of one replicate of a run into `root`."""

    root: Path
    every: Every
    keep: int
    replicate: int
    seeds: int
    identity: RunIdentity | None  # in every checkpoint's manifest (None: a distributed rank that writes none)
    seq_now: Callable[[], int]  # the seq of the last event emitted: what a checkpoint covers
    last_step: int = 0
    clock: Clock = field(default_factory=Clock)

    def due(self, step: int) -> bool:
        return step > self.last_step and self.every.due(step - self.last_step, self.clock.since())

    def manifest(
        self, exp: Experiment, epoch: int, batch: int, arm_names: list[str] | None = None
    ) -> CheckpointManifest:
        """The manifest of a checkpoint at this position (seal adds the format and the files' sha256)."""
        identity = self.identity
        assert identity is not None
        return CheckpointManifest(
            **msgspec.structs.asdict(identity),  # the run's part, whatever fields it has
            step=exp.step,
            epoch=epoch,
            batch=batch,
            replicate=self.replicate,
            after_seq=self.seq_now(),
            arm_names=[a.name for a in exp.arms] if arm_names is None else arm_names,
        )

    def save(self, exp: Experiment, epoch: int, batch: int) -> Path:
        name = folder_name(self.replicate, exp.step, self.seeds)
        exp.control.activity.enter("save", exp.step, epoch)  # writing a checkpoint
        where = {"step": exp.step, "epoch": epoch, "batch": batch, "replicate": self.replicate}
        manifest = self.manifest(exp, epoch, batch)
        try:
            folder = write_atomically(self.root, name, lambda tmp: write_state(exp, tmp, where), manifest)
        except OSError as exc:
            raise FreezeTuiError(f"cannot write checkpoint {self.root / name}: {exc.strerror or exc}") from None
        prune(self.root, self.keep)
        self.last_step = exp.step
        self.clock.reset()
        return folder


def _group_names(arm) -> list[list[str]]:
    names = {id(p): n for n, p in arm.model.named_parameters()}
    return [[names[id(p)] for p in g["params"]] for g in arm.optimizer.param_groups]


def write_state(exp: Experiment, folder: Path, where: dict) -> None:
    for i, arm in enumerate(exp.arms):
        groups = _group_names(arm)
        params = dict(arm.model.named_parameters())
        held = sorted({n for g in groups for n in g})
        save_file({n: params[n].detach().cpu().contiguous() for n in held}, str(folder / f"arm-{i}.safetensors"))
        tracker = getattr(arm.tracker, "_ever_trained", None)
        torch.save(
            {
                "optimizer": arm.optimizer.state_dict(),
                "groups": groups,
                "trainable": sorted(arm.trainable),
                "stopped": arm.stopped,
                "scaler": arm.scaler.state_dict() if arm.scaler is not None else None,
                "ever_trained": sorted(tracker) if tracker is not None else None,
            },
            folder / f"arm-{i}.state.pt",
        )
    totals = {
        name: {"t_total": t.t_total, "t_epoch_start": t.t_epoch_start, "epoch_losses": t.epoch_losses}
        for name, t in exp.totals.items()
    }
    run = {**where, "last_point": exp._last_point, "nan_stop": exp.nan_stop, "totals": totals}
    (folder / RUN_FILE).write_text(json.dumps(run))
    torch.save(_rng_state(), folder / RNG_FILE)


def _rng_state() -> dict:
    np_state: tuple = tuple(np.random.get_state())
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))


def restore(exp: Experiment, folder: Path) -> dict:
    """Put the checkpoint's state into `exp` (built as for a fresh start); returns its run.json."""
    manifest = read_manifest(folder)
    if manifest.arm_names != [a.name for a in exp.arms]:
        raise FreezeTuiError(
            f"checkpoint {folder} holds arms {', '.join(manifest.arm_names)}, the run has "
            f"{', '.join(a.name for a in exp.arms)}; resume with the run's own arms"
        )
    for i, arm in enumerate(exp.arms):
        _restore_arm(arm, folder, i, exp.s.lr)
    run = json.loads((folder / RUN_FILE).read_text())
    restore_position(exp, run)
    _set_rng_state(torch.load(folder / RNG_FILE, weights_only=True))
    return run


def restore_position(exp: Experiment, run: dict) -> None:
    """The loop's position and totals from a checkpoint's run.json (a distributed rank: its own arms')."""
    exp.step = int(run["step"])
    point = run["last_point"]
    exp._last_point = (int(point[0]), int(point[1])) if point is not None else None
    exp.nan_stop = bool(run["nan_stop"])
    for name, t in run["totals"].items():
        if name not in exp.totals:
            continue  # another rank's arm
        losses = [float(v) for v in t["epoch_losses"]]
        exp.totals[name] = ArmTotals(float(t["t_total"]), float(t["t_epoch_start"]), losses)
    exp.resume_at = (int(run["epoch"]), int(run["batch"]))


def _restore_arm(arm, folder: Path, i: int, lr: float) -> None:
    state = torch.load(folder / f"arm-{i}.state.pt", weights_only=True)
    weights = load_file(str(folder / f"arm-{i}.safetensors"))
    params = dict(arm.model.named_parameters())
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor.to(params[name].device))
    trainable = frozenset(state["trainable"])
    apply_trainable(arm.model, trainable)
    fused = arm.optimizer.defaults.get("fused")
    groups = [{"params": [params[n] for n in names]} for names in state["groups"]]
    arm.optimizer = torch.optim.AdamW(groups, lr=lr, fused=fused)
    arm.optimizer.load_state_dict(state["optimizer"])  # hyper-parameters (weight decay, lr) come back too
    restore_bookkeeping(arm, state, trainable)


def restore_bookkeeping(arm, state: dict, trainable: frozenset) -> None:
    """An arm's state beside its tensors: trainable set, why it stopped, loss scaler, ΔW tracker."""
    arm.trainable = trainable
    arm.stopped = str(state["stopped"])
    if arm.scaler is not None and state["scaler"] is not None:
        arm.scaler.load_state_dict(state["scaler"])
    if state["ever_trained"] is not None and arm.tracker is not None:
        arm.tracker._ever_trained = set(state["ever_trained"])
