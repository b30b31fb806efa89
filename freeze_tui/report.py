"""The study's table for people: Markdown for `report` into a file, and a Rich renderable that fits
any terminal width (one table when it fits, one block per arm when narrow). Numbers come from
`engine.log.summary.arm_rows`; every value is worded by `freeze_tui.fmt`. No torch."""

from __future__ import annotations

import math
import re

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from engine.log.events import ArmSummary
from engine.log.state import RunState
from engine.log.summary import arm_rows
from freeze_tui import fmt
from freeze_tui.frontier_report import frontier_console_lines, frontier_markdown
from freeze_tui.safe_text import clean

TITLE = "paired fine-tuning: what freezing bought and cost"
# (header in the wide table, header in the compact table, label in the stacked layout)
COLUMNS = [
    ("arm", "arm", "arm"),
    ("trainable", "trains", "trains"),
    ("L start → end", "L start→end", "loss start→end"),
    ("Var(L_t)", "Var", "Var(L_t)"),
    ("val loss", "val", "val loss"),
    ("T", "T", "T"),
    ("r measured", "r", "r"),
    ("r FLOP model", "r FLOP", "r FLOP model"),
    ("p_pre → p_post (95 % CI)", "p pre→post", "p pre→post"),
    ("Δp", "Δp", "Δp"),
]
TABLE_HEADERS = [c[0] for c in COLUMNS]
COMPACT_HEADERS = [c[1] for c in COLUMNS]


def arrow(a: str, b: str) -> str:
    return f"{a} → {b}"


def table_cells(row: ArmSummary, *, intervals: bool = True, extras: bool = True) -> list[str]:
    """The report's columns for one arm, as text (shared by Markdown and the console). `extras`: r's and
    Δp's intervals, the prediction's verdict and the val-loss difference in the cells (Markdown); a
    terminal prints them below the table instead (`interval_lines`)."""
    share = fmt.ci if intervals else (lambda mean, lo, hi: fmt.pct(mean))
    wide = (lambda text: text) if intervals and extras else (lambda text: "")
    return [
        row.arm,
        fmt.pct(row.trainable_pct / 100, 2),
        arrow(fmt.num(row.loss_first), fmt.num(row.loss_last)),
        fmt.num(row.loss_var, 4),
        fmt.num(row.val_loss) + wide(_interval(row.val_loss_ci, fmt.num) + _val_diff(row)),
        fmt.seconds(row.T),
        fmt.pct(row.r) + wide(_interval(row.r_ci, _pts) if not row.is_baseline else ""),
        fmt.pct(row.r_pred) + wide(verdict(row.r_pred_inside)),
        arrow(share(row.p_pre, *row.p_pre_ci), share(row.p_post, *row.p_post_ci)),
        fmt.signed_pts(row.delta_p) + wide(_interval(row.delta_p_ci, _signed)),
    ]


def _unknown(v) -> bool:
    return not isinstance(v, (int, float)) or math.isnan(v)


def _pts(v: float) -> str:
    return f"{100 * v:.1f}"


def _signed(v: float) -> str:
    return f"{100 * v:+.1f}"


def _interval(ci, word) -> str:
    """' [lo, hi]', or nothing when the row has no such interval (an older log) or it is unknown."""
    if not isinstance(ci, (list, tuple)) or len(ci) != 2 or any(_unknown(v) for v in ci):
        return ""
    return f" [{word(ci[0])}, {word(ci[1])}]"


def _val_diff(row: ArmSummary) -> str:
    diff = row.val_diff
    if _unknown(diff) or not diff:
        return ""
    return f" (Δ {diff:+.3f}{_interval(row.val_diff_ci, lambda v: f'{v:+.3f}')})"


def verdict(flag) -> str:
    """Whether the FLOP model's prediction lies in r's interval."""
    return "" if flag is None else (" (inside r's interval)" if flag else " (outside r's interval)")


def interval_lines(state: RunState) -> list[str]:
    """Per arm r's interval (and the prediction inside/outside it), the median-step r and Δp's paired
    interval, then p's base rate: for the headless end, whose table has no room for them."""
    rows = arm_rows(state)
    lines = [
        f"{row.arm}: r {fmt.pct(row.r)}{_interval(row.r_ci, _pts)}, median step "
        f"{fmt.pct(row.r_median)}; FLOP model {fmt.pct(row.r_pred)}{verdict(row.r_pred_inside)}; "
        f"Δp {fmt.signed_pts(row.delta_p)}{_interval(row.delta_p_ci, _signed)};"
        f"{_val_diff(row).replace(' (Δ', ' val loss Δ').removesuffix(')')}"
        for row in rows
        if row.arm != state.baseline
    ]
    if rows:
        lines.append(
            f"95 % intervals: {rows[0].ci_basis}; p's base rate (validation text): {fmt.pct(state.common_base_rate)}"
        )
    return lines


def status_parts(state: RunState) -> tuple[str, str]:
    """How the run ended: (the part to stress, the rest); Markdown and the console style the first."""
    status, steps = state.status, state.step + 1
    if status == "finished":
        return "", "The run finished."
    if status in ("stopped", "failed"):
        return f"The run {status}", f" after {steps} steps: numbers cover only what ran."
    return (
        "The run did not finish",
        f" (no run_end after {steps} steps): its writer was killed or is still running.",
    )


def status_text(state: RunState) -> Text:
    strong, rest = status_parts(state)
    return Text.assemble((strong, "bold"), rest)


def _meta_fields(state: RunState) -> list[tuple[str, str]]:
    data = state.data
    return [
        ("Model:", str(state.model.get("name", "?"))),
        ("data:", str(data.get("source", "?"))),
        ("tokens:", str(data.get("n_tokens", "?"))),
        ("device:", str(state.config.get("device", "?"))),
        ("steps:", str(state.step + 1)),
    ]


def _meta_line(state: RunState) -> str:
    return " · ".join(f"{label} {value}" for label, value in _meta_fields(state))


class Packed:
    """`label value` fields packed into lines as wide as the console (see `pack_fields`)."""

    def __init__(
        self, fields: list[tuple[str, str]], sep: str = " · ", split: str = "", label_style: str = "dim"
    ) -> None:
        self.fields, self.sep, self.split, self.label_style = fields, sep, split, label_style

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from pack_fields(
            self.fields, options.max_width, sep=self.sep, split=self.split, label_style=self.label_style
        )

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widths = [len(label) + 1 + len(value) for label, value in self.fields] or [0]
        return Measurement(max(widths), sum(widths) + len(self.sep) * (len(widths) - 1)).clamp(
            max_width=options.max_width
        )


def _notes(state: RunState, rows: list[ArmSummary]) -> list[str]:
    notes = [f"arm {r.arm} stopped early: {r.stopped}" for r in rows if r.stopped]
    notes += [f"{m.level}: {m.message}" for m in state.messages if m.level == "error"]
    return notes


def _legend(state: RunState) -> str:
    """What the table's numbers are, in words, with the basis of every interval."""
    rows = arm_rows(state)
    basis = (rows[0].loss_basis or "epoch means") if rows else "epoch means"
    base = state.baseline
    seeds = f"Intervals are 95 % t intervals across {len(state.past) + 1} seeds. " if state.past else ""
    r_basis = "across seeds" if state.past else "a paired block bootstrap over steps"
    return (
        f"{seeds}Training loss L start → end: {basis}. Var(L_t): variance of the arm's per-step training "
        f"loss L_t in the last epoch. Val Δ: L_arm − L_{base} on the same validation batches, paired t interval. "
        f"r = (T_{base} − T_arm) / T_{base}; its interval is {r_basis} (arms take turns going first each "
        "step); the FLOP model's r is marked inside or outside it. "
        f"p = share of generated tokens among the {len(state.common_tokens)} most common training tokens "
        f"(S); the validation text itself scores {fmt.pct(state.common_base_rate)} (base rate). "
        "p's interval covers prompts × seeds (clipped to [0, 1]); Δp pairs each sample with its "
        "pre-training twin (same prompt and seed)."
    )


def markdown_report(state: RunState, source: str = "") -> str:
    """The study's table as Markdown, for `freeze-tui report` into a file or pipe."""
    rows = arm_rows(state)
    strong, rest = status_parts(state)
    lines = [f"# freeze-tui report{': ' + _one_line(source) if source else ''}", "", _one_line(_meta_line(state)), ""]
    lines += [(f"**{strong}**" if strong else "") + rest, ""]
    lines.append("| " + " | ".join(TABLE_HEADERS) + " |")
    lines.append("|" + "---|" * len(TABLE_HEADERS))
    for row in rows:
        cells = [_one_line(c).replace("|", "\\|") for c in table_cells(row)]  # a newline would end the row
        lines.append("| " + " | ".join(cells) + " |")
    notes = _notes(state, rows)
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    if state.arms:  # a run that failed before it started has no arms to explain
        lines += ["", _legend(state)]
    lines += frontier_markdown(state)  # forgetting, expected S, Pareto: runs that measured them
    return "\n".join(lines) + "\n"


class SummaryTable:
    """The per-arm table at any width: wide (with intervals), compact, or one block per arm,
    whichever is the widest layout that fits without breaking a word or a number."""

    def __init__(self, state: RunState, title: str | None = TITLE) -> None:
        self.rows = arm_rows(state)
        self.title = title

    def _table(self, intervals: bool) -> Table:
        headers = TABLE_HEADERS if intervals else COMPACT_HEADERS
        table = Table(title=self.title, title_justify="left", padding=(0, 1))
        for header in headers:
            table.add_column(header, no_wrap=True)
        for row in self.rows:
            table.add_row(*(Text(_safe(cell)) for cell in table_cells(row, intervals=intervals, extras=False)))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        for intervals in (True, False):
            table = self._table(intervals)
            if Measurement.get(console, options.update_width(10_000), table).maximum <= width:
                yield table
                return
        if self.title:
            yield Text(self.title)
        for row in self.rows:
            yield stacked_block(row, width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)


def stacked_block(row: ArmSummary, width: int) -> Text:
    """One arm as `label value` fields packed into lines of at most `width` (the narrow layout)."""
    cells = table_cells(row, intervals=False)
    fields = [(label, value) for (_, _, label), value in zip(COLUMNS[1:], cells[1:], strict=True)]
    return Text("\n").join([Text(_safe(row.arm), style="bold"), *pack_fields(fields, width, indent=2)])


def pack_fields(
    fields: list[tuple[str, str]],
    width: int,
    indent: int = 0,
    sep: str = " · ",
    split: str = "",
    label_style: str = "dim",
) -> list[Text]:
    """Greedy line packing of `label value` fields: a field is never split unless it alone is wider
    than `width`; then it breaks after a `split` character (a spec's `,`), else where it must."""
    lines: list[Text] = []
    line = Text(" " * indent)
    for label, value in fields:
        pieces = _field_pieces(_safe(label), _safe(value), width - indent, split, label_style)
        if len(pieces) > 1 or (len(line) > indent and len(line) + len(sep) + len(pieces[0]) > width):
            if len(line) > indent:
                lines.append(line)
            line = Text(" " * indent)
        if len(line) > indent:
            line.append(sep, style="dim")
        for piece in pieces[:-1]:
            lines.append(Text(" " * indent).append_text(piece))
        line.append_text(pieces[-1])
    if len(line) > indent:
        lines.append(line)
    return lines


def _field_pieces(label: str, value: str, room: int, split: str, label_style: str) -> list[Text]:
    piece = Text.assemble((label, label_style), " ", value)
    if len(piece) <= room or not split:
        return [piece]
    pieces = [Text.assemble((label, label_style), " ")]
    for part in re.split(f"(?<={re.escape(split)})", value):
        if len(pieces[-1]) + len(part) > room and pieces[-1].plain.strip() != label:
            pieces.append(Text("  "))  # a continuation, indented under the value
        pieces[-1].append(part)
    return pieces


def report_renderable(state: RunState, source: str = "") -> Group:
    """`freeze-tui report` on a terminal: the same content as the Markdown, laid out for the width."""
    rows = arm_rows(state)
    parts: list[RenderableType] = [
        Text(_safe(f"freeze-tui report{': ' + source if source else ''}"), style="bold"),
        Packed(_meta_fields(state)),
        status_text(state),
    ]
    if state.arms:
        parts.append(SummaryTable(state, title=None))
        parts += [Text(_safe(line)) for line in interval_lines(state)]  # a narrow table has no room for them
        parts += [Text(_safe(line)) for line in frontier_console_lines(state)]
    parts += [Text("• " + _safe(n)) for n in _notes(state, rows)]
    if state.arms:
        parts.append(Text(clean(_legend(state), one_line=True, max_len=2000), style="dim"))
    return Group(*parts)


def _one_line(text: object) -> str:
    """Text from the run (arm and run names) on one Markdown line: a newline shows as ⏎."""
    return clean(text, one_line=True, max_len=4000)


def _safe(text: object) -> str:
    return clean(text, one_line=True, max_len=500)
