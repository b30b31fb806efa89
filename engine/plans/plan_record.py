"""What `freeze-tui plan` describes, as types: the model, each arm's counts, cost, grid and schedule, and
(added by the memory plan) devices, memory, one rank's share, `--measure`'s timings, checkpoints and
the `--gpus` layout. Built once (engine.plans.describe, engine.train.memory_plan) and read through
attributes by the drawing (freeze_tui.draw.plan_grid, plan_memory) and `study`. No torch.

`plan --json` prints ``msgspec.to_builtins`` of a PlanDescription: the field order below is the key
order it has always printed, and a part that is not there (UNSET) is left out, so its bytes stay as
they were (tests/unit/test_plan_output_pinned.py). The grid is also written into run logs
(run_start.arms[].grid, a plain dict in engine.log.events.ArmRecord): ``PlanGrid.read`` reads it back.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from engine.log.events import AdapterRecord
from engine.plans.layout import Layout
from engine.plans.memory import PlanMemory  # the memory plan's own type, built there (engine.plans.memory)

__all__ = [
    "ArmMeasured",
    "CheckpointPlan",
    "DeviceNeed",
    "PlanArm",
    "PlanChange",
    "PlanDescription",
    "PlanGrid",
    "PlanMeasured",
    "PlanMemory",
    "PlanModel",
    "PlanSettings",
    "RankPlan",
]


class PlanGrid(msgspec.Struct, frozen=True):
    """A plan's block x role grid. cells[block][column] is the state of role roles[column] in that
    block: "train", "lora" (an adapter of any kind), "partial", "later", "frozen" or "absent" (format in
    engine.plans.describe); `other` holds the roles outside the blocks (embed, pos, head, final_norm);
    `tied` the roles that share one tensor ([] if none)."""

    blocks: int
    roles: list[str]
    cells: list[list[str]]
    other: dict[str, str] = {}
    tied: list[str] = []

    @classmethod
    def read(cls, grid: Any) -> PlanGrid | None:
        """A grid as a run log holds it (run_start.arms[].grid); None when it is not one."""
        try:
            return msgspec.convert(grid, cls)
        except msgspec.ValidationError:
            return None


class PlanModel(msgspec.Struct, frozen=True):
    name: str
    arch: str
    n_params: int
    n_blocks: int
    fused_qkv: bool
    tied: bool
    block_size: int


class PlanChange(msgspec.Struct, frozen=True):
    """A scheduled rule: it fires at `at` ("step" or "epoch") `n`; the arm then trains `trainable` parameters."""

    at: str
    n: int
    rule: str
    trainable: int


class ArmMeasured(msgspec.Struct, frozen=True):
    """`plan --measure`: an arm's mean step time (s) on its device, its measured r vs the baseline arm
    and the FLOP model's r."""

    device: str
    t_step: float
    r: float
    r_flop: float


class PlanArm(msgspec.Struct, frozen=True):
    """One arm: the fields of its run_start record (engine.log.events.ArmRecord, an adapter kind's own
    record included: a new kind adds its field here too, a test checks), its trained share in % and
    its schedule; then what the memory plan adds."""

    name: str
    spec: str
    trainable: int
    total: int
    flop_ratio: float
    r_pred: float
    grid: PlanGrid
    lora: AdapterRecord | UnsetType = UNSET
    dora: AdapterRecord | UnsetType = UNSET
    pct: float = 0.0
    schedule: list[PlanChange] = []
    device: str | UnsetType = UNSET
    memory: PlanMemory | UnsetType = UNSET
    rank_memory: PlanMemory | UnsetType = UNSET
    measured: ArmMeasured | UnsetType = UNSET


class DeviceNeed(msgspec.Struct, frozen=True):
    """What the arms placed on a device need against its budget (None: free memory unknown, not checked)."""

    needed: int
    budget: int | None
    fits: bool


class PlanSettings(msgspec.Struct, frozen=True):
    batch_size: int
    block_size: int
    dtype: str


class RankPlan(msgspec.Struct, frozen=True):
    """--shards K / --replicas R: the layout, and the host bytes a rank holds while it loads, reading its
    own weights (safetensors, one tensor at a time) or whole checkpoints."""

    shards: int
    replicas: int
    host_loading_own: int
    host_loading_whole: int


class PlanMeasured(msgspec.Struct, frozen=True):
    """`plan --measure`: timed steps per arm after `warmup` untimed ones, r against `baseline`; `note`
    says why measured and FLOP-model r differ."""

    steps: int
    warmup: int
    baseline: str
    note: str


class CheckpointPlan(msgspec.Struct, frozen=True):
    """What `plan` says of checkpoints (engine.run.checkpoints.checkpoint_plan): the folder, --checkpoint-every
    (None: off) and --keep-checkpoints, bytes per arm, per checkpoint and for the kept ones, and with
    --shards K what each of an arm's ranks writes."""

    folder: str
    every: str | None
    keep: int
    per_arm: dict[str, int]
    per_checkpoint: int
    kept: int
    shards: int
    per_rank: dict[str, int]


class PlanDescription(msgspec.Struct, frozen=True):
    """What `plan` shows; everything after `arms` comes from the memory plan and the plan command."""

    model: PlanModel
    arms: list[PlanArm]
    placement: dict[str, str] | UnsetType = UNSET
    devices: dict[str, DeviceNeed] | UnsetType = UNSET
    memory_problem: str | None | UnsetType = UNSET
    settings: PlanSettings | UnsetType = UNSET
    rank: RankPlan | UnsetType = UNSET
    measured: PlanMeasured | UnsetType = UNSET
    checkpoints: CheckpointPlan | UnsetType = UNSET
    layout: Layout | UnsetType = UNSET
