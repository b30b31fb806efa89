"""Draw a plan grid (a PlanGrid: ``engine.plans.describe.plan_grid``) and a plan description. No torch.

The grid is drawn transposed: one line per role, one character per block, so a
deep model stays one screen high. The app's Plan view draws grids stored in run
logs with ``render_grid``; ``freeze-tui plan`` prints ``render_plans``.
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from engine.plans.plan_record import PlanArm, PlanDescription, PlanGrid
from freeze_tui.draw import fmt
from freeze_tui.draw.report import Packed, pack_fields

__all__ = ["CELL_GLYPHS", "render_grid", "render_plans"]

CELL_GLYPHS = {
    "train": ("■", "bold green"),
    "lora": ("▲", "bold magenta"),
    "frozen": ("·", "dim"),
    "partial": ("◐", "yellow"),
    "later": ("◷", "cyan"),
    "absent": (" ", ""),
}
_OUTER = ("embed", "pos", "head", "final_norm")


def render_grid(grid: PlanGrid, max_width: int | None = None) -> Text:
    """Roles x blocks with a block ruler, the non-block roles, and a legend; wider than
    `max_width`, the blocks come in slices, one under the other."""
    roles, n = grid.roles, grid.blocks
    label = max([len(r) for r in roles] + [5]) + 2
    per_slice = max(10, (max_width or label + n) - label)
    lines: list[Text] = []
    for start in range(0, n, per_slice):
        lines += _grid_slice(grid, roles, label, start, min(n, start + per_slice))
    lines += [_outer_line(grid), _legend(grid)]
    return Text("\n").join(lines)


def _grid_slice(grid: PlanGrid, roles: list[str], label: int, start: int, stop: int) -> list[Text]:
    lines = [Text(" " * label + _ruler(stop, start), style="dim")]
    for col, role in enumerate(roles):
        line = Text(role.ljust(label))
        for row in grid.cells[start:stop]:
            line.append(*_glyph(row[col]))
        lines.append(line)
    return lines


def _glyph(cell: str) -> tuple[str, str]:
    return CELL_GLYPHS.get(cell, ("?", "red"))


def _ruler(n: int, start: int = 0) -> str:
    """Numbers of blocks start..n-1: every digit up to 10 blocks, else every 5th (10th, 20th ...)."""
    if n <= 10:
        return "".join(str(b) for b in range(start, n))
    step = next(s for s in (5, 10, 20, 50, 100) if len(str(n - 1)) + 1 <= s)
    ruler = [" "] * (n - start)
    for b in range(start + (-start) % step, n, step):
        label = str(b)
        if b + len(label) <= n:  # a number that does not fit the slice is left out, not cut
            ruler[b - start : b - start + len(label)] = label
    return "".join(ruler).rstrip()


def _outer_line(grid: PlanGrid) -> Text:
    other, tied = grid.other, set(grid.tied)
    line = Text()
    for role in _OUTER:
        if other.get(role, "absent") == "absent":
            continue
        line.append(f"{role} ")
        line.append(*_glyph(other[role]))
        line.append("  ")
    if tied:
        line.append(f"({' = '.join(sorted(tied))}: one tied tensor)", style="dim")
    line.rstrip()
    return line


def _legend(grid: PlanGrid) -> Text:
    legend = Text()
    cells = {c for row in grid.cells for c in row} | set(grid.other.values())
    for state in ("train", "lora", "frozen", "partial", "later"):
        if state == "lora" and state not in cells:
            continue
        legend.append(*_glyph(state))
        legend.append(f" {state}  ", style="dim")
    legend.rstrip()
    return legend


def render_plans(desc: PlanDescription) -> RenderableType:
    """The ``freeze-tui plan`` output: model line, the arms (a table, or one block per arm when
    narrow), then each arm's grid; everything fits the console's width."""
    model = desc.model
    head = Text(
        f"model {model.name} ({model.arch}): {model.n_params:,} parameters, {model.n_blocks} blocks", style="bold"
    )
    parts: list[RenderableType] = [head, PlanArms(desc.arms)]
    for arm in desc.arms:
        parts += [Packed([(arm.name, arm.spec)], split=",", label_style="bold"), GridAt(arm.grid), Text("")]
    return Group(*parts)


def _cells(arm: PlanArm) -> list[str]:
    """arm, spec, trains, FLOP ratio, r_pred, schedule: the words of one arm."""
    schedule = "; ".join(f"{c.rule} → {c.trainable:,}" for c in arm.schedule) or "-"
    return [
        arm.name,
        arm.spec,
        f"{arm.trainable:,} ({fmt.pct(arm.pct / 100)})",
        fmt.num(arm.flop_ratio, 2),
        fmt.pct(arm.r_pred, 1),  # 3.64 % reads 3.6 %, not a whole number
        schedule,
    ]


_TITLES = ("arm", "spec", "trains", "FLOP ratio", "r_pred", "schedule")


class PlanArms:
    """One table row per arm when the table fits, else one block of `label value` fields per arm."""

    def __init__(self, arms: list[PlanArm]) -> None:
        self.arms = arms

    def _table(self) -> Table:
        table = Table(box=None, pad_edge=False)
        for title in _TITLES:
            table.add_column(title, justify="right" if title in _TITLES[2:5] else "left", no_wrap=True)
        for arm in self.arms:
            table.add_row(*(Text(cell) for cell in _cells(arm)))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        table = self._table()
        if Measurement.get(console, options.update_width(10_000), table).maximum <= options.max_width:
            yield table
            return
        for arm in self.arms:
            name, *cells = _cells(arm)
            yield Text(name, style="bold")
            yield from pack_fields(list(zip(_TITLES[1:], cells, strict=True)), options.max_width, indent=2, split=",")


class GridAt:
    """A grid in slices of blocks as wide as the console allows (a deep model on 80 columns)."""

    def __init__(self, grid: PlanGrid) -> None:
        self.grid = grid

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield render_grid(self.grid, options.max_width)
