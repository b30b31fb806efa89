"""Pareto fronts and frontier points from events alone (no torch); old logs without the fields read as nan."""

from __future__ import annotations

import math

from engine.log import events as ev
from engine.log.frontier import frontier_points, pareto
from engine.log.state import RunState


def test_pareto_marks_the_undominated_points():
    # larger is better on both axes; (1, 1) dominates (0, 0) and (1, 0); (2, -1) trades off
    assert pareto([(1, 1), (0, 0), (1, 0), (2, -1)]) == [True, False, False, True]
    assert pareto([(math.nan, 5), (0, 0)]) == [False, True]
    assert pareto([(1, 1), (1, 1)]) == [True, True]  # equal points do not dominate each other


ARMS = ("full", "targeted", "random-1")


def _events(with_measures: bool = True) -> list[ev.Event]:
    arms = [ev.ArmRecord(name=n, spec=n, trainable=1, total=2) for n in ("full", "targeted", "random-1")]
    out: list[ev.Event] = [ev.RunStart(arms=arms, config={"batch_size": 1, "block_size": 2})]
    zero = {"retain_loss": 3.0, "retain_batches": [3.0, 3.0], "val_loss": 5.0, "val_batches": [5.0, 5.0]}
    zero["expected_s"] = 0.4
    if with_measures:
        out.append(ev.StepZero(arms={n: ev.ArmMeasures(**zero) for n in ("full", "targeted", "random-1")}))
    for step in range(4):
        out.append(
            ev.Step(
                step=step,
                arms={
                    n: ev.ArmStep(loss=1.0, dt=dt) for n, dt in zip(("full", "targeted", "random-1"), (1.0, 0.5, 0.6))
                },
            )
        )
    ends = {
        "full": ([4.0, 4.2], [3.5, 3.7]),
        "targeted": ([4.5, 4.7], [3.1, 3.1]),
        "random-1": ([4.8, 4.8], [3.3, 3.2]),
    }
    rec = {}
    for name, (val, retain) in ends.items():
        rec[name] = {"val_loss": sum(val) / 2, "val_batches": val, "t_total": 1.0}
        if with_measures:
            rec[name].update(retain_loss=sum(retain) / 2, retain_batches=retain, expected_s=0.5)
    out.append(ev.EpochEnd(epoch=0, arms={name: ev.ArmEpoch(**fields) for name, fields in rec.items()}))
    return out


def test_points_pair_by_batch_and_mark_fronts():
    points = {p.arm: p for p in frontier_points(RunState().apply_all(_events()))}
    full, targeted, rand = points["full"], points["targeted"], points["random-1"]
    assert math.isclose(full.forgetting[0], 0.6)
    assert math.isclose(targeted.forgetting[0], 0.1)
    assert math.isclose(targeted.val_gap[0], 0.5) and math.isclose(full.target_gain[0], 0.9)
    assert math.isclose(targeted.forgetting_vs_full[0], -0.5)
    assert full.expected_s_pre == 0.4 and targeted.expected_s == 0.5
    assert rand.is_random and not targeted.is_random and full.is_baseline
    # targeted saves more time than random-1 with a smaller gap: random-1 is off the time front
    assert targeted.front_time and not rand.front_time and full.front_time
    # learning-forgetting: full learns most, targeted forgets least, random-1 is dominated by targeted
    assert full.front_forget and targeted.front_forget and not rand.front_forget


def test_a_log_without_the_new_fields_reads_as_nan():
    points = frontier_points(RunState().apply_all(_events(with_measures=False)))
    assert all(math.isnan(p.forgetting[0]) and math.isnan(p.expected_s) for p in points)
    assert all(not p.front_forget for p in points)


def test_report_and_export_carry_the_frontier_columns_only_when_measured():
    from engine.log.tables import SUMMARY_COLUMNS, summary_rows
    from freeze_tui.draw.report import markdown_report
    from tests.synthetic_log import synthetic_events

    arms = ("full", "targeted", "random-1")
    state = RunState().apply_all(synthetic_events(steps=40, arms=arms, retain=True))
    text = markdown_report(state)
    assert "## What each arm learned, forgot, and where it stands" in text
    section = text.split("## What each arm learned")[1]
    row = next(line for line in section.splitlines() if line.startswith("| targeted |"))
    forgetting = {p.arm: p for p in frontier_points(state)}["targeted"].forgetting[0]
    assert f"{forgetting:+.3f}" in row
    table = dict(zip(SUMMARY_COLUMNS, summary_rows(state)[1]))
    assert table["forgetting"] == forgetting and table["forgetting_lo"] < forgetting < table["forgetting_hi"]
    assert isinstance(table["pareto_time"], bool)
    old = RunState().apply_all(synthetic_events(steps=40, arms=arms))
    assert "What each arm learned" not in markdown_report(old)
    assert dict(zip(SUMMARY_COLUMNS, summary_rows(old)[1]))["forgetting"] is None


def test_drawing_fits_80_columns_and_shows_every_arm():
    from rich.console import Console

    from freeze_tui.app.widgets.frontier_view import frontier_renderable
    from freeze_tui.draw.frontier_draw import CLOUD, panels
    from tests.synthetic_log import synthetic_events

    arms = ("full", "targeted", "reverse", "random-1", "random-2")
    state = RunState().apply_all(synthetic_events(steps=60, arms=arms, retain=True))
    points = frontier_points(state)
    lines = panels(points, 78, 9)
    assert len(lines) == 1 + 9  # title row, 8 plot rows and the x axis, the two planes side by side
    assert all(line.cell_len <= 78 for line in lines)
    plot = "\n".join(line.plain for line in lines)
    assert plot.count("1") >= 2 and "2" in plot and "3" in plot  # each arm in both planes (full at 0 gap)
    left, right = ("".join(line.plain[a:b] for line in lines) for a, b in ((0, 39), (39, 78)))
    assert CLOUD in left and CLOUD in right  # the random controls in both planes (they may share a cell)
    console = Console(width=80, color_system=None, record=True)
    console.print(frontier_renderable(state, 78))
    text = console.export_text()
    assert "random-2" in text and "★" in text and "waiting" not in text
    stacked = panels(points, 50, 9)  # too narrow for two plots side by side: one above the other
    assert all(line.cell_len <= 50 for line in stacked)
    assert stacked[0].plain.startswith("val gap") and any(line.plain.startswith("forgetting") for line in stacked)


def test_drawing_waits_for_the_first_validation():
    from freeze_tui.draw.frontier_draw import panels
    from tests.synthetic_log import synthetic_events

    events = [e for e in synthetic_events(steps=20, retain=True) if e.kind not in ("epoch_end", "run_end")]
    text = "\n".join(line.plain for line in panels(frontier_points(RunState().apply_all(events)), 160, 9))
    assert "waiting for the first validation" in text and "no forgetting measured yet" in text
