"""A run over several processes (torchrun): the world is arms x replicas x shards, one 3-D DeviceMesh
(`arm`, `replica`, `shard`) (torch).

Each arm group trains one arm over its R x K ranks: with --shards K > 1 the arm is sharded with FSDP2
(`fully_shard`) over the `shard` dim; with --replicas R > 1 it is replicated over the `replica` dim
(FSDP2's HSDP on the 2-D (`replica`, `shard`) mesh: plain data parallelism when K = 1). Rank
replica x K + shard of a group takes that equal slice of every batch (the gradient is then the full
batch's). Every group draws the same seeded batch order, so no batch travels. Per step, a group
reduces its values (loss: mean of the slices; dt: the slowest rank; squared norms: summed over the
shards only, since replicas hold the same weights); at every sync point the groups' events are
gathered to world rank 0, which merges them and is the only emitter. Failures go through the
rendezvous store (`FailureBoard`).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from datetime import timedelta
from typing import Any, cast

import torch
import torch.distributed as dist

from engine.run.config import RunConfig
from engine.core.errors import FreezeTuiError
from engine.dist.agreement import check_same_run, run_identity
from engine.dist.board import FailureBoard
from engine.dist.host_alloc import fix_mmap_threshold
from engine.dist.rank_load import RankLoad, on_meta, rank_loading, to_empty_keeping_buffers, weights_source
from engine.dist.rank_memory import check_rank
from engine.log import events as ev
from engine.log.merge import merge_parts
from engine.run.replicates import run_replicates
from engine.train.devices import copy_to, on_device
from engine.train.experiment import Experiment, weights_checksum
from engine.train.memory_plan import planned_run
from engine.train.setup import OffStepClock, prepare, run_start_event
from engine.train.topology import Agreement

# A backstop only: a rank that fails tells the others through the store at once. A group waits at a
# sync point for the slowest arm's validation pass or samples, which on a large model takes minutes.
COLLECTIVE_TIMEOUT = timedelta(seconds=float(os.environ.get("FREEZE_TUI_COLLECTIVE_TIMEOUT", "1800")))


@dataclasses.dataclass
class World:
    rank: int
    size: int
    arm_index: int
    shard_index: int
    shards: int
    device: torch.device
    mesh: Any  # DeviceMesh (arm, replica, shard)
    ctl: Any  # gloo process group for the event exchange
    board: FailureBoard
    replica_index: int = 0
    replicas: int = 1

    @property
    def shard_group(self):
        return self.mesh["shard"].get_group()

    @property
    def replica_group(self):
        return self.mesh["replica"].get_group()

    @property
    def group_size(self) -> int:
        """Ranks that train this rank's arm (replicas x shards)."""
        return self.replicas * self.shards

    @property
    def first_of_arm(self) -> bool:
        """The arm group's first rank: the one that sends its events, saves and counts its memory."""
        return self.replica_index == 0 and self.shard_index == 0

    @property
    def data_mesh(self) -> Any:
        """The mesh FSDP2 wraps an arm over: (`shard`) alone, or (`replica`, `shard`) for HSDP."""
        return self.mesh["replica", "shard"] if self.replicas > 1 else self.mesh["shard"]

    def gather(self, value) -> list:
        out: list = [None] * self.size
        dist.all_gather_object(out, value, group=self.ctl)
        return out

    def close(self) -> None:
        """Every rank has left its last collective: then the groups may go."""
        self.board.wait_all("finished", self.size)
        self.board.stop()  # no thread of ours in a store call once the process may end (FailureBoard.stop)
        dist.destroy_process_group()


def rank_device(name: str, local_rank: int) -> torch.device:
    """--device names the kind; the index is the process's local rank (one GPU per process)."""
    kind = name.split(":")[0]
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "mps":
        raise FreezeTuiError("--device mps has no distributed backend; use --device cpu or cuda")
    if kind == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise FreezeTuiError(
                f"local rank {local_rank} has no GPU: {torch.cuda.device_count()} visible; "
                "start at most one process per GPU (--nproc-per-node)"
            )
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_world(cfg: RunConfig) -> World:
    from torch.distributed.device_mesh import init_device_mesh

    device = rank_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
    board = FailureBoard(dist.get_rank(), dist.get_world_size())  # after the group: rank 0 may host the store
    # before the mesh: ranks with different arms or shards would build different meshes and hang
    identities: list = [None] * dist.get_world_size()
    dist.all_gather_object(identities, run_identity(cfg))
    check_same_run(identities)
    shape = (len(cfg.arms), cfg.replicas, cfg.shards)
    mesh = init_device_mesh(device.type, shape, mesh_dim_names=("arm", "replica", "shard"))
    ctl = dist.group.WORLD if backend == "gloo" else dist.new_group(backend="gloo", timeout=COLLECTIVE_TIMEOUT)
    return World(
        rank=dist.get_rank(),
        size=dist.get_world_size(),
        arm_index=mesh.get_local_rank("arm"),
        shard_index=mesh.get_local_rank("shard"),
        shards=cfg.shards,
        device=device,
        mesh=mesh,
        ctl=ctl,
        board=board,
        replica_index=mesh.get_local_rank("replica"),
        replicas=cfg.replicas,
    )


class MeshRanks:
    """The topology of one rank: its arm (its slice of the batch when sharded) on its device; its events
    leave at sync points, where world rank 0 merges every group's and is the only emitter."""

    def __init__(self, world: World, loading: RankLoad | None = None) -> None:
        self.world = world
        self.loading = loading  # this rank reads only its own weights (None: the whole model was loaded)
        self.outbox: list = []
        self.final_emit = None
        self.checksums: dict[str, str] = {}  # this rank's arm's initial weights, as copied
        self.last = Agreement(stop=False, nan_stop=False, active=True)
        # before training every arm is the same: arm group 0 samples for all (every rank of the group
        # runs the forward passes -- a sharded arm needs them all, replicas compute the same -- and
        # its first rank sends the events)
        self.samples_before_training = world.arm_index == 0

    def own(self, plans: list) -> list:
        return [plans[self.world.arm_index]]

    def place(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        if self.loading is not None:  # the arm's own weights from the files (a sharded one after fully_shard)
            model = self.loading.place(model, device if self.world.shards == 1 else torch.device("cpu"))
        # a wrapped arm is never whole on its device: fully_shard moves each rank's shards, block by block
        return model if self.world.group_size > 1 else model.to(device)

    def wrap(self, name: str, model: torch.nn.Module, n_blocks: int) -> torch.nn.Module:
        loading = self.loading if self.loading is not None and on_meta(model) else None
        if loading is None:
            self.checksums[name] = weights_checksum(model)  # before sharding: the weights as copied
        elif self.world.first_of_arm:  # the group's first rank says it for the group
            self.checksums[name] = loading.checksum(model)
        if self.world.group_size == 1:
            return model
        from torch.distributed.fsdp import fully_shard

        # every arm alike: the same mesh shape and options. Unsharded (replicas only) there is nothing
        # to gather again in backward, so the weights stay whole after forward, as under DDP
        mesh, reshard = self.world.data_mesh, self.world.shards > 1
        for block in _blocks(model, n_blocks):
            fully_shard(block, mesh=mesh, reshard_after_forward=reshard)
        fully_shard(model, mesh=mesh, reshard_after_forward=reshard)  # the same module, its class now FSDP's
        if loading is not None:
            loading.fill_shards(model, self.world.device, self.world.shard_index, self.world.shards)
        return model

    def batches(self, batch: torch.Tensor, devices: list[torch.device]) -> dict[torch.device, torch.Tensor]:
        width = len(batch) // self.world.group_size
        start = (self.world.replica_index * self.world.shards + self.world.shard_index) * width
        return copy_to(batch[start : start + width], devices)

    def launching_on(self, device: torch.device):
        return on_device(device)

    def reduce(self, losses: list, dts: list, dw_squares: list) -> tuple[list, list, list]:
        if self.world.group_size == 1:
            return losses, dts, dw_squares
        world, device = self.world, self.world.device
        sums = torch.tensor(losses, dtype=torch.float64, device=device)
        times = torch.tensor(dts, dtype=torch.float64, device=device)
        squares = torch.tensor(dw_squares, dtype=torch.float64, device=device)
        # loss and time over the whole group (shards, then replicas); the squares over the shards only:
        # every replica holds the same weights, so summing them too would count each R times
        for group, size in ((world.shard_group, world.shards), (world.replica_group, world.replicas)):
            if size > 1:
                dist.all_reduce(sums, group=group)
                dist.all_reduce(times, op=dist.ReduceOp.MAX, group=group)  # an arm is as fast as its slowest rank
        if world.shards > 1:
            dist.all_reduce(squares, group=world.shard_group)
        return (sums / world.group_size).tolist(), times.tolist(), squares.tolist()

    def emitter(self, emit):
        """The experiment's events wait here for the next sync point; `emit` (the log's, on world rank 0)
        gets the merged ones."""
        self.final_emit = emit
        return self.outbox.append

    def sync(self, local: Agreement) -> Agreement:
        """Every rank: its events (only a group's first rank sends them; the others hold copies) and
        its stop/arm state go to all; world rank 0 emits the merged events; all agree on stopping."""
        mine = self.outbox if self.world.first_of_arm else []
        payload = {"events": list(mine), "stop": local.stop, "nan_stop": local.nan_stop, "active": local.active}
        self.outbox.clear()
        gathered = self.world.gather(payload)
        if self.world.rank == 0 and self.final_emit is not None:
            for event in merge_parts([p["events"] for p in gathered]):
                self.final_emit(event)
        self.last = Agreement(
            stop=any(p["stop"] for p in gathered),
            nan_stop=any(p["nan_stop"] for p in gathered),
            active=any(p["active"] for p in gathered),
        )
        return self.last

    def agreed(self, local: Agreement) -> Agreement:
        """What all ranks agreed at the last sync point: a rank never stops alone."""
        return self.last

    def whole_model(self, model: Any, initial: torch.nn.Module) -> Any:
        """A wrapped arm gathers its full weights (every rank of the group takes part); its first rank saves."""
        if self.world.group_size == 1:
            return _writes_here(model)
        # one tensor at a time through the device: never the whole model there at once
        full = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).cpu() for k, v in model.state_dict().items()}
        if not self.world.first_of_arm:
            return None
        plain = copy.deepcopy(initial)
        if on_meta(plain):  # the rank never held the whole model: its weights come from `full`
            to_empty_keeping_buffers(plain, torch.device("cpu"))
        plain.load_state_dict(full)
        return _writes_here(plain)

    def arm_memory(self, mine: dict) -> dict:
        # a DTensor counts its whole size: a group's first rank reports the whole arm, as one process would
        mine = mine if self.world.first_of_arm else {}
        return {k: v for part in self.world.gather(mine) for k, v in part.items()}

    def measure_part(self) -> tuple[int, int]:
        """Replicas hold the same weights: each does its part of a validation pass or sampling phase (every
        shard of a replica the same part, as FSDP2 needs all of them in each forward)."""
        return self.world.replica_index, self.world.replicas

    def gather_parts(self, mine: Any) -> list:
        if self.world.replicas == 1:
            return [mine]
        out: list = [None] * self.world.replicas
        dist.all_gather_object(out, mine, group=self.world.replica_group)  # in replica order
        return out


def _writes_here(model: torch.nn.Module) -> torch.nn.Module:
    """transformers' save_pretrained writes only on world rank 0 once a process group exists; an arm's
    first rank is the one that saves it, whatever its world rank (a copy made of it, such as a LoRA arm's
    merged model, keeps this)."""
    for module in model.modules():
        if hasattr(module, "should_save_on_this_rank"):
            setattr(module, "should_save_on_this_rank", _as_asked)  # noqa: B010  # shadows the method
    return model


def _as_asked(is_main_process: bool) -> bool:
    return is_main_process


def _blocks(model: torch.nn.Module, n_blocks: int) -> list[torch.nn.Module]:
    """The transformer blocks (the ModuleList of n_blocks), each its own FSDP unit: one block's
    weights are gathered at a time."""
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n_blocks and n_blocks > 0:
            return list(module)
    return []


def drive(cfg: RunConfig, emit, control, world: World, session: Any = None) -> tuple[str, dict]:
    """One rank's whole run; `emit` is the log's emitter on world rank 0 and a no-op elsewhere;
    `session`: world rank 0's RunSession (its log and resume point, for checkpoints)."""
    fix_mmap_threshold()  # FSDP2's freed buffers go back to the system (engine.dist.host_alloc)
    # every rank plans every arm once (the run_start it writes names them all) and places them all on its
    # own device; it checks the memory of its own arm only (a sharded arm: this rank's share of it)
    own_name = cfg.arms[world.arm_index][0]
    planned = planned_run(cfg, [world.device])
    loading = rank_loading(cfg, planned, own_name, world.shards)
    check_rank(cfg, planned, own_name, world.device, own_weights=loading is not None)  # before anything loads
    setup = prepare(
        cfg, control.activity, planned=planned, memory_check=False, loader=loading.skeleton if loading else None
    )
    ranks = world.gather(planned.only([own_name]).placement)  # every arm on its ranks' device
    setup.placement = {name: torch.device(d) for part in ranks for name, d in part.items()}
    if world.shards == 1:
        setup.memory = dict(planned.memory)
    weights = {name: how for part in world.gather({own_name: weights_source(loading)}) for name, how in part.items()}

    def run_start(experiment: Experiment) -> ev.RunStart:  # every rank takes part in the gather
        mine = cast(MeshRanks, experiment.topology).checksums
        checksums = {name: c for part in world.gather(mine) for name, c in part.items()}
        start = run_start_event(setup, checksums)
        start.config.update(world_size=world.size, backend=dist.get_backend(), rank_weights=weights)
        return start

    # replicates as in one process; the status is the same on every rank: stopping is agreed at sync points
    from engine.dist.dist_checkpoint import DistCheckpoints

    checkpoints = DistCheckpoints(cfg, world, setup, session, loading)  # every rank: where a resume starts, or why not
    status, experiment = run_replicates(
        cfg,
        lambda c: checkpoints.attach(Experiment(c, setup, emit, control, MeshRanks(world, loading))),
        emit,
        run_start,
        resume=checkpoints.resume(),
    )
    if cfg.save:
        experiment.save(cfg.save)
    experiment._sync()
    return status, {"state_bytes": experiment.arm_memory(), PHASE_TIMES: slowest_phase_times(world, setup.times)}


PHASE_TIMES = "phase_times"  # drive's result: the OffStepClock for run_end (not a summary column)


def slowest_phase_times(world: World, times: OffStepClock) -> OffStepClock:
    """run_end's sampling_s and validation_s: the groups sample and validate side by side and wait for each
    other at the sync point after, so the run spent the slowest rank's seconds there (every rank calls this)."""
    every = world.gather((times.sampling_s, times.validation_s))
    return OffStepClock(sampling_s=max(s for s, _ in every), validation_s=max(v for _, v in every))
