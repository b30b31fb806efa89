"""Training throughput per arm from a log: tokens/s over the arm's own step times and MFU, the FLOP
model's FLOPs per second of that arm over its devices' dense peak (issue 22). Pure; no torch.

run_start.config["throughput"] (runs since issue 22) holds per arm its FLOPs per token
(engine.plans.flops: its own plan, the run's block size) and its devices' peak TFLOP/s (None on CPU
or an unknown GPU without --peak-tflops); older logs have neither, and get no figures.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from engine.log import events as ev
from engine.log.state import RunState

RECORD = "throughput"  # the run_start.config entry


def read_record(state: RunState) -> ev.ThroughputRecord | None:
    """The run's throughput record, or None (a log from before issue 22, or a malformed one)."""
    return state.settings.throughput


def arm_throughput(state: RunState, name: str) -> ev.ArmThroughput | None:
    """tokens/s and MFU of one arm so far; None for a log without the record or an arm without steps."""
    record = read_record(state)
    arm = state.arms.get(name)
    if record is None or arm is None:
        return None
    steps = sum(1 for dt in arm.dts if not math.isnan(dt))
    seconds = arm.time_total
    tokens_per_step = state.tokens_per_step
    if not steps or not seconds > 0 or math.isnan(tokens_per_step):
        return None
    tokens_per_s = steps * tokens_per_step / seconds
    flops = _num(record.flops_per_token.get(name))
    peak = _num(record.peak_tflops.get(name))
    mfu = flops * tokens_per_s / (peak * 1e12) if peak > 0 and not math.isnan(flops) else None
    return ev.ArmThroughput(tokens_per_s=tokens_per_s, mfu=mfu)


def throughput_extras(state: RunState) -> dict[str, dict[str, Any]]:
    """run_end.summary's per-arm extras {tokens_per_s: {arm: v}, mfu: {arm: v}} for the arms that have them."""
    found = {name: arm_throughput(state, name) for name in state.arms}
    out: dict[str, dict[str, Any]] = {key: {} for key in ev.ArmThroughput.__struct_fields__}
    for name, figures in found.items():
        if figures is not None:
            for key, value in msgspec.to_builtins(figures).items():
                out[key][name] = value
    return {key: per_arm for key, per_arm in out.items() if per_arm}


def _num(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
