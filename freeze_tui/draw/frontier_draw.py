"""Drawing of the Frontier view: two character scatter plots with interval bars, and the arms' table.
Pure: FrontierPoints (engine.log.frontier) in, rich Text out; tested without an App.

Each arm is its number (1, 2, … in arm order, as in the legend) at its point; a vertical bar spans
its y interval and a horizontal one its x interval; arms on a Pareto front are bold and starred in
the legend; `random-*` arms (the controls of `freeze-tui study`) are small dim dots, a cloud.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text

from engine.log.frontier import FrontierPoint
from freeze_tui.draw import fmt
from freeze_tui.draw.colors import PLAIN, Palette

Y_LABEL_WIDTH = 7
CLOUD = "∘"


@dataclass(frozen=True)
class Mark:
    x: tuple[float, float, float]  # value, low, high
    y: tuple[float, float, float]
    glyph: str
    style: Style
    cloud: bool = False


def glyph_of(index: int) -> str:
    return "123456789abcdefghijklmnopqrstuvwxyz"[index] if index < 35 else "+"


def _finite(v: float) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _span(values: list[float]) -> tuple[float, float]:
    """The axis range: every value and 0, padded 5 % (a single value gets ±1e-3)."""
    lo, hi = min([*values, 0.0]), max([*values, 0.0])
    pad = (hi - lo) * 0.05 or 1e-3
    return lo - pad, hi + pad


def scatter(
    marks: Sequence[Mark],
    width: int,
    height: int,
    x_fmt: Callable[[float], str],
    y_fmt: Callable[[float], str],
    empty: str = "waiting for the first validation",
) -> list[Text]:
    """`height` lines of at most `width` cells: the plot, the y axis labelled at top/middle/bottom, the
    x axis labelled at both ends; dotted lines at x = 0 and y = 0. `empty`: said while no point is known."""
    shown = [m for m in marks if _finite(m.x[0]) and _finite(m.y[0])]
    plot_w, plot_h = max(8, width - Y_LABEL_WIDTH - 1), max(3, height - 1)
    if not shown:
        return [Text(empty, style="dim")]
    xs = [v for m in shown for v in m.x if _finite(v)]
    ys = [v for m in shown for v in m.y if _finite(v)]
    (x0, x1), (y0, y1) = _span(xs), _span(ys)

    def col(x: float) -> int:
        return max(0, min(plot_w - 1, round((x - x0) / (x1 - x0) * (plot_w - 1))))

    def row(y: float) -> int:
        return max(0, min(plot_h - 1, plot_h - 1 - round((y - y0) / (y1 - y0) * (plot_h - 1))))

    cells: list[list[tuple[str, Style]]] = [[(" ", Style())] * plot_w for _ in range(plot_h)]
    dim = Style(dim=True)
    for c in range(plot_w):
        cells[row(0.0)][c] = ("┈", dim)
    for r in range(plot_h):
        cells[r][col(0.0)] = ("┊", dim)
    for m in sorted(shown, key=lambda m: not m.cloud):  # the cloud first, the arms on top of it
        r, c = row(m.y[0]), col(m.x[0])
        if not m.cloud:
            if _finite(m.x[1]) and _finite(m.x[2]):
                for cc in range(col(m.x[1]), col(m.x[2]) + 1):
                    cells[r][cc] = ("─", m.style)
            if _finite(m.y[1]) and _finite(m.y[2]):
                for rr in range(row(m.y[2]), row(m.y[1]) + 1):
                    cells[rr][c] = ("│", m.style)
        cells[r][c] = (m.glyph, m.style)
    labels = {0: y_fmt(y1), plot_h // 2: y_fmt((y0 + y1) / 2), plot_h - 1: y_fmt(y0)}
    lines = []
    for r in range(plot_h):
        line = Text(labels.get(r, "")[:Y_LABEL_WIDTH].rjust(Y_LABEL_WIDTH), style="dim") + Text(
            "┤" if r in labels else "│", style="dim"
        )
        for glyph, style in cells[r]:
            line.append(glyph, style)
        lines.append(line)
    left, right = x_fmt(x0), x_fmt(x1)
    axis = " " * (Y_LABEL_WIDTH + 1) + left + " " * max(1, plot_w - len(left) - len(right)) + right
    lines.append(Text(axis, style="dim"))
    return lines


def marks_for(
    points: Sequence[FrontierPoint],
    x_of: Callable[[FrontierPoint], tuple],
    y_of: Callable[[FrontierPoint], tuple],
    front_of: Callable[[FrontierPoint], bool],
    palette: Palette = PLAIN,
) -> list[Mark]:
    out = []
    for index, p in enumerate(points):
        style = palette.arm(index) + Style(bold=front_of(p))
        if p.is_random:
            out.append(Mark(x_of(p), y_of(p), CLOUD, Style(dim=True), cloud=True))
        else:
            out.append(Mark(x_of(p), y_of(p), glyph_of(index), style))
    return out


def _loss(v: float) -> str:
    return fmt.DASH if not _finite(v) else f"{v:+.3f}"


def _pct(v: float) -> str:
    return fmt.DASH if not _finite(v) else f"{round(100 * v) + 0:d}%"  # + 0: no "-0%"


def panels(points: Sequence[FrontierPoint], width: int, height: int, palette: Palette = PLAIN) -> list[Text]:
    """The two planes: side by side when `width` allows two plots of 36+ cells, else one above the other."""
    side = width >= 2 * 36 + 2
    w = (width - 2) // 2 if side else width
    h = height if side else max(4, height // 2)
    time_plane = scatter(
        marks_for(points, lambda p: p.r, lambda p: p.val_gap, lambda p: p.front_time, palette), w, h, _pct, _loss
    )
    forget_plane = scatter(
        marks_for(points, lambda p: p.target_gain, lambda p: p.forgetting, lambda p: p.front_forget, palette),
        w,
        h,
        _loss,
        _loss,
        empty="no forgetting measured yet (logs from before retain sets have none)",
    )
    titles = (
        Text("val gap to full ↓  vs  time saving r →", style="bold"),
        Text("forgetting ↓  vs  target-loss gain →", style="bold"),
    )
    if not side:
        return [titles[0], *time_plane, titles[1], *forget_plane]
    left = [titles[0], *time_plane]
    right = [titles[1], *forget_plane]
    lines = []
    for i in range(max(len(left), len(right))):
        a = left[i].copy() if i < len(left) else Text("")
        a.pad_right(w - a.cell_len + 2) if a.cell_len < w + 2 else None
        lines.append(a + (right[i] if i < len(right) else Text("")))
    return lines


def legend(points: Sequence[FrontierPoint], palette: Palette = PLAIN) -> Text:
    """`1 full★  2 targeted◆  ∘ random ×3`: ★ on the time front (left plot), ◆ on the learning–forgetting
    front (right plot)."""
    parts = []
    for index, p in enumerate(points):
        if p.is_random:
            continue
        marks = ("★" if p.front_time else "") + ("◆" if p.front_forget else "")
        parts.append(Text.assemble((glyph_of(index), palette.arm(index)), " ", (p.arm[:16], palette.arm(index)), marks))
    n_random = sum(p.is_random for p in points)
    if n_random:
        parts.append(Text(f"{CLOUD} random ×{n_random}", style="dim"))
    return Text("  ").join(parts) + Text("   ★◆ on the left / right front", style="dim")


def ci_text(value: tuple[float, float, float], f: Callable[[float], str]) -> str:
    v, lo, hi = value
    if not _finite(v):
        return fmt.DASH
    return f(v) + (f" [{f(lo)}, {f(hi)}]" if _finite(lo) and _finite(hi) else "")


def table_lines(points: Sequence[FrontierPoint], base_rate: float, palette: Palette = PLAIN) -> list[Text]:
    """Per arm: r, val gap, forgetting (with intervals), expected share of S before → now."""
    head = Text(f"{'arm':<12} {'r':>5} {'val gap [95 %]':>23} {'forgetting [95 %]':>23} {'E[S] 0→now':>11}", "bold")
    lines = [head]
    for index, p in enumerate(points):
        glyph = CLOUD if p.is_random else glyph_of(index)
        name = Text(f"{glyph} {p.arm}"[:12].ljust(12), style="dim" if p.is_random else palette.arm(index))
        es = f"{_pct(p.expected_s_pre)}→{_pct(p.expected_s)}"
        row = f" {_pct(p.r[0]):>5} {ci_text(p.val_gap, _loss):>23} {ci_text(p.forgetting, _loss):>23} {es:>11}"
        lines.append(name + Text(row))
    lines.append(
        Text(
            f"E[S]: probability mass on S's tokens at the validation positions (base rate {_pct(base_rate)}); "
            "intervals: paired by validation / retain batch",
            style="dim",
        )
    )
    return lines
