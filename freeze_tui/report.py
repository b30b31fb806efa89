"""The study's table for people: Markdown for `report` into a file, and a Rich renderable that fits
any terminal width (one table when it fits, one block per arm when narrow). Numbers come from
`engine.log.summary.arm_rows`; every value is worded by `freeze_tui.fmt`. No torch."""

from __future__ import annotations

import re

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from engine.log.state import RunState
from engine.log.summary import arm_rows
from freeze_tui import fmt
from freeze_tui.safe_text import clean

TITLE = "paired fine-tuning: what freezing bought and cost"
# (header in the wide table, header in the compact table, label in the stacked layout)
COLUMNS = [
    ("arm", "arm", "arm"),
    ("trainable", "trains", "trains"),
    ("loss L_1 → L_K", "loss L1→LK", "loss L1→LK"),
    ("Var(L_k)", "Var", "Var(L_k)"),
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


def table_cells(row: dict, *, intervals: bool = True) -> list[str]:
    """The report's columns for one arm, as text (shared by Markdown and the console)."""
    share = fmt.ci if intervals else (lambda mean, lo, hi: fmt.pct(mean))
    return [
        row["arm"],
        fmt.pct(row["trainable_pct"] / 100, 2),
        arrow(fmt.num(row["loss_first"]), fmt.num(row["loss_last"])),
        fmt.num(row["loss_var"], 4),
        fmt.num(row["val_loss"]),
        fmt.seconds(row["T"]),
        fmt.pct(row["r"]),
        fmt.pct(row["r_pred"]),
        arrow(share(*row["p_pre"]), share(*row["p_post"])),
        fmt.signed_pts(row["delta_p"]),
    ]


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


def _notes(state: RunState, rows: list[dict]) -> list[str]:
    notes = [f"arm {r['arm']} stopped early: {r['stopped']}" for r in rows if r["stopped"]]
    notes += [f"{m.level}: {m.message}" for m in state.messages if m.level == "error"]
    return notes


def _legend(state: RunState) -> str:
    base = state.baseline
    return (
        f"r = (T_{base} − T_arm) / T_{base}; p = share of generated tokens "
        f"among the {len(state.common_tokens)} most common training tokens."
    )


def markdown_report(state: RunState, source: str = "") -> str:
    """The study's table as Markdown, for `freeze-tui report` into a file or pipe."""
    rows = arm_rows(state)
    strong, rest = status_parts(state)
    lines = [f"# freeze-tui report{': ' + source if source else ''}", "", _meta_line(state), ""]
    lines += [(f"**{strong}**" if strong else "") + rest, ""]
    lines.append("| " + " | ".join(TABLE_HEADERS) + " |")
    lines.append("|" + "---|" * len(TABLE_HEADERS))
    for row in rows:
        cells = [c.replace("|", "\\|") for c in table_cells(row)]
        lines.append("| " + " | ".join(cells) + " |")
    notes = _notes(state, rows)
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    if state.arms:  # a run that failed before it started has no arms to explain
        lines += ["", _legend(state)]
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
            table.add_row(*(Text(_safe(cell)) for cell in table_cells(row, intervals=intervals)))
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


def stacked_block(row: dict, width: int) -> Text:
    """One arm as `label value` fields packed into lines of at most `width` (the narrow layout)."""
    cells = table_cells(row, intervals=False)
    fields = [(label, value) for (_, _, label), value in zip(COLUMNS[1:], cells[1:], strict=True)]
    return Text("\n").join([Text(_safe(row["arm"]), style="bold"), *pack_fields(fields, width, indent=2)])


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
    parts += [Text("• " + _safe(n)) for n in _notes(state, rows)]
    if state.arms:
        parts.append(Text(_safe(_legend(state)), style="dim"))
    return Group(*parts)


def _safe(text: object) -> str:
    return clean(text, one_line=True, max_len=500)
