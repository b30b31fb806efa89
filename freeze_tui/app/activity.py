"""What the engine is doing, in words, and its GPU readings, compactly: pure functions of RunState
for the header and the Time view (the engine logs phases and numbers, never screen text)."""

from __future__ import annotations

import math

from engine.log.state import ActivityRecord, RunState
from freeze_tui.draw import fmt

SLOW_STEP_S = 3.0  # a step that runs longer than this (and than 3 usual ones) is named: "step 37 running 12 s"
CUDA_FLUSH_STEPS = 20  # off CPU the engine reads values every 20 steps and waits for them at the 20th
GIB = 2**30
_WORDS = {
    "starting": "starting (libraries, data files)",
    "load_model": "loading model",
    "tokenize": "tokenizing data",
    "arms": "copying model for each arm",
    "save": "saving weights",
    "finish": "finishing",
}


def seconds(s: float) -> str:
    return f"{int(s)} s" if s < 60 else fmt.duration(s)


def phase_age(state: RunState, ticking: float = 0.0) -> float:
    """Seconds the engine has been in its current phase: as of its latest heartbeat, plus the log time
    since then, plus `ticking` (wall seconds since the last event, for a live run or a watched log)."""
    act = state.activity
    if act is None or math.isnan(act.seconds):
        return math.nan
    return act.seconds + max(0.0, state.t_last - act.t) + max(0.0, ticking)


def activity_label(state: RunState, ticking: float = 0.0) -> str:
    """'loading model 14 s', 'step 37 running 12 s', 'sampling after epoch 2 · 5 s'; "" when the plain
    status says it all (no heartbeat, a fast step, a phase this version does not know)."""
    act, age = state.activity, phase_age(state, ticking)
    if act is None or math.isnan(age):
        return ""
    if act.phase == "step":  # named only when slow, and not once its own step event has arrived
        slow = age >= max(SLOW_STEP_S, 3 * usual_wait(state)) and act.step > state.step
        return f"step {act.step + 1} running {seconds(age)}" if slow else ""
    words = phase_words(act)
    if not words:
        return ""
    return f"{words} · {seconds(age)}" if act.phase in ("sample", "validate", "paused") else f"{words} {seconds(age)}"


def phase_words(act: ActivityRecord) -> str:
    """A phase between steps in words: 'sampling after epoch 2', 'validating before training'; "" for a
    step or a phase this version does not know."""
    if act.phase == "sample":
        return "sampling " + ("before training" if act.epoch < 0 else f"after epoch {act.epoch + 1}")
    if act.phase == "validate":
        return "validating " + ("before training" if act.epoch < 0 else f"epoch {act.epoch + 1}")
    if act.phase == "paused":
        return f"paused at step {act.step + 1}"
    return _WORDS.get(act.phase, "")


def usual_wait(state: RunState) -> float:
    """How long the engine usually stays at one step: every arm's step time, times the steps it waits
    for at once off CPU (there a step's own time is tiny and the 20th waits for the other 19)."""
    per_step = sum(a.dt_ema for a in state.arms.values() if not math.isnan(a.dt_ema))
    device = state.settings.device
    on_cpu = (device if device is not None else "cpu").startswith("cpu")
    return per_step * (1 if on_cpu else CUDA_FLUSH_STEPS)


def gpu_brief(state: RunState, limit: int = 2) -> str:
    """'GPU 61.2/139.8 GiB 97 %' per device (the first `limit`), for the header; "" without readings."""
    parts = [f"GPU{_index(g, len(state.gpus))} {_memory(g)} {_util(g)}".rstrip() for g in state.gpus[:limit]]
    more = len(state.gpus) - limit
    return " · ".join(parts) + (f" · +{more}" if more > 0 else "")


def gpu_lines(state: RunState) -> list[str]:
    """One line per device for the Time view: index, name, memory used/total, utilisation."""
    lines = []
    for g in state.gpus:
        used, total = _num(g.get("mem_used")), _num(g.get("mem_total"))
        share = f" ({fmt.pct(used / total, 0)})" if total > 0 and not math.isnan(used) else ""
        name = str(g.get("name") or "")[:40]
        util = _util(g)
        lines.append(
            f"cuda:{g.get('index', '?')}  {name}  memory {_memory(g)}{share}"
            + (f"  utilisation {util}" if util else "")
        )
    return lines


def system_brief(state: RunState) -> str:
    """'CPU 87 % · RAM 3.1/7.8 GiB · RSS 1.2 GiB' (the machine's CPU and memory, the run's own resident
    memory; engine/run/system.py), for the header and the Time view; "" without readings."""
    sys_ = state.system
    cpu, used, total, rss = (_num(sys_.get(k)) for k in ("cpu_pct", "ram_used", "ram_total", "rss"))
    parts = [] if math.isnan(cpu) else [f"CPU {cpu:.0f} %"]
    if not (math.isnan(used) or math.isnan(total)):
        parts.append(f"RAM {used / GIB:.1f}/{total / GIB:.1f} GiB")
    if not math.isnan(rss):
        parts.append(f"RSS {rss / GIB:.2f} GiB")
    return " · ".join(parts)


def _index(g: dict, n: int) -> str:
    return "" if n == 1 else str(g.get("index", "?"))


def _memory(g: dict) -> str:
    used, total = _num(g.get("mem_used")), _num(g.get("mem_total"))
    if math.isnan(used) or math.isnan(total):
        return "?"
    return f"{used / GIB:.1f}/{total / GIB:.1f} GiB"


def _util(g: dict) -> str:
    util = _num(g.get("util"))
    return "" if math.isnan(util) else f"{util:.0f} %"


def _num(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)
