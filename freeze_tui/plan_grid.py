"""Draw a plan grid (see ``engine.plans.describe.plan_grid``) and a plan description. No torch.

The grid is drawn transposed: one line per role, one character per block, so a
deep model stays one screen high. The app's Plan view draws grids stored in run
logs with ``render_grid``; ``freeze-tui plan`` prints ``render_plans``.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

__all__ = ["CELL_GLYPHS", "render_grid", "render_plans"]

CELL_GLYPHS = {
    "train": ("■", "bold green"),
    "frozen": ("·", "dim"),
    "partial": ("◐", "yellow"),
    "later": ("◷", "cyan"),
    "absent": (" ", ""),
}
_OUTER = ("embed", "pos", "head", "final_norm")


def render_grid(grid: dict) -> Text:
    """Roles x blocks with a block ruler, the non-block roles, and a legend."""
    roles, cells, n = list(grid["roles"]), grid["cells"], int(grid["blocks"])
    width = max([len(r) for r in roles] + [5])
    lines = [Text(" " * (width + 2) + _ruler(n), style="dim")]
    for col, role in enumerate(roles):
        line = Text(role.ljust(width + 2))
        for row in cells[:n]:
            line.append(*_glyph(row[col]))
        lines.append(line)
    lines += [_outer_line(grid), _legend()]
    return Text("\n").join(lines)


def _glyph(cell) -> tuple[str, str]:
    return CELL_GLYPHS.get(cell, ("?", "red"))


def _ruler(n: int) -> str:
    """Block numbers: every digit up to 10 blocks, else every 5th (10th, 20th ...)."""
    if n <= 10:
        return "".join(str(b) for b in range(n))
    step = next(s for s in (5, 10, 20, 50, 100) if len(str(n - 1)) + 1 <= s)
    ruler = [" "] * n
    for b in range(0, n, step):
        label = str(b)
        ruler[b : b + len(label)] = label
    return "".join(ruler).rstrip()


def _outer_line(grid: dict) -> Text:
    other, tied = grid.get("other", {}), set(grid.get("tied", ()))
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


def _legend() -> Text:
    legend = Text()
    for state in ("train", "frozen", "partial", "later"):
        legend.append(*_glyph(state))
        legend.append(f" {state}  ", style="dim")
    legend.rstrip()
    return legend


def render_plans(desc: dict) -> RenderableType:
    """The ``freeze-tui plan`` output: model line, one table row per arm, then each grid."""
    model = desc["model"]
    head = Text(
        f"model {model['name']} ({model['arch']}): {model['n_params']:,} parameters, {model['n_blocks']} blocks",
        style="bold",
    )
    parts: list[RenderableType] = [head, _arms_table(desc["arms"])]
    for arm in desc["arms"]:
        parts += [Text(f"{arm['name']}  {arm['spec']}", style="bold"), render_grid(arm["grid"]), Text("")]
    return Group(*parts)


def _arms_table(arms: list[dict]) -> Table:
    table = Table(box=None, pad_edge=False)
    for title in ("arm", "spec", "trains", "FLOP ratio", "r_pred", "schedule"):
        table.add_column(title, justify="right" if title in ("trains", "FLOP ratio", "r_pred") else "left")
    for arm in arms:
        schedule = "; ".join(f"{c['rule']} → {c['trainable']:,}" for c in arm.get("schedule", ())) or "-"
        table.add_row(
            Text(arm["name"]),
            Text(arm["spec"]),
            f"{arm['trainable']:,} ({arm['pct']:.1f}%)",
            f"{arm['flop_ratio']:.2f}",
            f"{arm['r_pred']:.0%}",
            Text(schedule),
        )
    return table
