"""The headless printer: phase lines between steps, the ETA, and counts with --seeds and --max-steps."""

from __future__ import annotations

import io

from rich.console import Console

from engine.log import events as ev
from freeze_tui.cli.headless import run_headless

ARMS = [ev.ArmRecord(name="full", spec="full"), ev.ArmRecord(name="targeted", spec="targeted")]


class OneByOne:
    """The event-source protocol, one event per batch (as a slow live run delivers them)."""

    mode = "live"
    failure = None

    def __init__(self, events: list[ev.Event]) -> None:
        self.events, self.done = list(events), False

    def get_batch(self, timeout: float) -> list[ev.Event]:
        if self.events:
            return [self.events.pop(0)]
        self.done = True
        return []

    def stop(self) -> None:
        self.done = True


def replicate(k: int, t0: float, steps: int = 3) -> list[ev.Event]:
    rec = {"full": ev.ArmStep(2.0, 1.0, 0.001), "targeted": ev.ArmStep(2.1, 0.8, 0.001)}
    out: list[ev.Event] = [
        ev.Replicate(t=t0, replicate=k, of=2, seed=k),
        ev.Heartbeat(t=t0 + 1, phase="sample", seconds=1.0),
        ev.Sample(t=t0 + 2, phase="pre", arm="*"),
        ev.Heartbeat(t=t0 + 3, phase="validate", seconds=0.5),
        ev.StepZero(t=t0 + 4),
    ]
    out += [ev.Step(t=t0 + 5 + 2 * i, step=i, epoch=0, arms=rec) for i in range(steps)]
    out += [
        ev.Heartbeat(t=t0 + 12, phase="validate", seconds=1.0, epoch=0),
        ev.EpochEnd(t=t0 + 14, epoch=0, arms={"full": ev.ArmEpoch(2.0), "targeted": ev.ArmEpoch(2.1)}),
        ev.Heartbeat(t=t0 + 15, phase="sample", seconds=1.0, epoch=0),
        ev.Sample(t=t0 + 16, phase="epoch", arm="full", epoch=0),
        ev.Sample(t=t0 + 17, phase="epoch", arm="targeted", epoch=0),
    ]
    return out


def two_seeds_three_steps() -> list[ev.Event]:
    config = {"epochs": 3, "max_steps": 3, "seeds": 2, "samples": 1, "device": "cpu"}
    data = {"n_train_batches": 10, "n_val_batches": 2}
    start = [ev.Header(t=0.0), ev.RunStart(t=0.0, config=config, data=data, arms=ARMS)]
    return [*start, *replicate(0, 0.0), *replicate(1, 20.0), ev.RunEnd(t=40.0, status="finished")]


def printed(events: list[ev.Event], width: int = 160, code: int = 0) -> str:
    out = io.StringIO()
    got = run_headless(OneByOne(events), Console(file=out, width=width, color_system=None, highlight=False))
    assert got == code
    return out.getvalue()


def test_phases_between_steps_are_printed_once_each():
    text = printed(two_seeds_three_steps())
    assert text.count("… sampling before training") == 2  # once per replicate
    assert text.count("… validating before training") == 2
    assert text.count("… validating epoch 1") == 2
    assert text.count("… sampling after epoch 1") == 2


def test_each_seed_line_counts_its_own_steps():
    lines = [line for line in printed(two_seeds_three_steps()).splitlines() if line.startswith("seed ")]
    assert len(lines) == 2, lines
    assert all("epoch 1/1" in line and "3/3" in line for line in lines), lines  # not 0/3, not epoch 1/3


def test_progress_shows_an_eta_while_running():
    events = two_seeds_three_steps()
    running = events[: events.index(next(e for e in events if isinstance(e, ev.EpochEnd)))]
    text = printed(running, code=130)  # the log ends mid-run (no run_end): the last line as it was
    line = next(line for line in text.splitlines() if line.startswith("seed 1/2"))
    assert "ETA ~" in line, line
