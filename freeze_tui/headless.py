"""The console printer for `run --headless`: progress per epoch, warnings as they come, the final table.

It reads the same events as the app, through the same source protocol, and folds them with RunState.
"""

from __future__ import annotations

import math
import signal
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from engine.log.state import RunState
from freeze_tui.report import SummaryTable, status_text
from freeze_tui.safe_text import clean

EXIT = {"finished": 0, "failed": 1, "stopped": 130}


def safe_line(text: object) -> str:
    return clean(text, one_line=True, max_len=500)


class _Interrupted(Exception):
    pass


def _on_sigterm(signum, frame):
    raise _Interrupted


def run_headless(source, console: Console | None = None) -> int:
    """Drain `source` until the run ends; returns the process exit code."""
    console = console or Console(stderr=False, highlight=False)
    state = RunState()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    interrupted = False
    # markup=False: descriptions hold text from the run (arm names, a log's config), shown literally
    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[losses]}", markup=False),
        console=console,
        transient=False,
    ) as progress:
        printer = _Printer(state, progress, console)
        while not source.done:
            try:
                printer.fold(source.get_batch(0.2))
            except (KeyboardInterrupt, _Interrupted):
                if interrupted:  # a second time: the user will not wait (a step or a model load can take long)
                    console.print("interrupted again: quitting now; the log keeps every line written so far")
                    break
                console.print(
                    "stopping at the next step boundary (the log stays complete); interrupt again to quit at once…"
                )
                interrupted = True
                source.stop()
        printer.fold(source.get_batch(0))
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
    if state.arms or getattr(source, "failure", None) is None:  # bad input: the CLI prints its one line
        print_summary(state, console)
    return 130 if interrupted else EXIT.get(state.status, 1)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


class _Printer:
    def __init__(self, state: RunState, progress: Progress, console: Console) -> None:
        self.state, self.progress, self.console = state, progress, console
        self.task: TaskID | None = None
        self.task_epoch = -1

    def fold(self, events) -> None:
        for event in events:
            self.state.apply(event)
            if event.kind == "warning" or (event.kind == "error" and not event.fatal):
                style = "yellow" if event.kind == "warning" else "bold red"
                arm = f"[{event.arm}] " if getattr(event, "arm", None) else ""
                self.console.print(Text(f"{event.kind}: {safe_line(arm + event.message)}", style=style))
            elif event.kind == "run_start":
                self._describe_start()
        if events:
            self._update_progress()

    def _describe_start(self) -> None:
        s = self.state
        trust = " · trust_remote_code ON" if s.config.get("trust_remote_code") else ""
        self.console.print(
            Text(
                safe_line(
                    f"model {s.model.get('name')} ({s.model.get('n_params', 0) / 1e6:.1f} M params) · data "
                    f"{s.data.get('source')} ({s.data.get('n_tokens')} tokens) · device {s.config.get('device')}{trust}"
                )
            )
        )
        for arm in s.arms.values():
            self.console.print(
                Text(safe_line(f"  arm {arm.name} = {arm.spec}: trains {arm.trainable_pct:.2f} % of the weights"))
            )

    def _update_progress(self) -> None:
        s = self.state
        if s.epoch < 0:
            return
        if s.epoch != self.task_epoch or self.task is None:
            per_epoch = s.data.get("n_train_batches") or None
            self.task = self.progress.add_task(
                safe_line(f"epoch {s.epoch + 1}/{s.config.get('epochs', '?')}"), total=per_epoch, losses=""
            )
            self.task_epoch = s.epoch
        start = s.epoch_starts[-1] if s.epoch_starts else 0
        losses = "  ".join(f"{a.name} {a.loss_last:.3f}" for a in s.arms.values() if not math.isnan(a.loss_last))
        self.progress.update(self.task, completed=s.step - start + 1, losses=safe_line(losses))


def print_summary(state: RunState, console: Console) -> None:
    """The table (when any arm ran), then one line on how the run ended."""
    if state.arms:
        console.print(SummaryTable(state))
    console.print(status_text(state))
    fatal = [m for m in state.messages if m.level == "error" and m.fatal]
    if fatal:
        console.print(Text(f"error: {safe_line(fatal[-1].message)}", style="bold red"))
    sys.stdout.flush()
