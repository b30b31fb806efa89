"""The failure board finds a rank lost without a word through the rendezvous store alone -- no
collective takes part, so the path is the same under gloo and NCCL (issue 22: under NCCL a lost
rank only hangs the others' collectives). NCCL itself cannot run here (no GPU): the board is tested
with a real TCPStore and a real killed process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

torch_dist = pytest.importorskip("torch.distributed")

from engine.dist import board as board_module  # noqa: E402
from engine.dist.board import LOST, FailureBoard  # noqa: E402
from tests.engine.test_dist_hunt import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RANK1 = (  # rank 1: registers, beats, and sleeps
    "from engine.dist.board import FailureBoard; b = FailureBoard(1, 2); b.watch(print); "
    "print('ready', flush=True); import time; time.sleep(120)"
)


@pytest.fixture
def world(monkeypatch):
    port = free_port()
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    master = torch_dist.TCPStore("127.0.0.1", port, is_master=True, wait_for_workers=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rank1 = subprocess.Popen([sys.executable, "-c", RANK1], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert rank1.stdout is not None and rank1.stdout.readline().strip() == "ready"
        yield FailureBoard(0, 2), rank1
    finally:
        rank1.kill()
        rank1.wait()
        del master


def heard(board: FailureBoard, within: float) -> dict:
    got: dict = {}
    done = threading.Event()
    board.watch(lambda failures: (got.update(failures), done.set()), find_lost=True)
    done.wait(within)
    board.closed = True
    return got


def test_a_live_rank_is_not_lost_and_a_killed_one_is_named(world):
    board, rank1 = world
    assert board.lost() == [] and heard(board, 1.5) == {}
    board.closed = False
    rank1.send_signal(signal.SIGKILL)
    rank1.wait()
    started = time.monotonic()
    assert heard(board, 10) == {1: LOST}
    assert time.monotonic() - started < 5
    assert board.blame({1: "lost contact with another rank"}) == {1: LOST}


def test_a_rank_on_another_host_is_lost_when_its_beats_stop(world, monkeypatch):
    board, rank1 = world
    monkeypatch.setattr(board_module, "LOST_AFTER_S", 1.5)
    board.host = "another-host"  # rank 1's pid cannot be looked at from here: only its beats count
    assert heard(board, 3) == {}  # it beats every second
    board.closed = False
    rank1.send_signal(signal.SIGSTOP)  # alive but silent, like a node gone from the network
    try:
        assert heard(board, 10) == {1: LOST}
    finally:
        rank1.send_signal(signal.SIGCONT)
