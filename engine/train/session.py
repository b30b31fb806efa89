"""A live run: the engine thread, the emitter that feeds every sink, and the controls. No torch here:
the thread imports it, so a viewer can show its first screen while the model loads."""

from __future__ import annotations

import os
import threading
import traceback
import warnings
from typing import Any

import msgspec

from engine.core.errors import FreezeTuiError
from engine.log import events as ev
from engine.log.channel import ChannelSource
from engine.log.state import RunState
from engine.log.summary import summarize
from engine.plans.memory import fmt_bytes
from engine.run.checkpoints import ResumePoint
from engine.run.config import RunConfig
from engine.run.demo_size import quick_demo
from engine.run.emitter import Emitter, LogSink, new_run_id
from engine.run.heartbeat import HeartbeatThread
from engine.run.replicates import run_replicates

OOM_HINT = (
    "out of memory: try a smaller --batch-size or --block-size, --dtype bf16, "
    "or fewer arms (each arm holds its own copy of the model)"
)


class OneProcess:
    """Where a one-process run's arms live (the experiment's topology is LocalDevices): how the run
    starts, fails and ends here. A distributed run's rank 0 passes engine.dist.dist_session.MeshRun
    instead, which ends the log itself when a rank fails."""

    def run(self, session: RunSession) -> tuple[str, dict]:
        return session._run()

    def fail(self, session: RunSession, exc: Exception) -> None:
        """The run broke (called inside the except clause): the log says why; run_end follows."""
        if isinstance(exc, FreezeTuiError):
            session.failure = exc
            session.emit(ev.Error(message=str(exc), fatal=True))
            return
        message = OOM_HINT if "out of memory" in str(exc).lower() else f"{type(exc).__name__}: {exc}"
        session.emit(ev.Error(message=message, fatal=True, detail=traceback.format_exc()))

    def stopping(self, session: RunSession) -> None:
        """A stop was asked: the experiment stops at its next step boundary; nothing else to do."""

    def close(self) -> None:
        """The log is whole: nothing to tear down."""


class RunSession(ChannelSource):
    """A live run, readable by every viewer through the event-source protocol (mode 'live').
    `where`: where its arms live (OneProcess, or a distributed run's MeshRun on world rank 0)."""

    def __init__(
        self, cfg: RunConfig, log_path, *, producer: str, where: Any = None, resume: ResumePoint | None = None
    ) -> None:
        super().__init__()
        self.where = where if where is not None else OneProcess()
        self.cfg = cfg
        self.log_path = log_path
        self.resume_point = resume
        self.log = LogSink(log_path, overwrite=cfg.overwrite, on_broken=self._log_broken, append=resume is not None)
        if resume is None:
            self.emitter = Emitter([self.log, self.channel.put])
        else:  # the log gets new lines only once the checkpoint is checked and loaded (the `resumed` event)
            for event in resume.events:
                self.channel.put(event)  # a viewer shows the run so far
            self.emitter = Emitter([self.channel.put], RunState().apply_all(resume.events))
            self.emitter.seq = resume.next_seq
        self.producer = producer
        self.failure: FreezeTuiError | None = None  # bad input found while setting up
        self.log_failure = ""
        self.activity = ""  # what a long set-up step is doing now (tokenizing a large corpus), for a console
        self._times: Any = None  # the set-up's OffStepClock (engine.train.setup), once it exists
        self._thread = threading.Thread(target=self._main, name="freeze-tui-engine", daemon=True)
        self._heartbeat = HeartbeatThread(self.control.activity, self.emit)

    @property
    def state(self) -> RunState:
        return self.emitter.state

    @property
    def abandoned(self) -> bool:
        """Quit without waiting: nothing more is written or handed on."""
        return self.emitter.closed

    def start(self) -> RunSession:
        self._thread.start()
        return self

    def stop(self) -> None:
        super().stop()
        self.where.stopping(self)

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def abandon(self, timeout: float = 5.0) -> None:
        """Quit without waiting for the engine (a second interrupt): the log is closed between two lines
        and gets nothing more, so it holds exactly what the state and the viewer have seen."""
        self.emitter.close(timeout, last=self._stopped_end)  # a line being written is finished first
        self.log.close()
        self.channel.close()

    def _stopped_end(self) -> ev.RunEnd:
        """A run quit before its engine wrote run_end (a second stop signal) still ends its log: "stopped",
        with the summary of what the log holds, so every reader sees how it ended (issue 21)."""
        return ev.RunEnd(status="stopped", summary=summarize(self.state))

    # -- emitting --------------------------------------------------------------------------------
    def emit(self, event: ev.Event) -> None:
        """Stamp, fold, log (never dropped), then hand to the viewer (never blocks)."""
        self.emitter.emit(event)

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
        """The log sink failed (it closed the file as it is: every line so far whole, or the reader skips
        the cut last one): the viewer and the state learn why, the run stops."""
        self.log_failure = f"the run log {self.log_path} cannot be written any more ({exc}); the run stops"
        self.control.stop.set()
        self.emit(ev.Error(message=self.log_failure, fatal=True))  # to the state and the viewer only

    def _tokenizing(self, done: int, total: int, cached: bool = True) -> None:
        tenth = 10 * done // max(1, total)  # a new line every 10 %, not every second
        kept = "cached for later runs" if cached else "not cached (the cache cannot be written)"
        text = f"tokenizing the corpus ({fmt_bytes(total)}): {10 * tenth} %, {kept}"  # 0.5 MB is "500.0 kB"
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
            self.log.close()
            self.channel.close()

    def _main_body(self) -> None:
        if self.resume_point is None:  # a resumed log has its header
            self.emit(ev.Header(producer=self.producer, run_id=new_run_id()))
        self._heartbeat.start()
        status, extra = "failed", dict[str, dict]()
        try:
            self._route_library_output()
            status, extra = self.where.run(self)
        except Exception as exc:
            self.where.fail(self, exc)
        if self.emitter.ended:  # the failure ended the log itself (a distributed run names the rank)
            return
        if self.log_failure:
            status = "failed"
        try:
            summary = summarize(self.state, extra)
            summary.update(self._phase_times())
        except Exception as exc:  # the run's end must still be written; say why its summary is missing
            summary = {}
            self.emit(ev.Error(message=f"summary failed: {type(exc).__name__}: {exc}", detail=traceback.format_exc()))
        self._heartbeat.halt()  # run_end is the last line
        self.emit(ev.RunEnd(status=status, summary=summary))
        self.where.close()

    def _size_demo(self) -> None:
        """On a CPU the demo runs its quick size unless --full-demo (engine/run/demo_size.py); it says so."""
        from engine.train.devices import resolve_devices

        on_cpu = all(d.type == "cpu" for d in resolve_devices(self.cfg.device))
        self.cfg, said = quick_demo(self.cfg, on_cpu)
        if said:
            self.emit(ev.Warning(message=said))

    def _phase_times(self) -> dict:
        """run_end.summary's sampling_s and validation_s (issue 22); nothing when set-up failed."""
        times = self._times
        if times is None:
            return {}
        return msgspec.to_builtins(ev.PhaseTimes(sampling_s=times.sampling_s, validation_s=times.validation_s))

    def _run(self) -> tuple[str, dict]:
        from engine.run.gpu import GpuSampler
        from engine.train.experiment import Experiment, weights_checksum
        from engine.train.setup import cuda_devices, prepare, run_start_event

        activity = self.control.activity
        self._size_demo()
        setup = prepare(self.cfg, activity, progress=self._tokenizing)
        self._times = setup.times
        self._heartbeat.gpus = GpuSampler.open(cuda_devices([*setup.placement.values(), setup.device]))

        def run_start(experiment: Experiment) -> ev.RunStart:
            return run_start_event(setup, {a.name: weights_checksum(a.model) for a in experiment.arms})

        from engine.train.session_checkpoints import SessionCheckpoints

        checkpoints = SessionCheckpoints(setup, self.log_path, self.emitter, self.log, self.resume_point)

        def make(cfg: RunConfig) -> Experiment:
            return checkpoints.attach(Experiment(cfg, setup, self.emit, self.control))

        status, experiment = run_replicates(
            self.cfg,
            make,
            self.emit,
            run_start,
            on_replicate=lambda: activity.enter("arms"),
            resume=(self.resume_point.replicate, checkpoints.restore) if self.resume_point is not None else None,
        )
        if self.cfg.save:
            experiment.save(self.cfg.save)
        activity.enter("finish")
        from engine.log.throughput import throughput_extras

        return status, {"state_bytes": experiment.arm_memory(), **throughput_extras(self.state)}
