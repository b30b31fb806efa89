"""`freeze-tui export LOG... --out DIR`: the run as tidy CSV tables. No torch.

steps.csv (one row per arm per step), dw.csv (one row per arm, matrix and measurement),
samples.csv (one row per generated sample) and summary.csv (one row per arm: the report's
numbers). A text cell that starts like a formula (= + - @) gets a leading ' (see safe_cell). The
log is read once; the tables are written beside each other under temporary
names and renamed only when all are complete, so a bad log leaves nothing half-written and an
existing table is replaced only with --overwrite.
"""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path

import click

from engine.core.errors import FreezeTuiError
from engine.log.state import RunState
from engine.log.tables import EVENT_TABLES, SUMMARY_COLUMNS, summary_rows

TABLES = (*EVENT_TABLES, "summary")


@click.command()
@click.argument("logs", metavar="LOG...", nargs=-1, required=True)
@click.option("--out", "out_dir", required=True, metavar="DIR", help="Folder for the tables (created if missing).")
@click.option("--format", "form", type=click.Choice(["csv"]), default="csv", show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace tables already in DIR.")
def export(logs: tuple[str, ...], out_dir: str, form: str, overwrite: bool) -> int:
    """Write a run's tables as CSV.

    steps.csv, dw.csv, samples.csv and summary.csv under DIR. Several logs: one merged run.
    """
    from freeze_tui.cli.logs import events_of

    out = Path(out_dir)
    targets = {name: out / f"{name}.{form}" for name in TABLES}
    _check_targets(out, targets, overwrite)
    events = events_of(logs)  # a missing or foreign log fails here, before anything is written
    temps = {name: path.with_name(f".{path.name}.partial") for name, path in targets.items()}
    out.mkdir(parents=True, exist_ok=True)
    try:
        counts = _write(events, temps)
        for name, temp in temps.items():
            temp.replace(targets[name])
    except OSError as exc:  # a full disk or a size limit while writing: one line, the partial files removed
        raise FreezeTuiError(
            f"cannot write the tables in {out}: {exc.strerror or exc}; free some space or choose another --out"
        ) from None
    finally:
        for temp in temps.values():
            with contextlib.suppress(OSError):
                temp.unlink()
    for name, path in targets.items():
        click.echo(f"{path}  ({counts[name]:,} rows)")
    return 0


def _check_targets(out: Path, targets: dict[str, Path], overwrite: bool) -> None:
    blocker = next((p for p in (out, *out.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise FreezeTuiError(f"--out {out}: {blocker} is a file, not a folder; choose another --out folder")
    existing = [p.name for p in targets.values() if p.exists()]
    if existing and not overwrite:
        raise FreezeTuiError(
            f"--out {out} already holds {', '.join(existing)}; choose another --out or pass --overwrite to replace them"
        )


def _write(events, temps: dict[str, Path]) -> dict[str, int]:
    """One pass over the events: the event tables as they come, the summary from the folded state."""
    state = RunState()
    counts = dict.fromkeys(temps, 0)
    with contextlib.ExitStack() as stack:
        writers = {}
        for name, temp in temps.items():
            try:
                f = stack.enter_context(open(temp, "w", newline="", encoding="utf-8"))
            except OSError as exc:
                raise FreezeTuiError(f"cannot write {temp.parent}: {exc.strerror}; choose a writable --out") from None
            writers[name] = SafeWriter(csv.writer(f))
            writers[name].writerow(EVENT_TABLES[name][0] if name in EVENT_TABLES else SUMMARY_COLUMNS)
        for event in events:
            state.apply(event)
            for name, (_, rows_of) in EVENT_TABLES.items():
                for row in rows_of(event):
                    writers[name].writerow(row)
                    counts[name] += 1
        rows = summary_rows(state)
        writers["summary"].writerows(rows)
        counts["summary"] = len(rows)
    return counts


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """A text cell that a spreadsheet would run as a formula (it starts with = + - @, a tab or a CR) gets
    a leading ' (OWASP's advice for CSV injection): sample texts, prompts and names are untrusted text.
    Numbers are written as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeWriter:
    """csv.writer whose text cells pass through safe_cell."""

    def __init__(self, writer) -> None:
        self._writer = writer

    def writerow(self, row) -> None:
        self._writer.writerow([safe_cell(v) for v in row])

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)
