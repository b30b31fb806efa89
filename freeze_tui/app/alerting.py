"""Alerts in the app (engine/log/alerts.py detects them from RunState): a toast and a terminal bell in
LIVE and WATCH, and `--notify CMD` where given; a replay toasts a diverging or non-finite loss only
(no bell, no command: it is history). Alerts about lines older than STALE_S (a watch reading a
finished log's backlog) stay quiet: the views show them, nobody needs waking for them."""

from __future__ import annotations

import math
import sys
import time

from engine.log.alerts import Alert, AlertWatch

STALE_S = 60.0
TITLES = {
    "nonfinite": "non-finite loss",
    "diverging": "loss diverging",
    "stalled": "writer not responding",
    "run_end": "run ended",
}


class Alerter:
    def __init__(self, app, notifier=None, clock=time.time) -> None:
        self.app, self.notifier, self.clock = app, notifier, clock
        self.watch = AlertWatch()
        if notifier is not None:
            notifier.warn = self.warn

    def check(self, stalled: str = "") -> None:
        """After a fold (or a tick, for a stall): raise what is new."""
        state, mode = self.app.state, self.app.source.mode
        for alert in self.watch.update(state, stalled):
            if mode == "replay":
                if alert.kind in ("nonfinite", "diverging"):
                    self._toast(alert)
                continue
            stale = not math.isnan(state.t_last) and self.clock() - state.t_last > STALE_S
            if stale and alert.kind != "stalled":
                continue
            self._toast(alert)
            self.app.bell()
            if self.notifier is not None:
                self.notifier.send(alert, state.run_id)

    def _toast(self, alert: Alert) -> None:
        severity = "information" if alert.kind == "run_end" and alert.status == "finished" else "warning"
        self.app.notify(
            alert.message, title=TITLES.get(alert.kind, alert.kind), severity=severity, timeout=10, markup=False
        )

    def warn(self, message: str) -> None:
        """A failing --notify command (called from its thread): a toast while the app runs, else stderr."""
        try:
            self.app.call_from_thread(self.app.notify, message, severity="warning", timeout=10, markup=False)
        except RuntimeError:  # the app has closed (or this is its own thread)
            print(f"freeze-tui: warning: {message}", file=sys.stderr)
