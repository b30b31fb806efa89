"""The console printer for `run --headless`: progress per epoch, warnings as they come, the final table.

It reads the same events as the app, through the same source protocol, and folds them with RunState.
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO, cast

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column
from rich.text import Text

from engine.log import events as ev
from engine.log.alerts import AlertWatch
from engine.log.state import RunState
from freeze_tui.app.activity import phase_words
from freeze_tui.cli import exit_codes
from freeze_tui.cli.interrupts import Guarded, Interrupts
from freeze_tui.draw import fmt
from freeze_tui.draw.best_values import progress_value, summary_lines
from freeze_tui.draw.eta_text import eta_text
from freeze_tui.draw.frontier_report import frontier_console_lines
from freeze_tui.draw.report import Packed, SummaryTable, interval_lines, status_text
from freeze_tui.draw.safe_text import clean


def safe_line(text: object) -> str:
    return clean(text, one_line=True, max_len=500)


def run_headless(source, console: Console | None = None, interrupts: Interrupts | None = None, notifier=None) -> int:
    """Drain `source` until the run ends; returns the process exit code (freeze_tui.cli.exit_codes).
    `interrupts`: the caller's stop-signal counter (by default one installed here); `notifier`:
    --notify's command runner (engine/run/notify.py), told each alert."""
    console = console or Console(file=cast("IO[str]", Guarded(sys.stdout)), highlight=False)  # a duck-typed stream
    own = interrupts is None
    interrupts = Interrupts().install() if interrupts is None else interrupts
    state = RunState()
    try:
        # markup=False: descriptions hold text from the run (arm names, a log's config), shown literally
        # Counts and times never wrap; the losses wrap between arms on a narrow terminal.
        with Progress(
            TextColumn("{task.description}", markup=False, table_column=Column(no_wrap=True)),
            BarColumn(bar_width=10 if console.width < 120 else 40),  # the losses come first on 80 columns
            MofNCompleteColumn(table_column=Column(no_wrap=True)),
            TimeElapsedColumn(table_column=Column(no_wrap=True)),
            TextColumn("{task.fields[eta]}", markup=False, table_column=Column(no_wrap=True)),
            LossColumn(),
            console=console,
            transient=False,
        ) as progress:
            printer = _Printer(state, progress, console)
            printer.notifier = notifier
            _follow(source, printer, interrupts)
    finally:
        if own:
            interrupts.restore()
    if state.arms or getattr(source, "failure", None) is None:  # bad input: the CLI prints its one line
        print_summary(state, console)
    return exit_codes.for_status(state.status)


QUIT_GRACE_S = 1.0  # after a second interrupt: time for a run_end being written to arrive


def _follow(source, printer: _Printer, interrupts: Interrupts) -> None:
    """Fold events until the run ends; the first stop request stops the run at a step boundary, the
    second quits at once (a step or a model load can take long) with the state equal to the log."""
    handled, activity = 0, ""
    while not source.done:
        try:
            printer.fold(source.get_batch(0.2))
        except KeyboardInterrupt:  # a caller without signal handlers
            interrupts.note()
        if getattr(source, "activity", "") != activity:  # a long set-up step (tokenizing a large corpus)
            activity = source.activity
            printer.console.print(Text(safe_line(activity)))
        if handled == 0 < interrupts.count:  # the first request
            printer.console.print(
                "stopping at the next step boundary (the log stays complete); interrupt again to quit at once…"
            )
            source.stop()
        handled = interrupts.count
        if handled >= 2:
            printer.console.print("interrupted again: quitting now; the log keeps every line written so far")
            _quit_now(source, printer)
            return
    printer.fold(source.get_batch(0))


def _quit_now(source, printer: _Printer) -> None:
    deadline = time.monotonic() + QUIT_GRACE_S
    while not source.done and time.monotonic() < deadline:  # the run may be writing its run_end now
        printer.fold(source.get_batch(0.05))
    abandon = getattr(source, "abandon", None)
    if abandon is not None:
        abandon()  # the log gets nothing more, so what is printed below is what the log says
    while batch := source.get_batch(0):
        printer.fold(batch)


class _Printer:
    def __init__(self, state: RunState, progress: Progress, console: Console) -> None:
        self.state, self.progress, self.console = state, progress, console
        self.task: TaskID | None = None
        self.task_epoch: tuple[int, int] = (-1, -1)  # (replicate, epoch) of the progress task
        self.task_start = 0
        self.phase: tuple = ()  # the engine phase last printed (headless says what it does between steps)
        self.alerts, self.notifier = AlertWatch(), None  # engine/log/alerts.py; --notify

    def fold(self, events) -> None:
        for event in events:
            self.state.apply(event)
            if isinstance(event, ev.Warning) or (isinstance(event, ev.Error) and not event.fatal):
                style = "yellow" if isinstance(event, ev.Warning) else "bold red"
                arm = f"[{event.arm}] " if getattr(event, "arm", None) else ""
                self.console.print(Text(f"{event.kind}: {safe_line(arm + event.message)}", style=style))
            elif isinstance(event, ev.RunStart):
                self._describe_start()
            elif isinstance(event, ev.Heartbeat):
                self._say_phase()
        if events:
            self._update_progress()
            self._alert()

    def _alert(self) -> None:
        """Print what is new (the run's end is the summary below) and pass every alert to --notify."""
        for alert in self.alerts.update(self.state):
            if alert.kind != "run_end":
                self.console.print(Text(f"alert: {safe_line(alert.message)}", style="bold red"))
            if self.notifier is not None:
                self.notifier.send(alert, self.state.run_id)

    def _describe_start(self) -> None:
        s = self.state
        model, data = s.model_info, s.data_info
        fields = [
            ("model", f"{model.name} ({fmt.count(model.n_params)} params)"),
            ("data", str(data.source)),
            ("tokens", fmt.count(data.n_tokens)),
            ("device", str(s.settings.device)),
        ]
        if s.settings.trust_remote_code:
            fields.append(("trust_remote_code", "ON"))
        self.console.print(Packed(fields, label_style=""))
        for arm in s.arms.values():
            arm_fields = [("arm", arm.name), ("spec", arm.spec), ("trains", fmt.pct(arm.trainable_pct / 100, 2))]
            self.console.print(Packed(arm_fields, split=",", label_style=""))

    def _say_phase(self) -> None:
        """One line when the engine enters a phase between steps (sampling, validation, saving, a pause):
        without it the console is silent for the half minute these can take on a CPU."""
        act = self.state.activity
        if act is None or act.phase == "step":
            self.phase = ()
            return
        key = (act.phase, act.epoch, self.state.replicate)
        words = phase_words(act)
        if key != self.phase and words:
            self.phase = key
            self.console.print(Text(f"… {words}", style="dim"))

    def _update_progress(self) -> None:
        s = self.state
        if s.epoch < 0:
            return
        start = s.epoch_starts[-1] if s.epoch_starts else 0
        if (s.replicate, s.epoch) != self.task_epoch or self.task is None:
            if self.task is not None:  # the last batch may have ended the epoch: show it whole
                last = s.past[-1] if s.replicate != self.task_epoch[0] and s.past else s
                end = last.step + 1 if last is not s else start  # a new replicate: the last one's final step
                self.progress.update(self.task, completed=end - self.task_start)
            steps, epochs = epoch_plan(s)
            seed = f"seed {s.replicate + 1}/{s.replicates} " if s.replicates > 1 else ""  # --seeds N
            self.task = self.progress.add_task(
                safe_line(f"{seed}epoch {s.epoch + 1}/{epochs}"), total=steps, losses=[], eta=""
            )
            self.task_epoch, self.task_start = (s.replicate, s.epoch), start
        compact = self.console.width < 120  # narrow: the last loss only; wide: its best beside it
        value = (lambda a: fmt.num(a.loss_last)) if compact else progress_value
        losses = [(a.name, value(a)) for a in s.arms.values() if not math.isnan(a.loss_last)]
        eta = eta_text(s, compact=compact)
        self.progress.update(self.task, completed=s.step - start + 1, losses=losses, eta=eta)


class LossColumn(ProgressColumn):
    """Each arm's latest loss; on a narrow terminal it wraps between arms, never inside one."""

    def render(self, task) -> Packed:
        return Packed(task.fields.get("losses", []), sep="  ", label_style="")


def epoch_plan(state: RunState) -> tuple[int | None, int | str]:
    """(steps the current epoch will run, epochs the run will run), both honouring --max-steps."""
    per_epoch, total = state.data_info.n_train_batches, state.total_steps
    epochs = state.settings.epochs if state.settings.epochs is not None else "?"
    if per_epoch is None or per_epoch <= 0:
        return total, epochs
    if not total:
        return per_epoch, epochs
    start = state.epoch_starts[-1] if state.epoch_starts else 0
    return max(1, min(per_epoch, total - start)), -(-total // per_epoch)


def print_summary(state: RunState, console: Console) -> None:
    """The table (when any arm ran), then one line on how the run ended."""
    if state.arms:
        console.print(SummaryTable(state))
        for line in [*interval_lines(state), *frontier_console_lines(state), *summary_lines(state)]:
            console.print(Text(safe_line(line)))
    console.print(status_text(state))
    fatal = [m for m in state.messages if m.level == "error" and m.fatal]
    if fatal:
        console.print(Text(f"error: {safe_line(fatal[-1].message)}", style="bold red"))
    sys.stdout.flush()
