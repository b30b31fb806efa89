"""Time view: t_k per epoch per arm, T, and the saving r measured live next to the FLOP model's prediction."""

from __future__ import annotations

import math

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text

from engine.core.stats import WARMUP_STEPS, equivalence
from engine.log.comparisons import NOT_PAIRED, baseline_of, live_interval, live_saving, margin_of, unpaired
from engine.log.state import RunState
from freeze_tui.app.activity import gpu_lines
from freeze_tui.app.widgets.state_view import TextView
from freeze_tui.draw import fmt
from freeze_tui.draw.colors import PLAIN, Palette
from freeze_tui.draw.safe_text import safe
from freeze_tui.draw.throughput_lines import throughput_lines

MAX_EPOCH_COLUMNS = 6  # older epochs fold into T; the table must fit 80 columns


def _epochs_shown(state: RunState) -> list[int]:
    epochs = sorted({epoch for arm in state.arms.values() for epoch, _ in arm.epochs})
    return epochs[-MAX_EPOCH_COLUMNS:]


def r_interval_text(state: RunState, name: str, ci) -> Text:
    """r's 95 % interval and the FLOP model's equivalence verdict (within ± EQUIVALENCE_MARGIN)."""
    if ci is None or baseline_of(state, name) == name or any(math.isnan(v) for v in ci):
        return Text("")
    margin = margin_of(state)
    verdict = equivalence(ci, state.arms[name].predicted_saving, margin)
    word = "" if verdict is None else f" prediction {verdict} ±{100 * margin:g} pts"
    return Text(f"[{fmt.pct(ci[0])}, {fmt.pct(ci[1])}]{word}", "yellow" if verdict == "differs" else "dim")


def time_table(state: RunState, palette: Palette = PLAIN, intervals: dict | None = None) -> Table:
    """intervals: {arm: (lo, hi)} of r, computed when an epoch ends (a bootstrap is too slow per step)."""
    intervals = intervals or {}
    table = Table(box=None, pad_edge=False, header_style="bold")
    epochs = _epochs_shown(state)
    table.add_column("arm")
    for k in epochs:
        table.add_column(f"t_{k + 1}", justify="right")
    for title in ("T", "r measured", "r FLOP model", "r 95 % interval"):
        table.add_column(title, justify="right")
    for index, (name, arm) in enumerate(state.arms.items()):
        t_k = {epoch: rec.t_epoch for epoch, rec in arm.epochs}
        row = [safe(name, Style(bold=True) + palette.arm(index), max_len=16)]
        row += [Text(fmt.duration(t_k.get(k))) for k in epochs]
        row.append(Text(fmt.duration(state.arm_time(name))))
        row += [_measured(state, name), Text(fmt.pct(arm.predicted_saving), "dim")]
        row.append(r_interval_text(state, name, intervals.get(name)))
        table.add_row(*row)
    return table


def _measured(state: RunState, name: str) -> Text:
    """r so far against the arm's own run's baseline (warm-up left out), or why there is none."""
    if unpaired(state, name):
        return Text(NOT_PAIRED, style="dim")
    if baseline_of(state, name) == name:
        return Text("baseline", style="dim")
    return Text(fmt.pct(live_saving(state, name)), "bold")


def time_bars(state: RunState, width: int = 40, palette: Palette = PLAIN) -> Text:
    """T per arm as horizontal bars, so the saving is visible at a glance."""
    times = {name: state.arm_time(name) for name in state.arms}
    top = max((t for t in times.values() if t > 0), default=0.0)
    lines = []
    for index, (name, t) in enumerate(times.items()):
        n = round(width * t / top) if top else 0
        label = safe(name, max_len=12)
        label.pad_right(13 - len(label.plain))
        lines.append(label + Text.assemble(("█" * n, palette.arm(index)), f" {fmt.duration(t)}"))
    return Text("\n").join(lines)


def time_renderable(state: RunState, palette: Palette = PLAIN, intervals: dict | None = None) -> Group:
    note = Text(
        f"r = 1 − ΣT_arm / ΣT_baseline over paired steps so far, each run's first {WARMUP_STEPS} (warm-up) left "
        f"out, each arm against its own run's baseline; T: all steps; FLOP model: 1 − FLOP ratio at block "
        f"{state.config.get('block_size', '?')}; interval: studentised block bootstrap over steps, as of the last "
        "epoch end",
        style="dim",
    )
    parts: list[RenderableType] = [
        time_table(state, palette, intervals),
        Text(""),
        time_bars(state, palette=palette),
        Text(""),
        note,
    ]
    throughput = throughput_lines(state)  # runs since issue 22: tokens/s and MFU per arm
    if throughput:
        parts += [Text(""), Text("Throughput (own step times)", style="bold"), *(safe(line) for line in throughput)]
    if state.gpus:  # NVML readings of the run's CUDA devices (none on CPU or without NVML)
        parts += [Text(""), Text("GPU (latest reading)", style="bold"), *(safe(line) for line in gpu_lines(state))]
    return Group(*parts)


class TimeView(TextView):
    TEXT_ID = "time-text"
    _ci_key: tuple | None = None

    def key(self, state: RunState) -> tuple:
        return state.step, sum(len(a.epochs) for a in state.arms.values()), state.status, state.gpus_t

    def text(self, state: RunState) -> RenderableType:
        if self.key(state)[1:] != self._ci_key:  # the bootstrap once per epoch, not per step
            self._ci_key = self.key(state)[1:]
            self._intervals = {name: live_interval(state, name) for name in state.arms}
        return time_renderable(state, self.palette, self._intervals)
