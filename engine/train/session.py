"""A live run: the engine thread, the emitter that feeds every sink, and the controls. No torch here:
the thread imports it, so a viewer can show its first screen while the model loads."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import traceback
import warnings

from engine.config import RunConfig
from engine.errors import FreezeTuiError
from engine.heartbeat import HeartbeatThread
from engine.log import events as ev
from engine.log.channel import ChannelSource
from engine.log.runlog import LogWriter
from engine.log.state import RunState
from engine.log.summary import summarize

OOM_HINT = (
    "out of memory: try a smaller --batch-size or --block-size, --dtype bf16, "
    "or fewer arms (each arm holds its own copy of the model)"
)


class RunSession(ChannelSource):
    """A live run, readable by every viewer through the event-source protocol (mode 'live')."""

    def __init__(self, cfg: RunConfig, log_path, *, producer: str) -> None:
        super().__init__()
        self.cfg = cfg
        self.log_path = log_path
        self.writer: LogWriter | None = LogWriter(log_path, overwrite=cfg.overwrite)
        self.state = RunState()
        self.producer = producer
        self.failure: FreezeTuiError | None = None  # bad input found while setting up
        self.log_failure = ""
        self.abandoned = False  # quit without waiting: nothing more is written or handed on
        self.activity = ""  # what a long set-up step is doing now (tokenizing a large corpus), for a console
        self._seq = 0
        self._emit_lock = threading.Lock()
        self._thread = threading.Thread(target=self._main, name="freeze-tui-engine", daemon=True)
        self._heartbeat = HeartbeatThread(self.control.activity, self.emit)

    def start(self) -> RunSession:
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def abandon(self, timeout: float = 5.0) -> None:
        """Quit without waiting for the engine (a second interrupt): the log is closed between two lines
        and gets nothing more, so it holds exactly what the state and the viewer have seen."""
        locked = self._emit_lock.acquire(timeout=timeout)  # a line being written is finished first
        try:
            self.abandoned = True
            writer, self.writer = self.writer, None
            if writer is not None:
                self._last_run_end(writer)
                writer.close()
            self.channel.close()
        finally:
            if locked:
                self._emit_lock.release()

    def _last_run_end(self, writer) -> None:
        """A run quit before its engine wrote run_end (a second stop signal) still ends its log: "stopped",
        with the summary of what the log holds, so every reader sees how it ended (issue 21)."""
        if self.state.finished or self._seq == 0:
            return
        try:
            end = ev.RunEnd(seq=self._seq, t=time.time(), status="stopped", summary=summarize(self.state))
            writer.write(end)
        except Exception:  # a log that cannot take it keeps what it has
            return
        self._seq += 1
        self.state.apply(end)
        self.channel.put(end)  # the viewer learns it too, before the channel closes

    # -- emitting --------------------------------------------------------------------------------
    def emit(self, event: ev.Event) -> None:
        """Stamp, fold, log (never dropped), then hand to the viewer (never blocks)."""
        with self._emit_lock:
            if self.abandoned:
                return
            event = dataclasses.replace(event, seq=self._seq, t=time.time())
            self._seq += 1
            self.state.apply(event)
            if self.writer is not None:
                try:
                    self.writer.write(event)
                except (OSError, ValueError) as exc:
                    self._log_broken(exc)
            self.channel.put(event)

    def _route_library_output(self) -> None:
        """Library chatter must not scribble over the app: Python warnings become warning events
        (once each), transformers' logging and progress bars are silenced."""
        seen: set[str] = set()

        def show(message, category, filename, lineno, file=None, line=None):
            text = f"{category.__name__}: {message}"
            if text not in seen:
                seen.add(text)
                self.emit(ev.Warning(message=text))

        warnings.showwarning = show
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
        except ImportError:  # pragma: no cover - transformers is a dependency
            pass

    def _log_broken(self, exc: Exception) -> None:
        """Called under the emit lock: the viewer and the state learn why, the run stops, the file stays
        as it is (every line written so far is whole, or the reader skips the cut last one)."""
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()  # quietly: its file may refuse even that
        self.log_failure = f"the run log {self.log_path} cannot be written any more ({exc}); the run stops"
        self.control.stop.set()
        error = ev.Error(seq=self._seq, t=time.time(), message=self.log_failure, fatal=True)
        self._seq += 1
        self.state.apply(error)
        self.channel.put(error)

    def _tokenizing(self, done: int, total: int, cached: bool = True) -> None:
        tenth = 10 * done // max(1, total)  # a new line every 10 %, not every second
        kept = "cached for later runs" if cached else "not cached (the cache cannot be written)"
        text = f"tokenizing the corpus ({total / 1e6:.0f} MB): {10 * tenth} %, {kept}"
        if text != self.activity:
            self.activity = text

    # -- the engine thread -----------------------------------------------------------------------
    def _main(self) -> None:
        previous_showwarning = warnings.showwarning
        try:
            self._main_body()
        finally:  # whatever happens, a viewer waiting for the end must not wait forever
            self._heartbeat.halt()
            warnings.showwarning = previous_showwarning  # later warnings are not this run's
            if self.writer is not None:
                self.writer.close()
            self.channel.close()

    def _main_body(self) -> None:
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(3).hex()}"
        self.emit(ev.Header(producer=self.producer, run_id=run_id))
        self._heartbeat.start()
        status, extra = "failed", dict[str, dict]()
        try:
            self._route_library_output()
            status, extra = self._run()
        except FreezeTuiError as exc:
            self.failure = exc
            self.emit(ev.Error(message=str(exc), fatal=True))
        except Exception as exc:
            message = OOM_HINT if "out of memory" in str(exc).lower() else f"{type(exc).__name__}: {exc}"
            self.emit(ev.Error(message=message, fatal=True, detail=traceback.format_exc()))
        if self.log_failure:
            status = "failed"
        try:
            summary = summarize(self.state, extra)
        except Exception:
            summary = {}
        self._heartbeat.halt()  # run_end is the last line
        self.emit(ev.RunEnd(status=status, summary=summary))

    def _run(self) -> tuple[str, dict]:
        from engine.gpu import GpuSampler
        from engine.train.experiment import Experiment, weights_checksum
        from engine.train.setup import cuda_devices, prepare, run_start_event

        activity = self.control.activity
        setup = prepare(self.cfg, activity, progress=self._tokenizing)
        self._heartbeat.gpus = GpuSampler.open(cuda_devices([*setup.placement.values(), setup.device]))
        for k in range(self.cfg.seeds):
            # replicate k: same split, S and initial weights; seed s+k orders batches, drops out, samples
            activity.enter("arms")
            experiment = Experiment(
                dataclasses.replace(self.cfg, seed=self.cfg.seed + k), setup, self.emit, self.control
            )
            if k == 0:
                checksums = {a.name: weights_checksum(a.model) for a in experiment.arms}
                self.emit(run_start_event(setup, checksums))
            if self.cfg.seeds > 1:
                self.emit(ev.Replicate(replicate=k, of=self.cfg.seeds, seed=self.cfg.seed + k))
            experiment.samples("pre", -1)
            status = experiment.run()
            if status != "finished":
                break
        if self.cfg.save:
            experiment.save(self.cfg.save)
        activity.enter("finish")
        return status, {"state_bytes": experiment.arm_memory()}
