"""What the paired difference chart draws (L_arm − L_base per step, its band, the validation gaps) and
the validation table beside it, as plain data and rich Text. Pure: engine/log/differences computes."""

from __future__ import annotations

import math

from rich.style import Style
from rich.text import Text

from engine.log.differences import (
    BLOCKS,
    SEEDS,
    DifferenceCurve,
    ValidationGap,
    difference_curves,
    epoch_end_step,
    paired_arms,
    step_index,
    validation_gaps,
)
from engine.log.state import RunState
from freeze_tui.draw.charts import ChartOptions, Series, label, window, x_of
from freeze_tui.draw.colors import PLAIN, Palette
from freeze_tui.draw.safe_text import safe
from freeze_tui.draw.series import MAX_POINTS, bucket_centers, bucket_means, finite_pairs

DEFAULT_OPTIONS = ChartOptions()


def warm_imports() -> None:
    """Import what the band computes with (scipy, arch and its pandas), so the first `d` does not wait."""
    import arch.bootstrap  # noqa: F401
    import scipy.signal  # noqa: F401


def title(state: RunState) -> str:
    """`targeted − full` for one pair, `arm − full` for several (each line's legend names its arm)."""
    pairs = paired_arms(state)
    if len(pairs) == 1:
        return f"{label(pairs[0][0])} − {label(pairs[0][1])}"
    bases = {base for _, base in pairs}
    return f"arm − {label(bases.pop())}" if len(bases) == 1 else "arm − its run's baseline"


def band_note(curves: list[DifferenceCurve]) -> str:
    """What the faint band is, for the chart's title."""
    kinds = {c.band for c in curves}
    if SEEDS in kinds:
        return f"band: 95 % t interval over {max(c.seeds for c in curves)} seeds"
    if BLOCKS in kinds and any(math.isfinite(v) for c in curves for v in c.lo):
        return "band: 95 % from block sums"
    return "band: after 30 blocks of steps" if curves else ""


def _xs(state: RunState, opts: ChartOptions, rows: range, max_points: int) -> list[float]:
    return [x_of(state, opts.axis, rows.start + i) for i in bucket_centers(len(rows), max_points)]


def difference_series(
    state: RunState, opts: ChartOptions = DEFAULT_OPTIONS, max_points: int = MAX_POINTS, palette=None
) -> tuple[list[Series], list[Series], list[DifferenceCurve]]:
    """(band edges, smoothed lines, curves) for every shown paired arm, bucket-averaged to max_points."""
    rgb_of, rows = palette or PLAIN.arm_rgb, window(state, opts.zoom)
    index = {name: i for i, name in enumerate(state.arms)}
    curves = [c for c in difference_curves(state, opts.smoothing) if c.arm not in opts.hidden]
    xs = _xs(state, opts, rows, max_points)
    bands, lines = [], []
    for curve in curves:
        r, g, b = rgb_of(index[curve.arm])
        for edge in (curve.lo, curve.hi):
            bands.append(Series("", *finite_pairs(xs, _bucketed(edge, rows, max_points)), (r // 2, g // 2, b // 2)))
        values = _bucketed(curve.smoothed, rows, max_points)
        lines.append(Series(label(curve.arm), *finite_pairs(xs, values), (r, g, b)))
    return bands, lines, curves


def _bucketed(values, rows: range, max_points: int) -> list[float]:
    return bucket_means(values[rows.start : rows.stop].tolist(), max_points)


def gap_points(state: RunState, opts: ChartOptions = DEFAULT_OPTIONS) -> list[tuple[str, float, ValidationGap]]:
    """(arm, x, gap) of every validation of every shown paired arm inside the zoom."""
    rows = window(state, opts.zoom)
    if not rows:
        return []
    first = state.steps[rows.start]
    out = []
    for name, base in paired_arms(state):
        if name in opts.hidden:
            continue
        for gap in validation_gaps(state, name, base):
            if gap.step >= first and math.isfinite(gap.gap):
                out.append((name, x_of(state, opts.axis, step_index(state, gap.step)), gap))
    return out


def validation_series(state: RunState, opts: ChartOptions = DEFAULT_OPTIONS, palette=None) -> list[Series]:
    """Each shown arm's validation losses as points at the step each validation followed (inside the zoom),
    for markers on the loss chart."""
    rgb_of, rows = palette or PLAIN.arm_rgb, window(state, opts.zoom)
    if not rows:
        return []
    first, out = state.steps[rows.start], []
    for index, (name, arm) in enumerate(state.arms.items()):
        points = [(epoch_end_step(state, epoch), record.val_loss) for epoch, record in arm.epochs]
        xs = [x_of(state, opts.axis, step_index(state, step)) for step, _ in points]
        ys = [float(v) if isinstance(v, (int, float)) else math.nan for _, v in points]
        shown = [(x, y) for (step, _), x, y in zip(points, xs, ys, strict=True) if step >= first]
        if name not in opts.hidden and shown:
            out.append(Series(label(name), *finite_pairs([x for x, _ in shown], [y for _, y in shown]), rgb_of(index)))
    return out


def signed(value: float, digits: int = 3) -> str:
    return "–" if not math.isfinite(value) else f"{value:+.{digits}f}"


def gap_text(gap: ValidationGap) -> str:
    """`+0.086 ±0.015` (the t interval is symmetric), or the bare gap where no per-batch values pair."""
    half = (gap.hi - gap.lo) / 2
    seeds = f" ({gap.seeds} seeds)" if gap.seeds > 1 else ""
    return signed(gap.gap) + (f" ±{half:.3f}" if math.isfinite(half) else "") + seeds


def validation_table(state: RunState, palette: Palette = PLAIN) -> Text:
    """Validation loss per arm and epoch, and each arm's gap to its baseline with the paired 95 % interval."""
    across = f", across {state.replicates} seeds" if state.past else ""
    lines = [Text(f"validation loss and gap to the baseline ± 95 % (paired by batch{across})", style="dim")]
    bases = dict(paired_arms(state))
    for index, (name, arm) in enumerate(state.arms.items()):
        lines.append(safe(name, Style(bold=True) + palette.arm(index), max_len=24))
        gaps = {g.epoch: g for g in validation_gaps(state, name, bases[name])} if name in bases else {}
        for epoch, record in arm.epochs:
            gap = gaps.get(epoch)
            loss = gap.val_loss if gap else record.val_loss  # with seeds: the mean over them, as the gap
            shown = f"{loss:.3f}" if isinstance(loss, (int, float)) and math.isfinite(loss) else "–"
            lines.append(Text(f" ep{epoch + 1} {shown}" + (f" {gap_text(gap)}" if gap else " (baseline)")))
        if not arm.epochs:
            lines.append(Text(" no validation yet", style="dim"))
    return Text("\n").join(lines)
