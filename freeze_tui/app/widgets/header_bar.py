"""Two header lines: what runs (run, model, device, data) and how far it is (status, epoch, step, time)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from engine.log.eta import epochs_to_run
from engine.log.state import RunState
from freeze_tui.app import modes
from freeze_tui.app.activity import activity_label, gpu_brief, system_brief
from freeze_tui.draw import fmt
from freeze_tui.draw.colors import PLAIN, Palette
from freeze_tui.draw.eta_text import eta_text
from freeze_tui.draw.safe_text import safe

IDLE_AFTER_S = 5.0  # watch of a log without heartbeats (older versions): "no new events" after this long
SEP = " │ "
STATUS_STYLE = {  # palette names (colors.py), coloured in app.tcss
    "running": "running",
    "finished": "finished",
    "failed": "failed",
    "log unreadable (see Log)": "failed",
    "waiting for data": "quiet",
    "loading": "quiet",
}


@dataclass(frozen=True)
class SourceView:
    """What the header needs to know about the event source (read by the app each tick)."""

    mode: str = "replay"
    paused: bool = False
    done: bool = False
    idle: float = 0.0
    stopping: bool = False
    error: str = ""  # the source failed (e.g. a corrupt line mid-log)
    speed: float | None = None  # replay: the time factor (None: as fast as possible)
    gone: str = ""  # watch: why the log's writer is known to be gone (engine.log.liveness)

    @classmethod
    def of(cls, source, stopping: bool = False, error: str = "", view_paused: bool = False) -> SourceView:
        first = (getattr(source, "sources", None) or [source])[0]  # several logs: each replays at one speed
        speed = getattr(first, "speed", None)
        gone = source.writer_gone() if hasattr(source, "writer_gone") else ""
        paused = source.paused or view_paused  # view_paused: LIVE `p` froze the screen only
        return cls(source.mode, paused, source.done, source.idle_seconds(), stopping, error, speed, gone)

    def ticking(self, state: RunState) -> float:
        """Wall seconds since the last event, for clocks that keep running between events (not in replay)."""
        return self.idle if self.mode != "replay" and not (state.finished or self.done or self.gone) else 0.0


def status_label(state: RunState, src: SourceView) -> str:
    if state.finished:
        return state.status
    if src.error:
        return "log unreadable (see Log)"
    if src.stopping and not src.gone:  # a watched writer asked to stop may die instead: say so
        return "stopping…"
    if src.paused:
        return modes.paused_label(src.mode)
    if state.n_events == 0:
        return "waiting for data" if src.mode == "watch" else "loading"
    if src.done:
        return "log ended (no run_end)"
    if src.gone:
        return src.gone
    busy = activity_label(state, src.ticking(state))  # from heartbeats: a quiet engine is busy, not gone
    if busy:
        return busy
    if src.mode == "watch" and src.idle >= IDLE_AFTER_S and state.activity is None:  # a log without heartbeats
        return f"no new events for {int(src.idle)} s"
    if state.status == "running" and state.step < 0:
        return "sampling before training"
    return state.status


def bar(fraction: float, width: int) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


def _join(parts: list[Text]) -> Text:
    line = Text(SEP, style="dim").join(p for p in parts if p.plain)
    line.no_wrap, line.overflow = True, "ellipsis"
    return line


def run_line(state: RunState, title: str) -> Text:
    model, data, settings = state.model_info, state.data_info, state.settings
    name = settings.name or settings.run_name
    run = safe(f"{name} ({state.run_id})" if name and state.run_id else name or state.run_id, max_len=60)
    parts = [Text(title, style="bold"), Text("run ") + run if run.plain else Text("")]
    if state.model:  # run_start logged a model
        blocks = f", {model.n_blocks} blocks" if model.n_blocks else ""
        parts.append(
            Text("model ")
            + safe(fmt.or_unknown(model.name), "bold", max_len=60)
            + Text(f" ({fmt.count(model.n_params)}{blocks})")
        )
    device = settings.device or model.device
    if device:
        parts.append(Text("on ") + safe(device, max_len=20))
    if state.data:  # run_start logged its data
        tokens, batches = fmt.count(data.n_tokens), fmt.or_unknown(data.n_train_batches)
        parts.append(Text(f"data {tokens} tokens, {batches} batches"))
    return _join(parts)


def progress_line(state: RunState, src: SourceView, width: int = 160, palette: Palette = PLAIN) -> Text:
    status = status_label(state, src)
    mode = modes.mode_of(src.mode, state.finished, src.done)
    badge = (f" {modes.mode_label(mode, src.speed)} ", Style(reverse=True, bold=True))
    style = "failed" if status.startswith("writer gone") else STATUS_STYLE.get(status, "paused")
    parts = [Text.assemble(badge, (" ● " + status, palette.style(style)))]
    epochs = epochs_to_run(state)  # --max-steps may end the run before --epochs
    if state.replicates > 1:  # --seeds N: which run of the paired experiment this is
        parts.append(Text(f"seed {state.replicate + 1}/{state.replicates}", style="bold"))
    if state.epoch >= 0:
        parts.append(Text(f"epoch {state.epoch + 1}/{epochs or '?'}"))
    total = state.total_steps
    if state.step >= 0:
        done = state.step + 1
        line = f"step {done}/{total}" if total else f"step {done}"
        if total and width >= 100:
            line += f" {bar(done / total, 16)} {100 * done / total:.0f} %"
        parts.append(Text(line))
    parts.append(eta_part(state, src, width))
    if state.n_events:
        # log time, so replays show the run's own; live and watch keep ticking between events
        parts.append(Text(f"elapsed {fmt.duration(state.elapsed + src.ticking(state))}"))
    if state.gpus and not state.finished:
        parts.append(safe(gpu_brief(state), max_len=60))
    if state.system and not state.finished and width >= 120:  # at 80 columns: the Time view's first line
        parts.append(Text(system_brief(state), style="dim"))
    if state.settings.trust_remote_code:
        parts.append(Text("⚠ trust_remote_code on", style=palette.style("failed")))
    return _join(parts)


def eta_part(state: RunState, src: SourceView, width: int) -> Text:
    """The time left, before elapsed so it stays on screen at 80 columns (compact there)."""
    return Text(eta_text(state, src.ticking(state), compact=width < 100), style="bold")


class HeaderBar(Static):
    """The app's header; updates only when its text changes (the idle counter ticks each second)."""

    def show(self, state: RunState, src: SourceView, title: str, palette: Palette = PLAIN) -> None:
        lines = [run_line(state, title), progress_line(state, src, self.size.width, palette)]
        text = Text("\n").join(lines)
        text.no_wrap, text.overflow = True, "ellipsis"
        if text != getattr(self, "_shown", None):
            self._shown = text
            self.update(text)
