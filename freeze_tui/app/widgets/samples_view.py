"""Samples view: generated text before training and each arm's latest set, tokens of S highlighted,
p with its 95 % interval and delta_p."""

from __future__ import annotations

from rich.console import RenderableType
from rich.style import Style
from rich.text import Text

from engine.log import events as ev
from engine.log.state import RunState, SampleSet
from freeze_tui.app.widgets.samples_side import side_by_side
from freeze_tui.app.widgets.state_view import TextView
from freeze_tui.draw import fmt
from freeze_tui.draw.colors import PLAIN, Palette
from freeze_tui.draw.merged_runs import fit_arm
from freeze_tui.draw.safe_text import safe
from freeze_tui.draw.sample_text import no_samples, phase_label, sample_text


def set_text(
    title: Text, sample_set: SampleSet | None, extra: str = "", palette: Palette = PLAIN, empty: str = "no samples yet"
) -> Text:
    if sample_set is None or not sample_set.samples:
        return Text.assemble(title, (f"  {empty}", "dim"))
    head = Text.assemble(title, f"  {phase_label(sample_set)}  p = {fmt.ci(*sample_set.p)}{extra}")
    lines = [head] + [
        Text.assemble((f"  {i + 1} ", "dim")) + sample_text(s, palette) for i, s in enumerate(sample_set.samples)
    ]
    return Text("\n").join(lines)


def delta_p_text(state: RunState, name: str) -> str:
    """Δp and its paired interval (each sample against its pre-training twin)."""
    mean, lo, hi = state.delta_p_ci(name)
    if lo != lo or lo == hi:
        return fmt.signed_pts(state.delta_p(name))
    return f"{fmt.signed_pts(state.delta_p(name))} [{100 * lo:+.1f}, {100 * hi:+.1f}] (paired)"


def expected_s_note(state: RunState) -> str:
    """What E[S] is, when the log has it (logs before it have no such field)."""
    if not any(ev.measured(a.step_zero, "expected_s") is not None for a in state.arms.values()):
        return ""
    return "; E[S] = probability mass on S at the validation positions (no sampler), step 0 → now"


def expected_s_text(arm) -> str:
    zero = ev.measured(arm.step_zero, "expected_s")
    now = ev.measured(arm.epochs[-1][1], "expected_s") if arm.epochs else None
    if not isinstance(zero, (int, float)) or isinstance(zero, bool):
        return ""
    return f"  E[S] {fmt.pct(zero)} → {fmt.pct(now)}"


def samples_text(state: RunState, palette: Palette = PLAIN) -> Text:
    k = len(state.common_tokens) or "k"
    sampler = state.data_info.sampler
    parts = [
        Text(
            f"highlighted: generated tokens in S (the {k} most frequent training tokens); "
            f"p{f' ({sampler})' if sampler is not None else ''} = share of generated tokens in S, with its "
            "95 % interval over prompts × seeds; "
            f"base rate (the validation text's own share): {fmt.pct(state.common_base_rate)}"
            + expected_s_note(state)
            + "; c: one prompt and seed, every arm side by side",
            style="dim",
        ),
        set_text(Text("pre", style="bold"), state.pre_samples, palette=palette, empty=no_samples(state, True)),
    ]
    for index, (name, arm) in enumerate(state.arms.items()):
        delta = f"  Δp = {delta_p_text(state, name)}" if arm.samples else ""
        delta += expected_s_text(arm)
        parts.append(
            set_text(
                safe(fit_arm(name, 24), Style(bold=True) + palette.arm(index)),
                arm.samples,
                delta,
                palette,
                no_samples(state, False),
            )
        )
    return Text("\n\n").join(parts)


class SamplesView(TextView):
    """The list of every set, or (`c`) one prompt and seed side by side across arms (`n` / `N` move)."""

    TEXT_ID = "samples-text"
    compare = False  # side by side
    position = 0  # which sample index side by side shows (of samples_side.sample_indices)

    def toggle_compare(self) -> bool:
        self.compare = not self.compare
        return self.compare

    def move(self, direction: int) -> None:
        self.position += direction

    def key(self, state: RunState) -> tuple:
        return (
            self.compare,
            self.position,
            self.size.width,
            state.status,
            id(state.pre_samples),
            *((id(a.samples), len(a.samples.samples)) if a.samples else None for a in state.arms.values()),
            len(state.pre_samples.samples) if state.pre_samples else 0,
        )

    def text(self, state: RunState) -> RenderableType:
        if self.compare:
            return side_by_side(state, self.position, self.size.width - 2, self.palette)
        return samples_text(state, self.palette)
