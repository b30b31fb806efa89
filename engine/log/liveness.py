"""Is the process that writes a followed log still alive? Judged from its heartbeats. No torch.

A writer that is busy (loading a model, a slow step) keeps beating, so a quiet log is not a dead
one. It is called gone after GONE_AFTER_S without a heartbeat (paused, when its pid on this host is
stopped: SIGSTOP, ^Z), or, on the same host, as soon as
its pid has exited and its heartbeats have stopped too (a pid from another pid namespace, e.g. a
container that shares the host name, would otherwise look dead while it beats). Logs written
before heartbeats existed get no verdict: the viewer falls back to "no new events for N s".
"""

from __future__ import annotations

import os
import signal
import socket
import time

from engine.log.events import Heartbeat

CONTRACT_S = 2.0  # a live engine writes a heartbeat at least this often (docs/DECISIONS.md, "Liveness")
GONE_AFTER_S = 3 * CONTRACT_S + 4.0  # three missed beats plus slack for a slow disk or a busy host
PID_GONE_AFTER_S = 1.5  # a dead pid is believed once this long passed without a heartbeat


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # exists, owned by someone else (or cannot tell: assume alive)
        return True
    return not _zombie(pid)


def pid_stopped(pid: int) -> bool:
    """Stopped by a signal (SIGSTOP, ^Z) or a tracer: alive, and not beating only until continued."""
    return _state(pid) in (b"T", b"t")


def _zombie(pid: int) -> bool:
    """Exited but not yet reaped (a `run --detach` child, while its parent shows the watch view)."""
    return _state(pid) == b"Z"


def _state(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):  # no /proc (macOS): os.kill's answer stands
        return b""


class WriterWatch:
    def __init__(
        self, clock=time.monotonic, wall=time.time, host: str | None = None, alive=pid_alive, stopped=None
    ) -> None:
        self._clock, self._wall, self._alive = clock, wall, alive
        self._stopped = stopped or pid_stopped
        self._this_host = socket.gethostname() if host is None else host
        self.pid, self.host = 0, ""
        self._t_log = 0.0  # the writer's clock at its latest line
        self._arrived = 0.0  # our clock when the latest line arrived
        self._beating = False  # a heartbeat was seen: the writer promises one every CONTRACT_S
        self._at_end = True
        self.t_first = 0.0  # the writer's clock at the log's first line (its header): a pid born after is not it

    def saw(self, events, at_end: bool = True) -> None:
        """Take note of a batch of events just read: any line proves the writer lived when it wrote
        it, heartbeats say who it is. `at_end`: the batch reached the end of the file (while a
        backlog is read, an old line proves nothing either way)."""
        self._at_end = at_end
        if not events:
            return
        if not self.t_first:
            self.t_first = float(events[0].t)
        for e in reversed(events):
            if isinstance(e, Heartbeat):
                self.pid, self.host = int(e.pid), str(e.host)
                self._beating = True
                break
        self._t_log, self._arrived = float(events[-1].t), self._clock()

    @property
    def beating(self) -> bool:
        """The log has heartbeats (written by a freeze-tui that beats)."""
        return self._beating

    def silence(self) -> float:
        """Seconds since the writer's latest line: since it arrived, or, on the writer's own host (same
        clock), since it was written, whichever is longer (a backlog read at once is not fresh)."""
        since = self._clock() - self._arrived
        if self._same_host():
            since = max(since, self._wall() - self._t_log)
        return since

    def gone(self) -> str:
        """Why the writer is known to be gone, or "" (alive, or no heartbeats to judge by)."""
        if not self._beating or not self._at_end:
            return ""
        silence = self.silence()
        if self._same_host() and self.pid > 0 and silence > PID_GONE_AFTER_S and not self._alive(self.pid):
            return f"writer gone (pid {self.pid} exited)"
        if silence > GONE_AFTER_S:
            if self._same_host() and self.pid > 0 and self._stopped(self.pid):  # SIGSTOP, ^Z: it may go on
                return f"writer paused/not responding (pid {self.pid} alive, stopped; silent {int(silence)} s)"
            return f"writer gone (no heartbeat for {int(silence)} s)"
        return ""

    def _same_host(self) -> bool:
        return bool(self.host) and self.host == self._this_host

    # -- stopping the writer from a viewer (watch's `s`) -------------------------------------------------------
    def stop_refusal(self) -> str:
        """Why this viewer cannot signal the writer, with how to stop it instead; "" when it can."""
        if not self._beating or self.pid <= 0:
            return (
                "this log names no writer process (no heartbeats: a Recorder or Trainer-callback log, or an "
                "older freeze-tui); stop the run where it runs: Ctrl-C there, or kill -TERM with its pid"
            )
        if not self._same_host():
            return f"the run is on host {self.host}, pid {self.pid}; stop it there: {stop_command(self.pid, self.host)}"
        if not self._alive(self.pid) or not started_before(self.pid, self.t_first):
            return f"the writer (pid {self.pid}) has exited; there is nothing to stop"
        return ""

    def signal_stop(self) -> str:
        """Ask the writer to stop at its next step boundary (SIGTERM: a second one ends it at once, its log
        closed with run_end "stopped"); a paused writer is continued so it can. "" or why it failed."""
        refusal = self.stop_refusal()
        if refusal:
            return refusal
        try:
            os.kill(self.pid, signal.SIGTERM)
            if self._stopped(self.pid) and hasattr(signal, "SIGCONT"):
                os.kill(self.pid, signal.SIGCONT)  # stopped (^Z, SIGSTOP): it hears the request once continued
        except PermissionError:
            return f"cannot signal pid {self.pid} (another user's process); as its owner run: {stop_command(self.pid)}"
        except ProcessLookupError:
            return f"the writer (pid {self.pid}) has exited; there is nothing to stop"
        return ""


def stop_command(pid: int, host: str = "") -> str:
    """The shell command that stops the run writing with `pid` (on `host` when that is another machine)."""
    kill = f"kill -TERM {pid}"
    return f"ssh {host} {kill}" if host else kill


def started_before(pid: int, t_first: float, slack_s: float = 2.0) -> bool:
    """The process `pid` existed when the log began (at `t_first`, unix seconds): not a recycled pid, nor
    a process of another pid namespace on a host of the same name that happens to carry the number."""
    import psutil

    try:
        created = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # cannot tell (access denied): the liveness check above stands
        return True
    return not t_first or created <= t_first + slack_s
