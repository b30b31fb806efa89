"""The study's table for people: Markdown for `report` into a file, and a Rich renderable that fits
any terminal width (one table when it fits, one block per arm when narrow). Numbers come from
`engine.log.summary.arm_rows`; every value is worded by `freeze_tui.draw.fmt`. No torch."""

from __future__ import annotations

import math
import re
import weakref

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from engine.core.stats import MIN_BLOCKS, MIN_PROMPTS, MIN_SEEDS_FOR_VERDICT, WARMUP_STEPS
from engine.log.comparisons import margin_of, run_groups, sampler
from engine.log.events import UNSET, ArmSummary, StudyResult, measured_value
from engine.log.state import RunState
from engine.log.study import study_summary
from engine.log.summary import arm_rows, summarised_seeds
from freeze_tui.draw import fmt
from freeze_tui.draw.frontier_report import frontier_console_lines, frontier_markdown, study_lines
from freeze_tui.draw.merged_runs import runs_markdown
from freeze_tui.draw.safe_text import clean
from freeze_tui.draw.throughput_lines import throughput_lines

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


_ROWS: list = []  # [weakref to the state, its key, its rows]: the last state's rows


def rows_of(state: RunState) -> list[ArmSummary]:
    """arm_rows of the state as it is now, computed once for the table, the lines below it and the
    legend (each r needs a bootstrap: a report of a long run would pay for it three times). The state is
    held by a weak reference: a new state that a freed one's id is reused for is not taken for it."""
    key = (state.step, state.status, len(state.past), len(state.messages), state.t_last)
    if not _ROWS or _ROWS[0]() is not state or _ROWS[1] != key:
        _ROWS[:] = [weakref.ref(state), key, arm_rows(state)]
    return _ROWS[2]


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
        fmt.num(row.val_loss) + wide(_interval(measured_value(row.val_loss_ci), fmt.num) + _val_diff(row)),
        fmt.seconds(row.T),
        _r_cell(row, wide),
        fmt.pct(row.r_pred) + wide(verdict(measured_value(row.r_pred_verdict), measured_value(row.r_pred_margin))),
        arrow(share(row.p_pre, *row.p_pre_ci), share(row.p_post, *row.p_post_ci)),
        fmt.signed_pts(row.delta_p) + wide(_interval(measured_value(row.delta_p_ci), _signed)),
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
    diff = measured_value(row.val_diff)
    if _unknown(diff) or not diff:
        return ""
    return f" (Δ {diff:+.3f}{_interval(measured_value(row.val_diff_ci), lambda v: f'{v:+.3f}')})"


def _r_cell(row: ArmSummary, wide) -> str:
    """r with its interval, "baseline" for the arm the others are timed against, and for an arm that
    is its run's only one "T from separate runs: not paired" (shown even where intervals are not)."""
    if row.is_baseline:
        return f"– ({row.r_note})" if row.r_note else "baseline"
    return fmt.pct(row.r) + wide(_r_extra(row.r_ci, row.r_note))


def _r_extra(r_ci, r_note: str | None) -> str:
    """r's interval, or why there is none (too few steps, another run's clock)."""
    text = _interval(r_ci, _pts)
    return text or (f" ({r_note})" if r_note else "")


def verdict(word, margin=None) -> str:
    """The FLOP model's prediction against r's interval, as an equivalence test within ± margin."""
    if not isinstance(word, str):
        return ""
    points = f" ±{100 * margin:.0f} pts" if isinstance(margin, (int, float)) else ""
    return f" ({word}{points})"


def interval_lines(state: RunState) -> list[str]:
    """Per arm r's interval (or why none), the median-step r with its interval (and whether the two
    disagree), the FLOP model's verdict, Δp's and the val-loss gap's intervals with Holm-adjusted p
    values, then the basis: for the headless end and the console report."""
    rows = rows_of(state)
    lines = [_interval_line(row) for row in rows if not row.is_baseline]
    if rows:
        lines.append(
            f"95 % intervals: {rows[0].ci_basis}; p's base rate (validation text): {fmt.pct(state.common_base_rate)}"
        )
        lines.append(f"Every {session_label(state)}.")
    throughput = throughput_lines(state)  # runs since issue 22
    if throughput:
        lines.append("Throughput: " + "; ".join(throughput))
    return lines


def _interval_line(row: ArmSummary) -> str:
    median = f", median step {fmt.pct(row.r_median)}{_interval(measured_value(row.r_median_ci), _pts)}"
    median += " (the two estimates disagree: bursts or a trend)" if measured_value(row.r_estimates_disagree) else ""
    holm = ", ".join(
        f"{label} {_p(measured_value(getattr(row, key + '_p_holm')))}"
        for key, label in (("r", "r"), ("val_diff", "val"), ("delta_p", "Δp"))
        if not _unknown(measured_value(getattr(row, key + "_p_holm")))
    )
    parts = [
        f"{row.arm} vs {row.baseline or '?'}: r {fmt.pct(row.r)}{_r_extra(row.r_ci, row.r_note)}{median}",
        f"FLOP model {fmt.pct(row.r_pred)}{verdict(row.r_pred_verdict, measured_value(row.r_pred_margin))}",
        f"Δp {fmt.signed_pts(row.delta_p)}{_interval(row.delta_p_ci, _signed)}",
        _val_diff(row).replace(" (Δ", "val loss Δ").removesuffix(")"),
        f"Holm-adjusted p: {holm}" if holm else "",
    ]
    return "; ".join(part for part in parts if part)


def _p(value) -> str:
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def status_parts(state: RunState) -> tuple[str, str]:
    """How the run ended: (the part to stress, the rest); Markdown and the console style the first."""
    status, steps = state.status, state.step + 1
    if status == "finished":
        return "", "The run finished."
    if status in ("stopped", "failed") and state.replicates > 1:  # --seeds N: how many seeds count
        done = len(state.finished_replicates)
        covered = "the finished seeds only" if done else "only what ran"
        return f"The run {status}", f" with {done} of {state.replicates} seeds finished: numbers cover {covered}."
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
    data = state.data_info
    fields = [
        ("Model:", fmt.or_unknown(state.model_info.name)),
        ("data:", fmt.or_unknown(data.source)),
        ("tokens:", fmt.or_unknown(data.n_tokens)),
        ("device:", fmt.or_unknown(state.settings.device)),
        ("steps:", str(state.step + 1)),
    ]
    if state.settings.val_blocks:  # measured on a subset (the quick demo's): every val number is of it
        fields.append(("validation:", f"{fmt.or_unknown(data.n_val_blocks)} spread blocks (--val-blocks)"))
    return fields


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
    rows = rows_of(state)
    basis = (rows[0].loss_basis or "epoch means") if rows else "epoch means"
    finished = len(summarised_seeds(state))
    seeds = f"Intervals are 95 % t intervals across {finished} seeds. " if finished > 1 else ""
    r_basis = (
        "a t interval across seeds"
        if finished > 1
        else f"a studentised circular block bootstrap over steps (block length from the data, none below {MIN_BLOCKS} "
        "blocks' worth of steps)"
    )
    merged = len(run_groups(state)) > 1
    order = (
        "each run against its own baseline (full, else its first arm); times of different runs are never paired"
        if merged
        else "arms take turns going first each step"
    )
    family = (measured_value(rows[0].family_size) or 0) if rows else 0
    holm = (
        f" Every arm's primary comparison is with its baseline; p values are Holm-adjusted over the {family} "
        "intervals printed (r, val Δ, Δp per arm)."
        if family
        else ""
    )
    return (
        f"{seeds}Training loss L start → end: {basis}. Var(L_t): variance of the arm's per-step training "
        f"loss L_t in the last epoch. Val Δ: L_arm − L_baseline on the same validation batches, weighted by "
        f"tokens, paired t interval. T: the sum of all step times. r = 1 − ΣT_arm / ΣT_baseline over paired "
        f"steps without each replicate's first {WARMUP_STEPS} (warm-up); its interval is {r_basis} ({order}); "
        f"{session_label(state)}. The FLOP model's r is tested for equivalence: agrees when r's interval lies "
        f"within it ± {100 * margin_of(state):g} points, differs when wholly outside, else undecided (no "
        f"verdict from fewer than {MIN_SEEDS_FOR_VERDICT} seeds).{holm} "
        f"p = share of generated tokens among the {len(state.common_tokens)} most common training tokens "
        f"(S); the validation text itself scores {fmt.pct(state.common_base_rate)} (base rate). "
        f"p: mean within each prompt, t interval over prompts (none below {MIN_PROMPTS} prompts), clipped to "
        f"[0, 1]; Δp pairs each sample with its pre-training twin (same prompt and seed). Sampler: {sampler(state)}."
    )


def session_label(state: RunState) -> str:
    """Where and how r was measured: it holds for this session on this device, not in general."""
    settings = state.settings
    session = settings.readings() if settings.session else None  # logged, and not empty
    parts = [f"device {fmt.or_unknown(settings.device)}"]
    if session is not None:
        threads, cores = ("?" if value is UNSET else value for value in (session.torch_threads, session.cpu_count))
        parts.append(f"{threads} torch threads on {cores} cores")
        load = session.load_avg
        if isinstance(load, list) and load:
            parts.append(f"load {load[0]:.1f} at the start")
    return "r was measured in this session (" + ", ".join(parts) + ") and holds for it, not in general"


def markdown_report(state: RunState, source: str = "") -> str:
    """The study's table as Markdown, for `freeze-tui report` into a file or pipe."""
    rows = rows_of(state)
    strong, rest = status_parts(state)
    lines = [f"# freeze-tui report{': ' + _one_line(source) if source else ''}", "", _one_line(_meta_line(state)), ""]
    lines += runs_markdown(state)  # merged logs: which run each short name is
    lines += [(f"**{strong}**" if strong else "") + rest, ""]
    lines.append("| " + " | ".join(TABLE_HEADERS) + " |")
    lines.append("|" + "---|" * len(TABLE_HEADERS))
    for row in rows:
        cells = [_one_line(c).replace("|", "\\|") for c in table_cells(row)]  # a newline would end the row
        lines.append("| " + " | ".join(cells) + " |")
    notes = _notes(state, rows)
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    details = interval_lines(state)
    if details:
        lines += ["", *(f"- {line}" for line in details)]
    if state.arms:  # a run that failed before it started has no arms to explain
        lines += ["", _legend(state)]
    lines += frontier_markdown(state)  # forgetting, expected S, Pareto: runs that measured them
    verdicts = study_lines(_study(state, rows))  # `freeze-tui study`: does each method beat random?
    if verdicts:
        lines += ["", "## Selectors against random controls", "", verdicts[0], ""]
        lines += [f"- {line.strip()}" for line in verdicts[1:]]
    return "\n".join(lines) + "\n"


class SummaryTable:
    """The per-arm table at any width: wide (with intervals), compact, or one block per arm,
    whichever is the widest layout that fits without breaking a word or a number."""

    def __init__(self, state: RunState, title: str | None = TITLE) -> None:
        self.rows = rows_of(state)
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
    rows = rows_of(state)
    parts: list[RenderableType] = [
        Text(_safe(f"freeze-tui report{': ' + source if source else ''}"), style="bold"),
        Packed(_meta_fields(state)),
        status_text(state),
    ]
    if state.arms:
        parts.append(SummaryTable(state, title=None))
        parts += [Text(_safe(line)) for line in interval_lines(state)]  # a narrow table has no room for them
        parts += [Text(_safe(line)) for line in frontier_console_lines(state)]
        parts += [Text(_safe(line)) for line in study_lines(_study(state, rows))]
    parts += [Text("• " + _safe(n)) for n in _notes(state, rows)]
    if state.arms:
        parts.append(Text(clean(_legend(state), one_line=True, max_len=2000), style="dim"))
    return Group(*parts)


def _study(state: RunState, rows: list[ArmSummary]) -> StudyResult | None:
    return study_summary(state, {r.arm: r for r in rows})


def _one_line(text: object) -> str:
    """Text from the run (arm and run names) on one Markdown line: a newline shows as ⏎."""
    return clean(text, one_line=True, max_len=4000)


def _safe(text: object) -> str:
    return clean(text, one_line=True, max_len=500)


def pair_lines(state: RunState, first: str, second: str) -> list[str]:
    """`report --pair A,B` in words: B against A, every difference paired (see comparisons.pair_row)."""
    from engine.log.comparisons import pair_row

    row = pair_row(state, first, second)
    seed = f" (seed replicate {row.replicate})" if row.replicate is not None else ""
    return [
        f"{second} vs {first}{seed}, paired within one run:",
        f"  r {fmt.pct(row.r)}{_r_extra(row.r_ci, row.r_note)} (T_{first} as the baseline), "
        f"median step {fmt.pct(row.r_median)}{_interval(row.r_median_ci, _pts)}"
        + (" — the two estimates disagree" if row.r_estimates_disagree else ""),
        f"  validation loss {second} − {first}: {fmt.num(row.val_diff)}"
        f"{_interval(row.val_diff_ci, lambda v: f'{v:+.3f}')} (same batches, weighted by tokens)",
        f"  p_post {second} − {first}: {fmt.signed_pts(row.p_post_diff)}"
        f"{_interval(row.p_post_diff_ci, _signed)} (same prompts and seeds, t interval over prompts)",
        f"  {session_label(state)}",
    ]
