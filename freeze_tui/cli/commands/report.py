"""`freeze-tui report LOG...`: the study's table, laid out for a terminal, as Markdown, or as JSON. No torch."""

from __future__ import annotations

import json
import math
import sys

import click
import msgspec

from freeze_tui.cli.logs import state_of, title_of
from freeze_tui.draw.safe_text import clean


def print_report(logs, form: str = "auto", pair: tuple[str, str] | None = None, margin: float | None = None) -> None:
    """Markdown into a file or pipe (or with form="markdown"); on a terminal a layout for its width;
    form="json": every statistic recomputed from the log's steps and samples. `pair`: one paired
    comparison of two arms of one run instead of the table."""
    state = state_of(logs)
    if margin is not None:  # read the log with another stated margin (points of r)
        for each in (state, *state.past):  # every seed replicate's verdict reads it
            each.settings = msgspec.structs.replace(each.settings, equivalence_margin=margin)
    title = title_of(logs)
    if form == "json":
        click.echo(json.dumps(json_report(state, pair), ensure_ascii=False, allow_nan=False, indent=1))
        return
    if pair is not None:
        from freeze_tui.draw.report import pair_lines

        click.echo(clean("\n".join(pair_lines(state, *pair))))
        return
    if form == "markdown" or (form == "auto" and not sys.stdout.isatty()):
        from freeze_tui.draw.report import markdown_report

        click.echo(clean(markdown_report(state, title)), nl=False)
        return
    from rich.console import Console

    from freeze_tui.draw.report import report_renderable

    Console(highlight=False).print(report_renderable(state, title))


def json_report(state, pair: tuple[str, str] | None = None) -> dict:
    """The report's numbers as plain JSON, recomputed from steps and samples (the stored run_end summary
    is set aside, so anyone can check it): intervals as [lo, hi] fractions, null where there is none."""
    from engine.core.stats import WARMUP_STEPS
    from engine.log.comparisons import pair_row
    from engine.log.summary import arm_rows, summarised_seeds

    state.summary = {}  # T from the steps, not from run_end
    out = {
        "run_id": state.run_id,
        "status": state.status,
        "steps": state.step + 1,
        "replicates": len(summarised_seeds(state)),
        "warmup_steps_left_out_of_r": WARMUP_STEPS,
        "device": state.settings.device,
        "session": state.settings.session,
        "common_base_rate": state.common_base_rate,
    }
    if pair is not None:
        out["pair"] = msgspec.to_builtins(pair_row(state, *pair))
    else:
        out["arms"] = {row.arm: msgspec.to_builtins(row) for row in arm_rows(state)}
    return _plain(out)


def _plain(value):
    """NaN as null, tuples as lists, all the way down."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
