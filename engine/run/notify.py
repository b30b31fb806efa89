"""`--notify CMD`: run a command for each alert (engine/log/alerts.py), e.g. a phone push or a mail.

The command runs through the shell (so `curl … | …` works) in the background, with the alert as
environment variables FREEZE_TUI_ALERT_KIND (nonfinite | diverging | stalled | run_end),
FREEZE_TUI_ALERT_MESSAGE, FREEZE_TUI_ALERT_ARM, FREEZE_TUI_ALERT_STEP, FREEZE_TUI_RUN_STATUS,
FREEZE_TUI_RUN_ID and FREEZE_TUI_LOG, and as one JSON object on its stdin (the same keys, lower case
without the prefix). A command that fails, cannot start or runs past NOTIFY_TIMEOUT_S is one warning
line (`warn`), never the end of the run. No torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable

from engine.log.alerts import Alert

NOTIFY_TIMEOUT_S = 30.0


class Notifier:
    def __init__(self, command: str, warn: Callable[[str], None], *, log: str = "", run_id: str = "") -> None:
        self.command, self.warn, self.log, self.run_id = command, warn, log, run_id
        self._threads: list[threading.Thread] = []

    def send(self, alert: Alert, run_id: str = "") -> None:
        """Run the command for `alert` without waiting for it."""
        self.run_id = run_id or self.run_id
        thread = threading.Thread(target=self._run, args=(alert,), name="freeze-tui-notify", daemon=True)
        self._threads.append(thread)
        thread.start()

    def close(self, timeout: float = NOTIFY_TIMEOUT_S) -> None:
        """Wait for the commands still running (the run's end must reach the phone before we exit)."""
        for thread in self._threads:
            thread.join(timeout)

    def payload(self, alert: Alert) -> dict:
        return {**alert.as_dict(self.run_id), "log": self.log}

    def _run(self, alert: Alert) -> None:
        payload = self.payload(alert)
        env = {**os.environ, **{f"FREEZE_TUI_{_env_name(k)}": str(v) for k, v in payload.items()}}
        try:
            done = subprocess.run(
                self.command,
                shell=True,  # the user's own command line, as they would type it
                input=json.dumps(payload).encode(),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=NOTIFY_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            self.warn(f"--notify command ran over {NOTIFY_TIMEOUT_S:.0f} s and was stopped ({alert.kind} alert)")
            return
        except OSError as exc:
            self.warn(f"--notify command could not start ({exc.strerror or exc}); check the command")
            return
        if done.returncode != 0:
            said = done.stderr.decode(errors="replace").strip().splitlines()
            why = f": {said[-1][:200]}" if said else ""
            self.warn(f"--notify command failed with exit code {done.returncode} ({alert.kind} alert){why}")


def _env_name(key: str) -> str:
    """payload key -> variable name: kind -> ALERT_KIND, status -> RUN_STATUS, run_id -> RUN_ID, log -> LOG."""
    return {"status": "RUN_STATUS", "run_id": "RUN_ID", "log": "LOG"}.get(key, f"ALERT_{key.upper()}")
