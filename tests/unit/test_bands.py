"""Bands across seeds: per step the lowest and highest loss of the replicates, drawn only when finished."""

from __future__ import annotations

import math

from engine.log import events as ev
from engine.log.bands import arm_bands, seed_range
from engine.log.state import RunState
from freeze_tui.app.widgets.header_bar import SourceView, progress_line
from freeze_tui.draw import charts


def test_seed_range_takes_min_and_max_and_skips_gaps():
    lows, highs = seed_range([[3.0, 2.0, math.nan], [2.5, 2.4, 1.0, 0.5], [3.5, math.nan]])
    assert lows[:3] == [2.5, 2.0, 1.0] and highs[:3] == [3.5, 2.4, 1.0]
    assert lows[3] == highs[3] == 0.5 and seed_range([]) == ([], [])


def _two_seeds(finished: bool) -> RunState:
    events = [ev.Header(), ev.RunStart(arms=[ev.ArmRecord(name="full"), ev.ArmRecord(name="t")])]
    for k, shift in enumerate([0.0, 0.5]):
        events.append(ev.Replicate(replicate=k, of=2, seed=k))
        for step in range(4):
            arms = {
                "full": ev.ArmStep(loss=3.0 - step + shift, dt=1.0),
                "t": ev.ArmStep(loss=3.2 - step + shift, dt=0.6),
            }
            events.append(ev.Step(step=step, epoch=0, arms=arms))
    if finished:
        events.append(ev.RunEnd(status="finished"))
    return RunState().apply_all(events)


def test_bands_cover_every_seed_once_the_run_is_finished():
    assert arm_bands(_two_seeds(False)) == {}  # while running, the chart shows the current seed only
    state = _two_seeds(True)
    lows, highs = arm_bands(state)["full"]
    assert lows == [3.0, 2.0, 1.0, 0.0] and highs == [3.5, 2.5, 1.5, 0.5]
    series = charts.band_series(state)
    assert len(series) == 4 and series[0].ys == lows and series[1].ys == highs and series[0].xs == [0, 1, 2, 3]


def test_the_header_says_which_seed_runs():
    state = _two_seeds(False)
    line = progress_line(state, SourceView("live", False, False, 0.0, False, ""))
    assert "seed 2/2" in line.plain
