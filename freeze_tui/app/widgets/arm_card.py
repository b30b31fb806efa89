"""One arm's column: name, spec, trainable share, current (and, where wide, best) loss with a sparkline, epoch
loss (and best validation loss, where wide), speed, time."""

from __future__ import annotations

import math

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from engine.log.state import RunState
from freeze_tui.draw import fmt
from freeze_tui.draw.best_values import best_val, train_best_text
from freeze_tui.draw.colors import PLAIN, Palette
from freeze_tui.draw.merged_runs import fit_arm
from freeze_tui.draw.safe_text import safe
from freeze_tui.draw.series import sparkline

SPARK_STEPS = 400  # the sparkline shows the most recent steps
NARROW = 28
TINY = 16  # 5+ arms at 80 columns: "L" for loss and the bare share, so that the numbers stay whole
MIN_SPARK = 16  # the best training loss joins the loss line only where the sparkline keeps this many columns


def stopped_note(state: RunState, name: str) -> str:
    """Why the arm stopped early, or ''. A NaN loss after steps ran means it stopped too."""
    arm = state.arms[name]
    if arm.stopped:
        return arm.stopped
    if state.step >= 0 and math.isnan(arm.loss_last) and len(arm.losses):
        return "loss is NaN"
    return ""


def _loss_line(state: RunState, name: str, width: int, palette: Palette) -> Text:
    arm = state.arms[name]
    head = f"{'loss' if width >= TINY else 'L'} {fmt.num(arm.loss_last)} "
    best = arm.best_loss.best  # the lowest smoothed loss (engine/log/best.py), where the sparkline keeps room
    if math.isfinite(best) and width - len(head) - len(train_best_text(best)) - 1 >= MIN_SPARK:
        head += f"{train_best_text(best)} "
    spark = sparkline(arm.losses[-SPARK_STEPS:], max(0, width - len(head)))
    return Text(head) + Text(spark, style=palette.arm(list(state.arms).index(name)))


def _epoch_line(state: RunState, name: str, width: int) -> Text:
    arm = state.arms[name]
    if not arm.epochs:
        return Text("epoch loss –", style="dim")
    epoch, last = arm.epochs[-1]
    line = Text(f"epoch {epoch + 1} L {fmt.num(last.loss_mean)} val {fmt.num(last.val_loss)}")
    best, at = best_val(arm)
    note = f"  best val {fmt.num(best)} (ep {at + 1})"
    if math.isfinite(best) and len(line) + len(note) <= width:  # wide cards only: 80 columns keep the line
        line.append(note, style="dim")
    return line


def arm_card_text(state: RunState, name: str, width: int, compact: bool = False, palette: Palette = PLAIN) -> Text:
    """The card's lines; compact (short terminals) keeps three lines."""
    arm = state.arms[name]
    style = palette.arm(list(state.arms).index(name))
    title = Text.assemble(("● ", style), safe(fit_arm(name, min(24, width - 3)), Style(bold=True) + style, max_len=24))
    spec = Text.assemble(("  spec ", "dim")) + safe(arm.spec, "dim italic", max_len=60)
    narrow = width < NARROW  # four arms at 80 columns: abbreviate rather than cut
    pct = fmt.pct(arm.trainable_pct / 100, 0 if narrow else 1)
    share = Text(pct if width < TINY else f"trains {pct}" if narrow else f"{pct} trained")
    rate = state.tokens_per_s(name)
    shown_rate = fmt.count(rate) if narrow or rate != rate else fmt.rate(rate).removesuffix(" tok/s")
    speed = Text(
        f"T {fmt.duration(state.arm_time(name))} {shown_rate} tok/s"  # T first: a cut takes the rate
        if narrow
        else f"speed {shown_rate} tok/s  T {fmt.duration(state.arm_time(name))}"
    )
    note = stopped_note(state, name)
    if compact:
        lines = [title + Text(" ") + share, _loss_line(state, name, width, palette), speed]
    else:
        lines = [
            title + spec,
            share + Text(f"  {fmt.count(arm.trainable)}/{fmt.count(arm.total)}", style="dim"),
            _loss_line(state, name, width, palette),
            _epoch_line(state, name, width),
            speed,
        ]
    if note:
        lines.append(
            Text.assemble(("⚠ stopped: ", palette.style("failed"))) + safe(note, palette.style("failed"), max_len=200)
        )
    text = Text("\n").join(lines)
    text.no_wrap, text.overflow = True, "ellipsis"
    return text


class ArmCard(Widget):
    """Drawn at render time from the shared state, so its width is always the laid-out one."""

    def __init__(self, arm: str, state: RunState, **kwargs) -> None:
        super().__init__(**kwargs)
        self.arm, self.state = arm, state

    def render(self) -> Text:
        compact = self.screen.has_class("-short")  # set by the app's VERTICAL_BREAKPOINTS
        text = arm_card_text(
            self.state, self.arm, max(10, self.size.width), compact, getattr(self.app, "palette", PLAIN)
        )
        lines = text.plain.count("\n") + 1
        if lines != getattr(self, "_lines", lines):
            self.call_after_refresh(self.refresh, layout=True)  # a note appeared: the card grows
        self._lines = lines
        return text
