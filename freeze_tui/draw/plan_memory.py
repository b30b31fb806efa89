"""`plan`'s memory plan and `--measure` timings, drawn as Rich tables (the engine adds them to the plan
description: engine.train.memory_plan.add_memory_plan)."""

from __future__ import annotations

from msgspec import UnsetType
from msgspec.structs import astuple
from rich.console import Group
from rich.table import Table
from rich.text import Text

from engine.plans.memory import fmt_bytes
from engine.plans.plan_record import DeviceNeed, PlanArm, PlanDescription, PlanMeasured, PlanMemory, RankPlan

PARTS = PlanMemory.__struct_fields__  # the columns: weights, grads, optimizer, activations, total


def memory_cells(memory: PlanMemory | UnsetType) -> list[str]:
    """Its parts (PARTS) as sizes; "-" for an arm the memory plan has not reached."""
    if isinstance(memory, UnsetType):
        return ["-"] * len(PARTS)
    return [fmt_bytes(n) for n in astuple(memory)]


def render_memory(desc: PlanDescription) -> Group:
    """The memory table, one line per device (fits or not), and the measured table when present
    (a description without its memory plan draws nothing)."""
    s = desc.settings
    if isinstance(s, UnsetType) or isinstance(desc.devices, UnsetType):
        return Group()
    table = Table(title=f"memory plan (batch {s.batch_size} x {s.block_size} tokens, {s.dtype})", title_justify="left")
    for col in ("arm", "device", *PARTS):
        table.add_column(col, justify="left" if col in ("arm", "device") else "right")
    for arm in desc.arms:
        table.add_row(arm.name, arm.device or "-", *memory_cells(arm.memory))
    parts: list = [table, *device_lines(desc.devices)]
    if desc.rank:
        parts.append(rank_table(desc.rank, desc.arms))
    if desc.measured:
        parts.append(measured_table(desc.measured, desc.arms))
    return Group(*parts)


def device_lines(devices: dict[str, DeviceNeed]) -> list[Text]:
    lines = []
    for name, d in devices.items():
        if d.budget is None:
            lines.append(Text(f"{name}: needs {fmt_bytes(d.needed)} (free memory unknown; not checked)"))
            continue
        verdict = ("fits", "green") if d.fits else ("does NOT fit: run would refuse", "bold red")
        line = Text(f"{name}: needs {fmt_bytes(d.needed)} of {fmt_bytes(d.budget)} available - ")
        lines.append(line.append(*verdict))
    return lines


def measured_table(m: PlanMeasured, arms: list[PlanArm]) -> Group:
    table = Table(
        title=f"measured: {m.steps} steps per arm after {m.warmup} warm-up, r vs {m.baseline}",
        title_justify="left",
    )
    for col in ("arm", "device", "step", "r measured", "r FLOP model"):
        table.add_column(col, justify="left" if col in ("arm", "device") else "right")
    for arm in arms:
        t = arm.measured
        if isinstance(t, UnsetType):
            continue
        r = "baseline" if arm.name == m.baseline else f"{100 * t.r:.1f} %"
        table.add_row(arm.name, t.device, f"{1000 * t.t_step:.1f} ms", r, f"{100 * t.r_flop:.1f} %")
    return Group(table, Text(f"why they differ: {m.note}", style="dim"))


def rank_table(rank: RankPlan, arms: list[PlanArm]) -> Group:
    """With --shards K: one rank's share of each arm, and what a rank holds on the host while it loads."""
    layout = f"--shards {rank.shards}" + (f" --replicas {rank.replicas}" if rank.replicas > 1 else "")
    table = Table(
        title=f"one rank of {rank.shards * rank.replicas} ({layout}), a distributed run", title_justify="left"
    )
    for col in ("arm", *PARTS):
        table.add_column(col, justify="left" if col == "arm" else "right")
    for arm in arms:
        table.add_row(arm.name, *memory_cells(arm.rank_memory))
    host = Text(
        f"host while a rank loads: {fmt_bytes(rank.host_loading_own)} (its own weights read from safetensors, "
        f"one tensor at a time); {fmt_bytes(rank.host_loading_whole)} from other checkpoints. "
        "The ranks of a node share its host memory."
    )
    return Group(table, host)
