"""Samples view: generated text before training and each arm's latest set, tokens of S highlighted,
p with its 95 % interval and delta_p."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from engine.log.state import RunState, SampleSet
from freeze_tui import fmt
from freeze_tui.colors import arm_style
from freeze_tui.safe_text import safe

IN_S_STYLE = "bold #1b1b1b on #e8c15a"
SAMPLE_CHARS = 600  # cap one sample so a runaway generation cannot flood the view


def phase_label(sample_set: SampleSet) -> str:
    if sample_set.phase == "pre":
        return "before training (all arms)"
    if sample_set.phase == "epoch":
        return f"after epoch {sample_set.epoch + 1}"
    return sample_set.phase


def sample_text(sample) -> Text:
    """Prompt (dim) then the generated tokens, those in S highlighted."""
    out = safe(sample.prompt, "dim italic", max_len=200) + Text(" ▸ ", style="dim")
    used = 0
    for item in sample.tokens or [[sample.text, False]]:
        token, in_s = (item[0], bool(item[1])) if isinstance(item, (list, tuple)) and item else (item, False)
        piece = safe(token, IN_S_STYLE if in_s else "", max_len=SAMPLE_CHARS - used)
        used += len(piece.plain)
        out += piece
        if used >= SAMPLE_CHARS:
            break
    return out


def set_text(title: Text, sample_set: SampleSet | None, extra: str = "") -> Text:
    if sample_set is None or not sample_set.samples:
        return title + Text("  no samples yet", style="dim")
    head = title + Text(f"  {phase_label(sample_set)}  p = {fmt.ci(*sample_set.p)}{extra}")
    lines = [head] + [Text(f"  {i + 1} ", style="dim") + sample_text(s) for i, s in enumerate(sample_set.samples)]
    return Text("\n").join(lines)


def samples_text(state: RunState) -> Text:
    k = len(state.common_tokens) or "k"
    parts = [
        Text(
            f"highlighted: generated tokens in S (the {k} most frequent training tokens); "
            "p = share of generated tokens in S, with its 95 % interval",
            style="dim",
        ),
        set_text(Text("pre", style="bold"), state.pre_samples),
    ]
    for index, (name, arm) in enumerate(state.arms.items()):
        delta = f"  Δp = {fmt.signed_pts(state.delta_p(name))}" if arm.samples else ""
        parts.append(set_text(safe(name, f"bold {arm_style(index)}", max_len=24), arm.samples, delta))
    return Text("\n\n").join(parts)


class SamplesView(VerticalScroll):
    def compose(self) -> ComposeResult:
        yield Static(id="samples-text")

    def show(self, state: RunState) -> None:
        key = (
            id(state.pre_samples),
            *((id(a.samples), len(a.samples.samples)) if a.samples else None for a in state.arms.values()),
            len(state.pre_samples.samples) if state.pre_samples else 0,
        )
        if key != getattr(self, "_drawn", None):
            self._drawn = key
            self.query_one("#samples-text", Static).update(samples_text(state))
