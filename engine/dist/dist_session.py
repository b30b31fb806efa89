"""The processes of a distributed run: world rank 0 is a RunSession (the only emitter: it writes the log,
the console prints it); every other rank trains in its main thread and prints only its own errors.
No torch at import: the engine thread (rank 0) or `run_worker` loads it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from typing import Any

from engine.core.control import STOP_SIGNALS, Control
from engine.core.errors import FreezeTuiError
from engine.dist.agreement import SettingsDiffer
from engine.dist.board import LOST, LOST_AFTER_S, STOP_WAIT_S
from engine.log import events as ev
from engine.log.summary import summarize
from engine.run.checkpoints import ResumePoint
from engine.run.config import RunConfig
from engine.train.session import OOM_HINT, RunSession

STOP_GRACE_S = 15.0
LOST_PEER = "lost contact with another rank: its process ended without a word (killed? see the launcher's output)"
DONE_WAIT_S = 60.0  # how long a failed rank waits for rank 0 to end the log before it exits anyway


def failure_message(exc: BaseException) -> str:
    if isinstance(exc, FreezeTuiError):
        return str(exc)
    text = str(exc)
    if "out of memory" in text.lower():
        return OOM_HINT
    if "closed by peer" in text or "reset by peer" in text:  # gloo: a rank's process is gone
        return LOST_PEER
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


class MeshRun:
    """World rank 0 of a distributed run, as its session's `where`: it trains its own arm (in the
    engine thread, like a one-process run), merges every rank's events into the one log, and ends it
    -- also when another rank fails or is lost."""

    def __init__(self) -> None:
        self.session: Any = None  # the RunSession whose log this ends (set by mesh_session)
        self.world: Any = None  # engine.dist.distributed.World, once the process group exists
        self._grace_timer: threading.Timer | None = None  # stopping()'s, while a stop waits for the ranks

    @property
    def _ended(self) -> bool:
        """The engine thread and the failure watcher may both end the run: the emitter takes one run_end."""
        return self.session.emitter.ended

    def run(self, session: RunSession) -> tuple[str, dict]:
        from engine.dist.distributed import PHASE_TIMES, drive, init_world

        from engine.log.throughput import throughput_extras

        self.world = init_world(session.cfg)
        self.world.board.watch(self._end_failed, find_lost=True)
        status, extra = drive(session.cfg, session.emit, session.control, self.world, session)
        session._times = extra.pop(PHASE_TIMES)  # run_end's sampling_s and validation_s, as in one process
        return status, {**extra, **throughput_extras(session.state)}  # tokens/s and MFU as in one process

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the log is whole; tearing the groups down is best effort
            self.world.close()

    def stopping(self, session: RunSession) -> None:
        """Stop at the next sync point, where every rank agrees; a rank that died (killed by the system
        or the launcher) never gets there, so after STOP_GRACE_S the log ends without it."""

        def give_up() -> None:
            if not self._ended:
                lost = self._lost()
                if lost:  # under NCCL a lost rank hangs the others' collectives: it is a failure, named
                    self._end_failed(lost)
                    return
                why = f"stopped, but not every rank reached a step boundary within {STOP_GRACE_S:.0f} s"
                self._end_failed({0: why + " (did one die? see the launcher's output)"}, status="stopped")

        timer = threading.Timer(STOP_GRACE_S, give_up)
        timer.daemon = True
        timer.start()
        self._grace_timer = timer

    def end_unfinished(self, interrupted: bool) -> None:
        """The console quit before the run ended (a second Ctrl-C, or the launcher's SIGTERM when
        another rank died): the log still ends, saying so."""
        if not self._ended:
            lost = self._lost()
            if lost:
                self._end_failed(lost)
                return
            why = "interrupted" if interrupted else "ended by a signal (a launcher ends every rank when one dies)"
            self._end_failed({0: f"{why} before the run finished"}, status="stopped" if interrupted else "failed")

    def _lost(self) -> dict[int, str]:
        """{rank: why} of the ranks lost without a word (killed), by the board's liveness; {} when none."""
        if self.world is None:
            return {}
        try:
            return self.world.board.blame({})
        except Exception:  # the store is gone with the launcher: nothing more to learn
            return {}

    def mark_done(self) -> None:
        """The log is whole and the console has said it: ranks waiting on a failure may exit."""
        if self.world is not None:
            self.world.board.mark_done()

    def fail(self, session: RunSession, exc: Exception) -> None:
        """Rank 0 failed -- or broke because another rank did first: then that rank is the cause."""
        if isinstance(exc, FreezeTuiError):
            session.failure = exc
        if isinstance(exc, SettingsDiffer):  # every rank found the same: name the rank that differs
            self._end_failed({exc.rank: str(exc)})
            return
        if self.world is None:
            detail = "" if isinstance(exc, FreezeTuiError) else traceback.format_exc()
            self._end_failed({0: failure_message(exc)}, detail)
            return
        message = failure_message(exc)
        self.world.board.report(message)
        time.sleep(2 * 0.2)  # a failure that reached the store first is the cause, not this one
        others = {r: m for r, m in self.world.board.failures().items() if r != 0}
        # a peer's process gone breaks this rank's collective (gloo): the lost rank is the cause, not this one
        wait_s = LOST_AFTER_S + 1 if message == LOST_PEER else 0.0
        with contextlib.suppress(Exception):  # the store may be gone with the launcher
            others = self.world.board.blame(others, wait_s=wait_s)
        self._end_failed(others or {0: message}, "" if others else traceback.format_exc())

    def _end_failed(self, failures: dict[int, str], detail: str = "", status: str = "failed") -> None:
        """The log's end for a failed run, naming every rank that failed; then the others may exit."""
        session = self.session
        if self.world is not None:  # a rank lost without a word: the board says so for it, so the rest leave
            with contextlib.suppress(Exception):
                for rank, message in failures.items():
                    if message == LOST and rank != 0:
                        self.world.board.report(message, rank=rank)
        session._heartbeat.halt()
        with session.emitter.lock:  # the errors and their run_end in one piece
            for rank, message in sorted(failures.items()):
                session.emit(ev.Error(message=f"rank {rank}: {message}", fatal=True, detail=detail))
            summary = summarize(session.state, {})
            rank, message = min(failures.items())
            summary["failure"] = {"rank": rank, "message": message}
            session.emit(ev.RunEnd(status=status, summary=summary))
        with session.emitter.lock:
            session.log.close()
        session.channel.close()

    def quiet(self) -> bool:
        """Before the process ends: no thread of this run left in a torch call (the board's watcher, the
        stop grace timer). False when one is still there (a store that stopped answering): the process
        must then leave with os._exit, as interpreter shutdown would abort it (FailureBoard.stop)."""
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer.join(STOP_WAIT_S)
            if self._grace_timer.is_alive():  # give_up is running: it ends the log through the store
                return False
        return self.world is None or self.world.board.stop()


def mesh_session(cfg: RunConfig, log_path, *, producer: str, resume: ResumePoint | None = None) -> MeshRun:
    """World rank 0's run: the one RunSession, whose arms live on the ranks of a mesh (`resume`: the
    checkpoint a resumed run goes on from)."""
    mesh = MeshRun()
    mesh.session = RunSession(cfg, log_path, producer=producer, where=mesh, resume=resume)
    return mesh


def run_worker(cfg: RunConfig) -> int:
    """A rank other than 0: train, print nothing but this rank's own error; exit 0 when the run ended
    (rank 0 says how), 1 (or 2 for bad input) when this rank failed."""
    from engine.dist.distributed import drive, init_world

    warnings.simplefilter("ignore")  # rank 0 logs the warnings; the same ones would repeat here
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    control = Control()
    for sig in STOP_SIGNALS:  # the launcher passes on Ctrl-C, SIGTERM, SIGHUP: stop with rank 0
        signal.signal(sig, lambda *_: control.stop.set())
    world = None
    try:
        world = init_world(cfg)
        world.board.watch(lambda failures: _exit_after_rank0(world))
        drive(cfg, lambda event: None, control, world)
        world.close()
        return 0
    except Exception as exc:
        message, code = failure_message(exc), 2 if isinstance(exc, FreezeTuiError) else 1
        if isinstance(exc, SettingsDiffer):  # every rank refuses alike: rank 0 says it, and one rank per other node
            if os.environ.get("LOCAL_RANK", "0") == "0":
                print(f"freeze-tui: error: {message}", file=sys.stderr, flush=True)
            return code
        if world is None:  # before the world formed (this rank's device, the rendezvous): no one to tell
            print(f"freeze-tui: error: rank {os.environ.get('RANK')}: {message}", file=sys.stderr, flush=True)
            return code
        world.board.report(message)
        world.board.wait_done(DONE_WAIT_S)
        if world.board.failures().get(0) != message:  # the same bad input on every rank: rank 0 said it
            print(f"freeze-tui: error: rank {world.rank}: {message}", file=sys.stderr, flush=True)
        os._exit(code)


def _exit_after_rank0(world) -> None:
    """Another rank failed: rank 0 writes the end of the log; this rank's work is void, it leaves quietly."""
    world.board.wait_done(DONE_WAIT_S)
    os._exit(1)
