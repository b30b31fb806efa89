"""The Loss view's `d` mode: the paired difference L_arm − L_base per step (smoothed like the curves,
95 % band faint around it), a zero line, and each validation's gap with its interval as a bar."""

from __future__ import annotations

from freeze_tui.draw import charts, difference
from freeze_tui.draw.colors import PLAIN, Palette

GAP_MARKER = "◆"


def draw_difference(plt, state, opts: charts.ChartOptions, width: int, palette: Palette = PLAIN) -> None:
    plt.clear_data()
    points = charts.points_for(width) // 2
    bands, lines, curves = difference.difference_series(state, opts, points, palette.arm_rgb)
    xs = [x for s in lines for x in (s.xs[:1] + s.xs[-1:])]
    if xs:
        plt.hline(0.0, palette.rgb("grid"))
        plt.xticks(*charts.step_ticks(min(xs), max(xs), width, opts.axis))
    for band in bands:
        if band.xs:
            plt.plot(band.xs, band.ys, color=band.rgb, marker="braille")
    for line in lines:
        if line.xs:
            plt.plot(line.xs, line.ys, color=line.rgb, label=line.label or None, marker="braille")
    index = {name: i for i, name in enumerate(state.arms)}
    for name, x, gap in difference.gap_points(state, opts):
        rgb = palette.arm_rgb(index[name])
        if gap.lo == gap.lo:  # an interval: a vertical bar from lo to hi
            plt.plot([x, x], [gap.lo, gap.hi], color=rgb, marker="│")
        plt.scatter([x], [gap.gap], color=rgb, marker=GAP_MARKER)
    linear = ", linear y" if opts.log_y else ""  # `l` chose log y for the loss curves: say why not here
    notes = [opts.describe(), difference.band_note(curves), f"{GAP_MARKER} validation gap"]
    notes += ["linear y: it can be negative"] if linear else []
    name = difference.title(state)
    titles = (
        f"{name} per step ({'; '.join(n for n in notes if n)})",
        f"{name} per step, 95 % band, {GAP_MARKER} val gap{linear}",
        f"{name}, 95 % band, {GAP_MARKER} val gap{linear}",
        f"{name}{linear}",
        name,
    )  # plotext drops a title wider than its chart: the longest that fits
    plt.title(next((t for t in titles if len(t) <= width - 4), name))
    plt.xlabel({"step": "step", "tokens": "tokens seen", "time": "wall time"}[opts.axis])
