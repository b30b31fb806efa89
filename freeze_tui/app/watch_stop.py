"""`s` in WATCH: stop the run whose log is followed, when its writer is a process on this host.

The writer's pid and host come from its heartbeats (engine.log.liveness.WriterWatch). The request is
the one a terminal's Ctrl-C makes (SIGTERM: stop at the next step boundary); the viewer then follows
the log to its run_end "stopped" like any other line. Elsewhere it says which command stops it.
"""

from __future__ import annotations

from engine.log.liveness import WriterWatch


def writers(source) -> list[WriterWatch]:
    """The writers of the logs a watch follows that have not ended (one, or one per merged log)."""
    sources = getattr(source, "sources", None) or [source]
    return [s.writer for s in sources if isinstance(getattr(s, "writer", None), WriterWatch) and not s.done]


def stop_question(found: list[WriterWatch], again: bool) -> str:
    """The confirmation asked before signalling; "" when none of the writers can be signalled here."""
    pids = ", ".join(str(w.pid) for w in found if not w.stop_refusal())
    if not pids:
        return ""
    if again:
        return f"Signal the writer (pid {pids}) again: end the run now, without waiting for the step boundary?"
    return f"Stop the run at the next step boundary? (signals its writer, pid {pids}, on this host)"


def refusals(found: list[WriterWatch]) -> list[str]:
    """How to stop the writers this viewer cannot signal (another host, no heartbeats, exited)."""
    return [why for why in (w.stop_refusal() for w in found) if why] or (
        [] if found else ["this watch follows no running writer; there is nothing to stop"]
    )


def signal_all(found: list[WriterWatch]) -> list[str]:
    """Signal every writer this viewer can; the failures (one line each)."""
    return [why for why in (w.signal_stop() for w in found if not w.stop_refusal()) if why]
