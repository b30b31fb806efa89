"""The torch-free parts of a run: the one emitter and its log sink, the replicate loop, the per-arm
accumulator, and the planned run (issue 19, engine side)."""

import errno
import math
import re

import pytest

from engine.core.errors import FreezeTuiError
from engine.log import events as ev
from engine.log.runlog import LogWriter, read_events
from engine.plans.planned import plan_run
from engine.run.accumulate import DEVICE_FLUSH_STEPS, ArmTotals, flush_due
from engine.run.config import RunConfig
from engine.run.emitter import Emitter, LogSink, new_run_id
from engine.run.replicates import run_replicates
from tests.layouts import gpt2_layout


# -- the emitter ------------------------------------------------------------------------------------------
def test_the_emitter_stamps_folds_then_hands_to_every_sink_in_order():
    seen: list[tuple[str, int]] = []
    emitter = Emitter([lambda e: seen.append(("a", e.seq)), lambda e: seen.append(("b", e.seq))])
    emitter.emit(ev.Header(run_id="x"))
    emitter.emit(ev.Warning(message="careful"))
    assert seen == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]
    assert emitter.state.messages[-1].message == "careful"  # folded before the sinks saw it


def test_nothing_follows_run_end_nor_a_close():
    seen: list[ev.Event] = []
    emitter = Emitter([seen.append])
    emitter.emit(ev.RunEnd(status="failed"))
    emitter.emit(ev.RunEnd(status="finished"))  # a second ender (a failure watcher) is too late
    assert [e.status for e in seen] == ["failed"] and emitter.ended
    other = Emitter([seen.append])
    other.close()
    other.emit(ev.Warning(message="late"))
    assert len(seen) == 1 and not other.state.messages


def test_a_log_that_breaks_on_the_run_end_line_still_says_so():
    seen: list[ev.Event] = []

    def log(event: ev.Event) -> None:  # the disk fills on the last line: the sink reports it at once
        if event.kind == "run_end":
            emitter.emit(ev.Error(message="the run log cannot be written any more", fatal=True))

    emitter = Emitter([log, seen.append])
    emitter.emit(ev.RunEnd(status="finished"))
    emitter.emit(ev.Warning(message="late"))
    assert [e.kind for e in seen] == ["error", "run_end"] and emitter.ended


def test_a_log_sink_that_cannot_write_reports_once_and_keeps_whole_lines(tmp_path, monkeypatch):
    log = tmp_path / "run.jsonl"
    broken: list[Exception] = []
    sink = LogSink(log, on_broken=broken.append)
    emitter = Emitter([sink])
    emitter.emit(ev.Header(run_id="x"))
    original = LogWriter.write

    def full(self, event):
        if event.kind == "warning":
            raise OSError(errno.ENOSPC, "No space left on device")
        original(self, event)

    monkeypatch.setattr(LogWriter, "write", full)
    emitter.emit(ev.Warning(message="one"))
    emitter.emit(ev.Warning(message="two"))
    assert len(broken) == 1 and "No space" in str(broken[0]) and sink.writer is None
    assert [e.kind for e in read_events(log)] == ["header"]


def test_the_run_id_is_the_start_time_and_three_random_bytes():
    first, second = new_run_id(), new_run_id()
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", first) and first != second


# -- the replicate loop -----------------------------------------------------------------------------------
class FakeExperiment:
    def __init__(self, cfg: RunConfig, statuses: list[str], log: list) -> None:
        self.cfg, self.statuses, self.log = cfg, statuses, log

    def samples(self, phase: str, epoch: int) -> None:
        self.log.append(("samples", self.cfg.seed, phase))

    def run(self) -> str:
        self.log.append(("run", self.cfg.seed))
        return self.statuses.pop(0)


def test_replicates_run_with_seeds_s_to_s_plus_k_and_stop_at_the_first_unfinished():
    log: list = []
    emitted: list[ev.Event] = []
    statuses = ["finished", "stopped", "finished"]
    status, last = run_replicates(
        RunConfig(seed=5, seeds=3),
        lambda cfg: FakeExperiment(cfg, statuses, log),
        emitted.append,
        lambda experiment: ev.RunStart(config={"seed": experiment.cfg.seed}),
    )
    assert status == "stopped" and last.cfg.seed == 6
    assert [e.kind for e in emitted] == ["run_start", "replicate", "replicate"]
    assert emitted[0].config == {"seed": 5} and [e.seed for e in emitted[1:]] == [5, 6]
    assert log == [("samples", 5, "pre"), ("run", 5), ("samples", 6, "pre"), ("run", 6)]


def test_one_replicate_writes_no_replicate_event():
    emitted: list[ev.Event] = []
    run_replicates(
        RunConfig(), lambda cfg: FakeExperiment(cfg, ["finished"], []), emitted.append, lambda e: ev.RunStart()
    )
    assert [e.kind for e in emitted] == ["run_start"]


# -- the accumulator --------------------------------------------------------------------------------------
def test_arm_totals_count_every_step_time_and_only_finite_losses():
    totals = ArmTotals()
    assert totals.add_step(2.0, 0.5) and totals.add_step(4.0, 0.5) and not totals.add_step(math.inf, 1.0)
    first = totals.end_epoch()
    assert (first.loss_mean, first.loss_var, first.t_epoch, first.t_total) == (3.0, 1.0, 2.0, 2.0)
    totals.add_step(1.0, 0.25)
    second = totals.end_epoch()
    assert (second.loss_mean, second.t_epoch, second.t_total) == (1.0, 0.25, 2.25)
    assert math.isnan(totals.end_epoch().loss_mean)  # an epoch without finite losses


def test_values_leave_the_host_every_step_and_a_device_in_batches():
    assert flush_due(1, on_device=False)
    assert not flush_due(DEVICE_FLUSH_STEPS - 1, on_device=True) and flush_due(DEVICE_FLUSH_STEPS, on_device=True)
    assert flush_due(1, on_device=True, idle_s=2.5, liveness_s=2.0)
    assert not flush_due(1, on_device=True, idle_s=2.5)  # no liveness limit: the engine's heartbeat says it lives


# -- the planned run --------------------------------------------------------------------------------------
def planned(arms, devices, budgets, dtype="fp32"):
    layout = gpt2_layout()
    return plan_run(
        arms,
        batch=8,
        block=128,
        dtype=dtype,
        model_name="gpt2",
        arch="gpt2",
        layout=layout,
        devices=devices,
        budgets=budgets,
        limited=False,
    )


def test_a_planned_run_resolves_places_and_counts_every_arm_once():
    run = planned([("full", "full"), ("targeted", "targeted"), ("reverse", "reverse")], ["cuda:0", "cuda:1"], {})
    assert [name for name, _ in run.plans] == ["full", "targeted", "reverse"]
    assert run.placement == {"full": "cuda:0", "targeted": "cuda:1", "reverse": "cuda:0"}
    assert run.memory["full"].total > run.memory["targeted"].total
    devices = run.per_device()
    assert devices["cuda:0"].needed == run.memory["full"].total + run.memory["reverse"].total
    assert devices["cuda:1"].fits and run.problem is None
    run.check()


def test_a_planned_run_that_does_not_fit_names_the_arm_and_a_rank_checks_its_own():
    run = planned([("full", "full"), ("targeted", "targeted")], ["cpu"], {"cpu": 10**6})
    assert run.problem and "full" in run.problem and "bf16" in run.problem
    with pytest.raises(FreezeTuiError):
        run.check()
    own = run.only(["targeted"])
    assert list(own.placement) == ["targeted"] and [n for n, _ in own.plans] == ["targeted"]
