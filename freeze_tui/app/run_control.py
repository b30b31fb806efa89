"""Stopping and quitting a live run: both ask first, and both let the run end at a step boundary
so its log stays complete (a second `q` quits without waiting). Mixed into FreezeApp."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import App

from engine.log.sources import EventSource
from engine.log.state import RunState
from freeze_tui.app import watch_stop
from freeze_tui.app.screens.confirm import ConfirmScreen

if TYPE_CHECKING:  # a mixin of FreezeApp: type-check it as the App it is part of
    _Base = App[None]
else:
    _Base = object


STOP_QUESTION = "Stop the run at the next step boundary?"
QUIT_QUESTION = "A run is going. Stop it and quit once its log is complete?"


class RunControl(_Base):
    source: EventSource
    state: RunState
    _stopping: bool
    _quit_when_done: bool

    def live_running(self) -> bool:
        return self.source.mode == "live" and not self.source.done and not self.state.finished

    writer_stoppable = True  # False: `watch --read-only` (a browser session of `serve --watch`)

    def watch_running(self) -> bool:
        """A followed run goes on and this viewer may stop it (`s`)."""
        live = self.source.mode == "watch" and not self.source.done and not self.state.finished
        return live and self.writer_stoppable

    def action_stop(self) -> None:
        if self.watch_running():
            self._stop_watched()
        elif self.live_running() and not self._stopping:
            self.push_screen(ConfirmScreen(STOP_QUESTION, about="stop"), self._stop_confirmed)

    def _stop_confirmed(self, yes: bool | None) -> None:
        if yes and not self.live_running():  # it ended while the question was open: nothing to stop
            self.notify(f"the run has {self.state.status if self.state.finished else 'ended'}", timeout=4)
        elif yes:
            self._stopping = True
            self.source.stop()
            self.notify("stopping at the next step boundary… (q again: quit without waiting)", timeout=4)

    async def action_quit(self) -> None:
        if not self.live_running():
            self.source.stop()
            self.exit()
        elif self._stopping:
            self.exit()  # asked twice: quit without waiting for the run to end
        else:
            self.push_screen(ConfirmScreen(QUIT_QUESTION, about="quit"), self._quit_confirmed)

    def stop_signal(self, count: int) -> None:
        """SIGINT/SIGTERM/SIGHUP (freeze_tui.cli.interrupts): the first is q answered yes (stop the run, quit
        once its log is complete); the second quits now. Quitting through Textual restores the terminal."""
        if count > 1 or not self.live_running():
            self.source.stop()
            self.exit()
        else:
            self._quit_confirmed(True)

    def _quit_confirmed(self, yes: bool | None) -> None:
        if yes and not self.live_running():  # it ended while the question was open: quit now
            self.source.stop()
            self.exit()
        elif yes:
            self._quit_when_done = True
            self._stop_confirmed(True)

    def follow_run_end(self) -> None:
        """A stop or quit question asked while the run went on follows it when it ends (during the last
        validation, say): the stop question closes, the quit question becomes 'quit?' and `y` quits."""
        screen = self.screen
        if not isinstance(screen, ConfirmScreen) or self.live_running():
            return
        ended = f"The run has {self.state.status}." if self.state.finished else "The run has ended."
        if screen.about == "stop":
            screen.dismiss(None)
            self.notify(f"{ended} Nothing to stop.", timeout=4)
        elif screen.about == "quit" and screen.question == QUIT_QUESTION:
            screen.ask(f"{ended} Quit?")

    def _stop_watched(self) -> None:
        """WATCH: signal the writer of the followed log (asks first); say how where this viewer cannot."""
        found = watch_stop.writers(self.source)
        for why in watch_stop.refusals(found):
            self.notify(why, title="cannot stop it from here", severity="warning", timeout=15, markup=False)
        question = watch_stop.stop_question(found, again=self._stopping)
        if question:
            self.push_screen(ConfirmScreen(question), lambda yes: self._watched_stop_confirmed(yes, found))

    def _watched_stop_confirmed(self, yes: bool | None, found: list) -> None:
        if not yes:
            return
        failures = watch_stop.signal_all(found)
        for why in failures:
            self.notify(why, title="stop failed", severity="error", timeout=15, markup=False)
        if not failures:
            again = "s again: end it now" if not self._stopping else "the writer ends it now"
            self._stopping = True
            self.notify(f"stop requested; following the log to its run_end… ({again})", timeout=6)
