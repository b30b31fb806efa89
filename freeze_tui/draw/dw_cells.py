"""The ΔW table as plain data: one row per (block, matrix), a column group per arm. Pure.

A frozen matrix must read "frozen", not 0.000: a cell is frozen when its change is
exactly 0.0 and either the arm's plan grid says the matrix is not trained, or it has
been 0.0 in every dw event kept (plans without a grid, gradual unfreezing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rich.text import Text

from engine.log.state import RunState
from engine.plans.plan_record import PlanGrid
from freeze_tui.draw import fmt
from freeze_tui.draw.colors import PLAIN, Palette, heat_style
from freeze_tui.draw.merged_runs import fit_arm
from freeze_tui.draw.safe_text import clean
from freeze_tui.draw.series import sparkline

TREND_WIDTH = 10
ROLE_ORDER = {"q": 0, "k": 1, "v": 2, "o": 3}
_BLOCK = re.compile(r"\.(\d+)\.")
# Grid cells (engine/plans/describe.py): "train", "frozen", "partial", "later", "absent". Only the
# first two say for sure whether a matrix moves now; the others fall back to the dw history.
_SURE = {"train": True, "frozen": False}


def parse_matrix(name: str) -> tuple[int, str]:
    """'h.6.attn.q' -> (6, 'q'); names without a block number sort first as block -1."""
    found = _BLOCK.search(f".{name}.")
    return (int(found.group(1)) if found else -1), name.rsplit(".", 1)[-1]


def _cell_trains(cell) -> bool | None:
    return _SURE.get(cell) if isinstance(cell, str) else None


def grid_trains(grid: PlanGrid | None, block: int, role: str) -> bool | None:
    """Whether an arm's plan grid says matrix `role` of `block` is trained; None when it cannot tell
    (no grid, or none that reads as a PlanGrid: PlanGrid.read)."""
    if grid is None or not 0 <= block < len(grid.cells):
        return None
    roles, row = grid.roles, grid.cells[block]
    for candidate in (f"attn.{role}", "attn.qkv" if role in ("q", "k", "v") else None, "attn", role):
        if candidate in roles and roles.index(candidate) < len(row):
            return _cell_trains(row[roles.index(candidate)])
    return None


def is_frozen(value, history: list[float], grid_says: bool | None) -> bool:
    if value != 0.0:
        return False
    return grid_says is False or (bool(history) and all(v == 0.0 for v in history))


@dataclass(frozen=True)
class DWTable:
    columns: list[str]
    rows: list[list[Text]]


def _arm_history(state: RunState, arm: str) -> list[dict]:
    """This arm's norms in each dw event kept (read once per table: dw events decode lazily)."""
    out = []
    for _, event in state.dw_history:
        mine = event.norms_of(arm)
        if mine is not None:
            out.append(mine)
    return out


def _history(per_event: list[dict], matrix: str) -> list[float]:
    values = (norms.get(matrix, 0.0) for norms in per_event)
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]


def _matrices(state: RunState) -> list[str]:
    names = {m for arm in state.arms.values() for m in arm.dw}

    def order(m: str) -> tuple:
        block, role = parse_matrix(m)
        return block, ROLE_ORDER.get(role, len(ROLE_ORDER)), m

    return sorted(names, key=order)


def _scale(state: RunState) -> tuple[float, float]:
    values = [v for arm in state.arms.values() for v in arm.dw.values() if isinstance(v, (int, float)) and v > 0]
    return (min(values), max(values)) if values else (0.0, 0.0)


def arm_cells(
    state: RunState,
    arm: str,
    matrix: str,
    scale: tuple[float, float],
    per_event: list[dict],
    palette: Palette = PLAIN,
    grid: PlanGrid | None = None,
) -> list[Text]:
    """‖ΔW‖, drift and trend cells of one arm for one matrix; `grid`: the arm's plan grid, read once per table."""
    a = state.arms[arm]
    value = a.dw.get(matrix)
    history = _history(per_event, matrix)
    block, role = parse_matrix(matrix)
    if value is None:
        return [Text(fmt.DASH, style="dim"), Text(""), Text("")]
    if is_frozen(value, history, grid_trains(grid, block, role)):
        return [
            Text("frozen", style=palette.style("frozen")),
            Text("0", style="dim"),
            Text("·" * TREND_WIDTH, style="dim"),
        ]
    style = heat_style(value, *scale, palette) if isinstance(value, (int, float)) else ""
    drift = a.drift.get(matrix)
    return [
        Text(fmt.norm(value), style=style),
        Text(fmt.norm(drift), style="dim" if drift is None else ""),
        Text(sparkline(history, TREND_WIDTH), style=style),
    ]


FIXED = ("blk", "W")
FIXED_WIDTH = 10  # block and matrix columns with their padding, plus the scrollbar


def arm_heading(name: str) -> str:
    return f"{clean(fit_arm(name, 12), one_line=True, max_len=12)} ΔW"


PARTS = 3  # cells of an arm's group: ΔW, drift, trend
# Narrower layouts drop the trend, then the drift, so that 3-5 arms share an 80-column page
# (one arm per page told nothing side by side); paging is for what does not fit even then.
LAYOUTS = (3, 2, 1)  # the first this many cells of each group
_CELL_WIDTH = (0, 8 + 2, TREND_WIDTH + 2)  # drift and trend: their widest cell and padding


def layout_width(name: str, parts: int) -> int:
    """Columns one arm's group takes with its first `parts` cells, padding included."""
    return max(len(arm_heading(name)), 8) + 2 + sum(_CELL_WIDTH[1:parts])


def dw_layout(width: int, names: list[str]) -> tuple[int, int]:
    """(the cells shown per arm, arms per page): the widest layout that fits every arm, else the
    narrowest, paged."""
    room = width - FIXED_WIDTH
    for parts in LAYOUTS:
        if sum(layout_width(n, parts) for n in names) <= room:
            return parts, max(1, len(names))
    widest = max((layout_width(n, LAYOUTS[-1]) for n in names), default=1)
    return LAYOUTS[-1], max(1, min(len(names), room // widest))


def arm_page(arms: list[str], page: int, per_page: int) -> tuple[list[str], int, int]:
    """The arms on `page` (wrapped into range); returns (arms, page, number of pages)."""
    pages = max(1, -(-len(arms) // per_page))
    page %= pages
    return arms[page * per_page : (page + 1) * per_page], page, pages


def dw_table(state: RunState, arms: list[str] | None = None, palette: Palette = PLAIN, parts: int = PARTS) -> DWTable:
    """The table for `arms` (default all), so a narrow screen can page through them; the first
    `parts` cells of each arm's group (dw_layout)."""
    arms = list(state.arms) if arms is None else arms
    columns = list(FIXED)
    for name in arms:
        columns += [arm_heading(name), "drift", "trend"][:parts]
    scale = _scale(state)
    histories = {name: _arm_history(state, name) for name in arms}
    grids = {name: PlanGrid.read(state.arms[name].grid) for name in arms}
    rows = []
    for matrix in _matrices(state):
        block, role = parse_matrix(matrix)
        row = [Text(str(block) if block >= 0 else "", justify="right"), Text(clean(role, one_line=True, max_len=8))]
        for name in arms:
            cells = arm_cells(state, name, matrix, scale, histories[name], palette, grids[name])
            row += cells[:parts]
        rows.append(row)
    return DWTable(columns, rows)
