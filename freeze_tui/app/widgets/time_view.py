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
from freeze_tui.app.activity import gpu_lines, system_brief
from freeze_tui.app.widgets.state_view import TextView
from freeze_tui.draw import fmt
from freeze_tui.draw.colors import PLAIN, Palette
from freeze_tui.draw.merged_runs import fit_arm
from freeze_tui.draw.safe_text import safe
from freeze_tui.draw.throughput_lines import throughput_lines

MAX_EPOCH_COLUMNS = 6  # older epochs fold into T; the table must fit 80 columns
COMPACT_BELOW = 110  # columns: narrower views get short headers and one-line intervals (80x24 with 3-5 arms)
VERDICT_MARK = {"agrees": "≈", "differs": "≠", "undecided": "?"}


def _epochs_shown(state: RunState) -> list[int]:
    epochs = sorted({epoch for arm in state.arms.values() for epoch, _ in arm.epochs})
    return epochs[-MAX_EPOCH_COLUMNS:]


def r_interval_text(state: RunState, name: str, ci, compact: bool = False) -> Text:
    """r's 95 % interval and the FLOP model's equivalence verdict (within ± EQUIVALENCE_MARGIN);
    compact: `37.5–40.2 % ≈`, the verdict as a mark that compact_legend explains."""
    if ci is None or baseline_of(state, name) == name or any(math.isnan(v) for v in ci):
        return Text("")
    margin = margin_of(state)
    verdict = equivalence(ci, state.arms[name].predicted_saving, margin)
    style = "yellow" if verdict == "differs" else "dim"
    if compact:
        mark = VERDICT_MARK.get(verdict or "", "")
        return Text(f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f} %{' ' + mark if mark else ''}", style)
    word = "" if verdict is None else f" prediction {verdict} ±{100 * margin:g} pts"
    return Text(f"[{fmt.pct(ci[0])}, {fmt.pct(ci[1])}]{word}", style)


def compact_legend(state: RunState) -> Text:
    return Text(
        f"r 95 %: r's interval; ≈ / ≠ / ?: the FLOP model's r agrees / differs / undecided (±{100 * margin_of(state):g}"
        " pts)",
        style="dim",
    )


def time_table(
    state: RunState, palette: Palette = PLAIN, intervals: dict | None = None, compact: bool = False
) -> Table:
    """intervals: {arm: (lo, hi)} of r, computed when an epoch ends (a bootstrap is too slow per step);
    compact: short headers and one-line cells, for 80 columns."""
    intervals = intervals or {}
    # compact: one space between columns (not two), so 6 arms with 3 epochs fit 80 columns unwrapped
    table = Table(box=None, pad_edge=False, header_style="bold", padding=(0, 0, 0, 1) if compact else (0, 1))
    epochs = _epochs_shown(state)
    table.add_column("arm", no_wrap=True, overflow="ellipsis")  # the arm's name gives way first: numbers never wrap
    for k in epochs:
        table.add_column(f"t_{k + 1}", justify="right", no_wrap=True)
    for title in ("T", "r", "FLOP r", "r 95 %") if compact else ("T", "r measured", "r FLOP model", "r 95 % interval"):
        table.add_column(title, justify="right", no_wrap=True)
    for index, (name, arm) in enumerate(state.arms.items()):
        t_k = {epoch: rec.t_epoch for epoch, rec in arm.epochs}
        row = [safe(fit_arm(name, 16), Style(bold=True) + palette.arm(index), max_len=16)]
        row += [Text(fmt.duration(t_k.get(k))) for k in epochs]
        row.append(Text(fmt.duration(state.arm_time(name))))
        row += [_measured(state, name, compact), Text(fmt.pct(arm.predicted_saving), "dim")]
        row.append(r_interval_text(state, name, intervals.get(name), compact))
        table.add_row(*row)
    return table


def _measured(state: RunState, name: str, compact: bool = False) -> Text:
    """r so far against the arm's own run's baseline (warm-up left out), or why there is none."""
    if unpaired(state, name):
        return Text("unpaired" if compact else NOT_PAIRED, style="dim")
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
        label = safe(fit_arm(name, 14), max_len=14)
        label.pad_right(15 - len(label.plain))
        lines.append(label + Text.assemble(("█" * n, palette.arm(index)), f" {fmt.duration(t)}"))
    return Text("\n").join(lines)


def interval_as_of(state: RunState, step: int) -> str:
    """When the shown r intervals were computed: the bootstrap runs once per epoch end, not per step."""
    if state.finished:
        return "over the whole run"
    if step < 0:
        return "none yet"
    return f"as of step {step + 1} (recomputed at each epoch end)"


def time_renderable(
    state: RunState,
    palette: Palette = PLAIN,
    intervals: dict | None = None,
    as_of: int | None = None,
    compact: bool = False,
) -> Group:
    note = Text(
        f"r = 1 − ΣT_arm / ΣT_baseline over paired steps so far, each run's first {WARMUP_STEPS} (warm-up) left "
        f"out, each arm against its own run's baseline; T: all steps; FLOP model: 1 − FLOP ratio at block "
        f"{fmt.or_unknown(state.settings.block_size)}; interval: studentised block bootstrap over steps, "
        f"{interval_as_of(state, state.step if as_of is None else as_of)}",
        style="dim",
    )
    parts: list[RenderableType] = [
        *([Text.assemble(("system ", "bold"), system_brief(state))] if state.system else []),
        time_table(state, palette, intervals, compact),
        *([compact_legend(state)] if compact and any(intervals.values() if intervals else ()) else []),
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
    _ci_step = -1  # the step the intervals were computed at

    def key(self, state: RunState) -> tuple:
        epochs = sum(len(a.epochs) for a in state.arms.values())
        return state.step, epochs, state.status, state.gpus_t, self.compact, state.system.get("t")

    @property
    def compact(self) -> bool:
        return self.size.width < COMPACT_BELOW

    def text(self, state: RunState) -> RenderableType:
        if self.key(state)[1:5] != self._ci_key:  # the bootstrap once per epoch (or layout), not per reading
            self._ci_key = self.key(state)[1:5]
            self._intervals = {name: live_interval(state, name) for name in state.arms}
            self._ci_step = state.step
        return time_renderable(state, self.palette, self._intervals, self._ci_step, self.compact)

    def show(self, state: RunState) -> None:
        self._state = state  # for a resize between ticks
        super().show(state)

    def on_resize(self) -> None:
        if getattr(self, "_state", None) is not None:
            self.show(self._state)  # the width decides the layout (compact below COMPACT_BELOW)
