"""Alerts (issue 20): what fires, when, once; the same whether events come one by one or in batches;
--notify's command gets the alert and a failing one is a warning line only."""

from __future__ import annotations

import json
import math
import sys

from engine.log import events as ev
from engine.log.alerts import DIVERGE_BLOCK, Alert, AlertWatch
from engine.log.state import RunState
from engine.run.notify import Notifier


def run_events(losses: dict[str, list[float]], *, config: dict | None = None, end: str = "") -> list[ev.Event]:
    """A header, a run_start of these arms, one step per position (None = no record), a run_end."""
    out: list[ev.Event] = [
        ev.Header(run_id="r1"),
        ev.RunStart(config=config or {}, arms=[ev.ArmRecord(name=name, spec=name) for name in losses]),
    ]
    n = len(next(iter(losses.values())))
    for i in range(n):
        records = {name: ev.ArmStep(loss=values[i], dt=0.1) for name, values in losses.items() if values[i] != -1}
        out.append(ev.Step(step=i, epoch=0, arms=records))
    if end:
        out.append(ev.RunEnd(status=end))
    return [ev.stamped(e, seq, 100.0 + seq) for seq, e in enumerate(out)]


def alerts_of(events, watch: AlertWatch | None = None, one_by_one: bool = True) -> list[Alert]:
    state, watch, found = RunState(), watch or AlertWatch(), []
    for e in events:
        state.apply(e)
        if one_by_one:
            found += watch.update(state)
    return found if one_by_one else watch.update(state)


def noise(i: int) -> float:
    return 0.05 * math.sin(7.3 * i)


N = 6 * DIVERGE_BLOCK
FULL = [5.0 - 2.0 * i / N + noise(i) for i in range(N)]
SLOW = [5.0 - 0.3 * i / N + noise(i + 3) for i in range(N)]  # a frozen arm: learns slower, never rises
BLOWS = [5.0 - 0.5 * i / N + noise(i + 5) if i < 3 * DIVERGE_BLOCK else 5.0 + 0.05 * i for i in range(N)]


def test_an_arm_that_learns_slower_is_not_diverging_one_that_rises_is_at_its_block():
    found = alerts_of(run_events({"full": FULL, "targeted": SLOW, "lr_too_high": BLOWS}, end="finished"))
    kinds = [(a.kind, a.arm) for a in found]
    assert kinds == [("diverging", "lr_too_high"), ("run_end", "")]
    assert found[0].step == 4 * DIVERGE_BLOCK  # the first whole block after the rise, 1-based
    assert "loss diverging at step 80" in found[0].message and "k = 3" in found[0].message
    assert found[1].message.startswith("run r1 finished at step 120: loss full") and found[1].status == "finished"


def test_k_is_the_runs_setting_and_batching_does_not_change_the_verdict():
    events = run_events({"full": FULL, "lr_too_high": BLOWS})
    assert alerts_of(events, one_by_one=False) == alerts_of(events)  # a replay at max speed says the same
    assert alerts_of(run_events({"full": FULL, "lr_too_high": BLOWS}, config={"diverge_k": 1000.0})) == []
    assert alerts_of(events, AlertWatch(k=1000.0)) == []


def test_a_non_finite_loss_fires_once_with_its_step():
    bad = [*SLOW[:10], math.nan, math.inf, *SLOW[12:30]]
    found = alerts_of(run_events({"full": FULL[:30], "t": bad}))
    assert [(a.kind, a.arm, a.step) for a in found] == [("nonfinite", "t", 11)]
    assert alerts_of(run_events({"full": FULL[:30], "t": [*SLOW[:10], -1, *SLOW[11:30]]})) == []  # no record


def test_a_stall_fires_once_and_again_after_the_writer_came_back():
    state, watch = RunState().apply_all(run_events({"full": FULL[:5]})), AlertWatch()
    assert [a.kind for a in watch.update(state, "writer gone (no heartbeat for 12 s)")] == ["stalled"]
    assert watch.update(state, "writer gone (no heartbeat for 13 s)") == []
    assert watch.update(state, "") == []
    assert watch.update(state, "writer paused/not responding (pid 7 alive)")[0].message.startswith("writer paused")


def test_notify_runs_the_command_with_the_alert_and_a_failing_one_is_one_warning(tmp_path):
    out, warnings = tmp_path / "alert.json", []
    command = f'cat > {out} && printf %s "$FREEZE_TUI_ALERT_KIND $FREEZE_TUI_ALERT_STEP" > {tmp_path / "env.txt"}'
    notifier = Notifier(command, warnings.append, log="x.jsonl")
    notifier.send(Alert("diverging", "arm a: loss diverging", "a", 80, "running"), run_id="r1")
    notifier.close()
    assert json.loads(out.read_text()) == {
        "kind": "diverging",
        "message": "arm a: loss diverging",
        "arm": "a",
        "step": 80,
        "status": "running",
        "run_id": "r1",
        "log": "x.jsonl",
    }
    assert (tmp_path / "env.txt").read_text() == "diverging 80" and warnings == []
    failing = Notifier(f"{sys.executable} -c 'import sys; sys.exit(\"no route to phone\")'", warnings.append)
    failing.send(Alert("run_end", "run r1 finished", status="finished"))
    failing.close()
    assert warnings == ["--notify command failed with exit code 1 (run_end alert): no route to phone"]


def test_diverge_k_must_be_a_positive_number():
    import pytest

    from engine.core.errors import FreezeTuiError
    from engine.run.config import RunConfig

    assert RunConfig(diverge_k=2.5).validate().to_dict()["diverge_k"] == 2.5  # written into run_start.config
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(FreezeTuiError, match="--diverge-k must be a positive number"):
            RunConfig(diverge_k=bad).validate()


class ListSource:
    """The source protocol over a list of events, all in one batch."""

    mode = "live"

    def __init__(self, events) -> None:
        self.events, self.done = list(events), False

    def get_batch(self, timeout: float):
        batch, self.events, self.done = self.events, [], True
        return batch

    def stop(self) -> None:
        self.done = True


def test_headless_prints_the_alert_and_tells_notify_every_one():
    import io

    from rich.console import Console

    from freeze_tui.cli.headless import run_headless
    from freeze_tui.cli.interrupts import Interrupts

    sent: list[tuple[str, str]] = []

    class Recorded:
        def send(self, alert: Alert, run_id: str = "") -> None:
            sent.append((alert.kind, run_id))

    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    events = run_events({"full": FULL, "hot": BLOWS}, end="finished")
    assert run_headless(ListSource(events), console, Interrupts(), notifier=Recorded()) == 0
    lines = [line for line in out.getvalue().splitlines() if line.startswith("alert: ")]
    assert len(lines) == 1 and lines[0].startswith("alert: arm hot: loss diverging at step 80")
    assert sent == [("diverging", "r1"), ("run_end", "r1")]
