"""The one exit-code policy of every command that runs or follows a run: `run --headless`, the live
app, `run --detach` (whose background process is a headless run), and the CLI's own errors.

The code tells the same story as the log: it comes from the run's `run_end` status, and a run quit
before it could write one (a second interrupt) is "interrupted".
"""

from __future__ import annotations

FINISHED = 0
FAILED = 1  # a fault during the run (or every arm stopped by non-finite losses)
BAD_INPUT = 2  # one line on stderr, no traceback
INTERRUPTED = 130  # stopped on request (Ctrl-C, SIGTERM, SIGHUP, the app's stop key), as shells report SIGINT

_BY_STATUS = {"finished": FINISHED, "failed": FAILED, "stopped": INTERRUPTED}


def for_status(status: str) -> int:
    """The exit code of a run whose log ended with `status`; any other status (loading, running:
    no run_end yet, the process quits at once) is an interrupted run."""
    return _BY_STATUS.get(status, INTERRUPTED)
