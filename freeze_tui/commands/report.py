"""`freeze-tui report LOG...`: the study's table, laid out for a terminal or as Markdown. No torch."""

from __future__ import annotations

import sys

import click

from freeze_tui.logs import state_of, title_of
from freeze_tui.safe_text import clean


def print_report(logs, form: str = "auto") -> None:
    """Markdown into a file or pipe (or with form="markdown"); on a terminal a layout for its width."""
    state = state_of(logs)
    title = title_of(logs)
    if form == "markdown" or (form == "auto" and not sys.stdout.isatty()):
        from freeze_tui.report import markdown_report

        click.echo(clean(markdown_report(state, title)), nl=False)
        return
    from rich.console import Console

    from freeze_tui.report import report_renderable

    Console(highlight=False).print(report_renderable(state, title))
