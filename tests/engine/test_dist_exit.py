"""A finished distributed run exits 0, every time (issue 22 / CI): interpreter shutdown while the failure
board's watcher (a daemon thread) is inside a TCPStore call aborts the process -- pybind11 reacquires the
GIL in a noexcept destructor, Python ends the thread with pthread_exit there, and std::terminate prints
"terminate called without an active exception"; torch's launcher then reports exit 1 for a finished run.

In a real run the watcher's store calls take milliseconds, so the abort was rare (under load: a call
returned just as the interpreter was finalizing). Here that moment is made certain: the world closes
while the watcher waits on a key nobody sets (as a store slow to answer), and an object freed in the
interpreter's teardown sets the key. The process must still exit 0, with nothing on stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch.distributed")

ROOT = Path(__file__).resolve().parents[2]

# World rank 0 of a one-process gloo world, its board watched, closed the way a finished run closes it
CLOSE_WHILE_THE_STORE_IS_SLOW = """
import contextlib, os, sys, threading, time
from datetime import timedelta
import torch
import torch.distributed as dist
from engine.dist.board import FailureBoard
from engine.dist.distributed import World

master = dist.TCPStore("127.0.0.1", 0, is_master=True, timeout=timedelta(seconds=30))
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(master.port))
dist.init_process_group("gloo", store=master, rank=0, world_size=1)
in_store = threading.Event()
original = FailureBoard.failures
KEY = "woken-in-teardown"

def slow_failures(self):
    in_store.set()
    with contextlib.suppress(Exception):  # a store slow to answer: at most 4 s, then it times out
        self._store.wait([KEY], timedelta(seconds=4))
    return original(self)

FailureBoard.failures = slow_failures

class WakesTheWatcher:  # freed in the interpreter's teardown, once Python ends daemon threads that wake
    def __init__(self, store):
        self.store, self.sleep = store, time.sleep  # module globals may be gone by then

    def __del__(self):
        self.store.set("freeze_tui/run/0/" + KEY, "1")  # the watcher's store call returns now
        self.sleep(1)

in_teardown = WakesTheWatcher(master)
board = FailureBoard(0, 1)
board.watch(lambda failures: None, find_lost=True)
world = World(0, 1, 0, 0, 1, torch.device("cpu"), None, dist.group.WORLD, board)
assert in_store.wait(10)
world.close()  # the end of a finished run, on every rank
print("closed", flush=True)
sys.exit(0)
"""


def test_a_world_closed_while_its_watcher_waits_on_the_store_exits_0():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", CLOSE_WHILE_THE_STORE_IS_SLOW], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip() == "closed"
    assert "terminate called" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr[-2000:]


def test_stop_ends_the_watcher_between_two_polls_at_once(monkeypatch):
    from datetime import timedelta

    import torch.distributed as dist

    from engine.dist import board as board_module
    from engine.dist.board import FailureBoard

    monkeypatch.setattr(board_module, "POLL_S", 30.0)  # a watcher that would sleep long between polls
    master = dist.TCPStore("127.0.0.1", 0, is_master=True, timeout=timedelta(seconds=30))
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(master.port))
    board = FailureBoard(0, 2)
    board.watch(lambda failures: None, find_lost=True)
    watcher = board._watcher
    assert watcher is not None and watcher.is_alive()
    started = time.monotonic()
    assert board.stop()
    assert not watcher.is_alive() and time.monotonic() - started < 3.0  # woken, not slept out
    assert board.stop()  # again (World.close, then MeshRun.quiet): nothing left to wait for
