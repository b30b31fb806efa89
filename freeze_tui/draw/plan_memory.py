"""`plan`'s memory plan and `--measure` timings, drawn as Rich tables (the engine adds them to the plan
description: engine.train.memory_plan.add_memory_plan)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from engine.plans.memory import fmt_bytes

PARTS = ("weights", "grads", "optimizer", "activations", "total")


def render_memory(desc: dict) -> Group:
    """The memory table, one line per device (fits or not), and the measured table when present."""
    s = desc["settings"]
    table = Table(
        title=f"memory plan (batch {s['batch_size']} x {s['block_size']} tokens, {s['dtype']})", title_justify="left"
    )
    for col in ("arm", "device", *PARTS):
        table.add_column(col, justify="left" if col in ("arm", "device") else "right")
    for arm in desc["arms"]:
        table.add_row(arm["name"], arm["device"], *(fmt_bytes(arm["memory"][p]) for p in PARTS))
    parts: list = [table, *device_lines(desc["devices"])]
    if desc.get("rank"):
        parts.append(rank_table(desc))
    if desc.get("measured"):
        parts.append(measured_table(desc))
    return Group(*parts)


def device_lines(devices: dict) -> list[Text]:
    lines = []
    for name, d in devices.items():
        if d["budget"] is None:
            lines.append(Text(f"{name}: needs {fmt_bytes(d['needed'])} (free memory unknown; not checked)"))
            continue
        verdict = ("fits", "green") if d["fits"] else ("does NOT fit: run would refuse", "bold red")
        line = Text(f"{name}: needs {fmt_bytes(d['needed'])} of {fmt_bytes(d['budget'])} available - ")
        lines.append(line.append(*verdict))
    return lines


def measured_table(desc: dict) -> Group:
    m = desc["measured"]
    table = Table(
        title=f"measured: {m['steps']} steps per arm after {m['warmup']} warm-up, r vs {m['baseline']}",
        title_justify="left",
    )
    for col in ("arm", "device", "step", "r measured", "r FLOP model"):
        table.add_column(col, justify="left" if col in ("arm", "device") else "right")
    for arm in desc["arms"]:
        t = arm["measured"]
        r = "baseline" if arm["name"] == m["baseline"] else f"{100 * t['r']:.1f} %"
        table.add_row(arm["name"], t["device"], f"{1000 * t['t_step']:.1f} ms", r, f"{100 * t['r_flop']:.1f} %")
    return Group(table, Text(f"why they differ: {m['note']}", style="dim"))


def rank_table(desc: dict) -> Group:
    """With --shards K: one rank's share of each arm, and what a rank holds on the host while it loads."""
    rank = desc["rank"]
    layout = f"--shards {rank['shards']}" + (f" --replicas {rank['replicas']}" if rank.get("replicas", 1) > 1 else "")
    ranks = rank["shards"] * rank.get("replicas", 1)
    table = Table(title=f"one rank of {ranks} ({layout}), a distributed run", title_justify="left")
    for col in ("arm", *PARTS):
        table.add_column(col, justify="left" if col == "arm" else "right")
    for arm in desc["arms"]:
        table.add_row(arm["name"], *(fmt_bytes(arm["rank_memory"][p]) for p in PARTS))
    host = Text(
        f"host while a rank loads: {fmt_bytes(rank['host_loading_own'])} (its own weights read from safetensors, "
        f"one tensor at a time); {fmt_bytes(rank['host_loading_whole'])} from other checkpoints. "
        "The ranks of a node share its host memory."
    )
    return Group(table, host)
