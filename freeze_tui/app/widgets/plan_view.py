"""Plan view: what each arm trains (its plan grid), trainable/total, and plan changes as they happen."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.style import Style
from rich.text import Text

from engine.log.state import ArmState, RunState
from engine.plans.plan_record import PlanGrid
from freeze_tui.app.widgets.state_view import TextView
from freeze_tui.draw import fmt
from freeze_tui.draw.colors import PLAIN, Palette
from freeze_tui.draw.merged_runs import fit_arm
from freeze_tui.draw.plan_grid import render_grid
from freeze_tui.draw.safe_text import safe


def grid_renderable(grid: dict) -> RenderableType:
    """An arm's grid as its run_start record holds it (plain JSON), drawn when it reads as a PlanGrid."""
    if not grid:
        return Text("  (no plan grid in this log)", style="dim")
    typed = PlanGrid.read(grid)
    if typed is None:
        return Text("  (this log's plan grid could not be read)", style="dim")
    try:
        return render_grid(typed)
    except IndexError:  # a row shorter than the roles
        return Text("  (this log's plan grid could not be read)", style="dim")


def arm_heading(arm: ArmState, index: int, palette: Palette = PLAIN) -> Text:
    head = (
        Text.assemble(safe(fit_arm(arm.name, 24), Style(bold=True) + palette.arm(index), max_len=24))
        + Text("  spec ")
        + safe(arm.spec, "bold", max_len=80)
    )
    head += Text(f"  trains {fmt.count(arm.trainable)} / {fmt.count(arm.total)} ({fmt.pct(arm.trainable_pct / 100)})")
    if arm.flop_ratio == arm.flop_ratio:  # not nan
        head += Text(f"  FLOP ratio {arm.flop_ratio:.2f}", style="dim")
    return head


def changes_text(state: RunState, palette: Palette = PLAIN) -> Text:
    if not state.plan_changes:
        return Text("no plan changes (a rule with @step/@epoch changes a plan during the run)", style="dim")
    lines = [Text("plan changes", style="bold")]
    for change in reversed(state.plan_changes):
        index = list(state.arms).index(change.arm) if change.arm in state.arms else 0
        lines.append(
            Text(f"  step {change.step}  ")
            + safe(fit_arm(change.arm, 24), palette.arm(index), max_len=24)
            + Text("  ")
            + safe(change.rule, max_len=80)
            + Text(f"  → trains {fmt.count(change.trainable)}")
        )
    return Text("\n").join(lines)


def plan_renderable(state: RunState, palette: Palette = PLAIN) -> Group:
    parts: list[RenderableType] = []
    for index, arm in enumerate(state.arms.values()):
        parts += [arm_heading(arm, index, palette), grid_renderable(arm.grid), Text("")]
    parts.append(changes_text(state, palette))
    return Group(*parts)


class PlanView(TextView):
    TEXT_ID = "plan-text"

    def key(self, state: RunState) -> tuple:
        return len(state.arms), len(state.plan_changes)

    def text(self, state: RunState) -> RenderableType:
        return plan_renderable(state, self.palette)
