"""The failure board of a distributed run (torch when one is made): failures and liveness travel through the rendezvous
store, not through collectives, so they arrive under every backend -- gloo, where a lost peer breaks
the next collective at once, and NCCL, where it only hangs it (issue 22).

A rank that fails writes its error there and waits; a watcher thread on every rank sees it within
POLL_S; world rank 0 ends the log (`run_end failed`, naming the rank) and says "done"; then every rank
exits. No hang. A rank killed outright (SIGKILL, the OOM killer) writes nothing: rank 0 finds it lost
-- its process gone on this host, or its beat silent for LOST_AFTER_S on another -- and names it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import timedelta

POLL_S = 0.2
BEAT_EVERY_S = 1.0
LOST_AFTER_S = 20.0  # another node's rank whose beat is silent this long is lost (a busy rank still beats)
STOP_WAIT_S = 5.0  # how long stop() waits for the watcher's store call in flight (one takes milliseconds)
LOST = (
    "lost contact: its process ended without a word (killed by a signal or the OOM killer? see the launcher's output)"
)


def process_gone(pid: int) -> bool:
    """The process has exited (a zombie not yet reaped by its launcher counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True
    except OSError:  # no /proc (macOS): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


class FailureBoard:
    """Failures and liveness of every rank, in the rendezvous store."""

    def __init__(self, rank: int, size: int) -> None:
        import torch.distributed as dist  # here: the session imports this module's names without torch

        self.rank, self.size = rank, size
        store = dist.TCPStore(
            os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False, timeout=timedelta(seconds=60)
        )
        run = os.environ.get("TORCHELASTIC_RUN_ID", "run")
        restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        self._store = dist.PrefixStore(f"freeze_tui/{run}/{restart}/", store)
        self._lock = threading.Lock()
        self.closed = False  # the run ended normally: stop watching
        self.host = socket.gethostname()
        self._beats: dict[int, tuple[int, float]] = {}  # rank -> (its last beat count, when it last changed)
        self._watcher: threading.Thread | None = None
        self._woken = threading.Event()  # stop() wakes the watcher between two polls
        with self._lock:
            self._store.set(f"pid/{rank}", f"{self.host}\n{os.getpid()}")

    def report(self, message: str, rank: int | None = None) -> None:
        """This rank's failure (or, from rank 0, that of a rank lost without a word)."""
        with self._lock:
            self._store.set(f"error/{self.rank if rank is None else rank}", message)
            self._store.add("failed", 1)

    def failures(self) -> dict[int, str]:
        """{rank: message} of every rank that has reported."""
        with self._lock:
            if not self._store.check(["failed"]):
                return {}
            keys = {r: f"error/{r}" for r in range(self.size)}
            return {r: self._store.get(k).decode() for r, k in keys.items() if self._store.check([k])}

    def beat(self) -> None:
        with self._lock:
            self._store.add(f"beat/{self.rank}", 1)

    def lost(self) -> list[int]:
        """The other ranks whose process is gone without a word (none once every rank has finished)."""
        with self._lock:
            if int(self._store.add("finished", 0)) >= self.size:
                return []
            found = []
            now = time.monotonic()
            for r in range(self.size):
                if r == self.rank or not self._store.check([f"pid/{r}"]):
                    continue
                host, pid = self._store.get(f"pid/{r}").decode().split("\n")
                if host == self.host:
                    gone = process_gone(int(pid))
                else:
                    count = int(self._store.add(f"beat/{r}", 0))
                    seen, since = self._beats.get(r, (-1, now))
                    self._beats[r] = (count, now if count != seen else since)
                    gone = now - self._beats[r][1] > LOST_AFTER_S
                if gone:
                    found.append(r)
            return found

    def blame(self, failures: dict[int, str], wait_s: float = 0.0) -> dict[int, str]:
        """Who caused `failures`: the ranks lost without a word, when any (the survivors only report
        that they lost contact with them), else the ranks that reported. Looks for lost ranks for up to
        `wait_s` (a lost process may take a moment to be seen as gone)."""
        deadline = time.monotonic() + wait_s
        while True:
            lost = self.lost()
            if lost or time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
        return {r: LOST for r in lost} if lost else failures

    def mark_done(self) -> None:
        with self._lock:
            self._store.set("done", "1")

    def wait_done(self, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._store.check(["done"]):
                    return True
            time.sleep(POLL_S)
        return False

    def wait_all(self, key: str, count: int, timeout: float = 120.0) -> None:
        with self._lock:
            self._store.add(key, 1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if int(self._store.add(key, 0)) >= count:
                    return
            time.sleep(POLL_S)

    def watch(self, on_failure, *, find_lost: bool = False) -> None:
        """Call on_failure({rank: message}) once, from a daemon thread, when another rank fails -- or,
        with `find_lost` (world rank 0), when one is lost without a word. Every rank beats meanwhile."""

        def poll() -> None:
            next_beat = 0.0
            while not self.closed:
                try:
                    if time.monotonic() >= next_beat:
                        next_beat = time.monotonic() + BEAT_EVERY_S
                        self.beat()
                        lost = self.lost() if find_lost else []
                        if lost:
                            on_failure({r: LOST for r in lost})
                            return
                    others = {r: m for r, m in self.failures().items() if r != self.rank}
                except Exception:  # the store went away: the launcher is ending the run
                    return
                if others:
                    on_failure(self.blame(others) if find_lost else others)
                    return
                self._woken.wait(POLL_S)

        self._watcher = threading.Thread(target=poll, name="freeze-tui-failures", daemon=True)
        self._watcher.start()

    def stop(self, timeout: float = STOP_WAIT_S) -> bool:
        """Stop watching and wait for the watcher; True once it has ended (or never ran). The process
        may end only then: a daemon thread inside a store call when the interpreter finalizes is ended
        by pthread_exit from pybind11's GIL guard, a noexcept destructor, and std::terminate aborts the
        whole process ("terminate called without an active exception") after a finished run."""
        self.closed = True
        self._woken.set()
        watcher = self._watcher
        if watcher is None or watcher is threading.current_thread():
            return True
        watcher.join(timeout)
        return not watcher.is_alive()
