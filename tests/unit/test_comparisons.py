"""Comparisons within a run only: merged logs time each run's arms against that run's own baseline,
`report --pair`, the session an r was measured in, and the load warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.errors import FreezeTuiError
from engine.log.comparisons import NOT_PAIRED, baseline_of, pair_row
from engine.log.short_names import short_names
from engine.log.summary import arm_rows
from engine.run.config import RunConfig
from engine.run.session_info import cpu_threads, overloaded, session_readings
from freeze_tui.cli.logs import state_of
from freeze_tui.draw.report import markdown_report

RUNS = ("demo-full-targeted-lora", "demo-full-targeted-reverse", "demo-full-vs-targeted")  # the last: 3 arms
SAMPLES = [str(Path(__file__).parents[2] / "sample_runs" / f"{name}.jsonl") for name in RUNS]


def test_merged_sample_runs_time_each_run_against_its_own_full():
    state = state_of(SAMPLES)
    rows = {row.arm: row for row in arm_rows(state)}
    for name, row in rows.items():
        run = name.split("/")[0]
        assert row.baseline == f"{run}/full" and baseline_of(state, name) == f"{run}/full"
    alone = {row.arm: row for row in arm_rows(state_of(SAMPLES[:1]))}
    for name in alone:  # every r is the one its own log gives alone: nothing is timed across runs
        assert rows[f"{short_names([Path(p).stem for p in SAMPLES])[0]}/{name}"].r == pytest.approx(
            alone[name].r, nan_ok=True
        )
    text = markdown_report(state)
    assert "times of different runs are never paired" in text and "arms take turns" not in text


def test_an_arm_alone_in_its_run_is_not_timed_against_another_run(tmp_path):
    only_full = tmp_path / "only.jsonl"
    lines = Path(SAMPLES[0]).read_text().splitlines()
    only_full.write_text("\n".join(_without_arms(lines, keep="full")) + "\n")
    state = state_of([SAMPLES[1], f"solo={only_full}"])
    row = {r.arm: r for r in arm_rows(state)}["solo/full"]
    assert row.r_note == NOT_PAIRED and row.baseline == "solo/full"
    assert NOT_PAIRED in markdown_report(state)


def _without_arms(lines: list[str], keep: str) -> list[str]:
    """A copy of a log with one arm only, as a Recorder log of one loop would be."""
    import json

    out = []
    for line in lines:
        event = json.loads(line)
        if event["kind"] == "run_start":
            event["arms"] = [a for a in event["arms"] if a["name"] == keep]
        for key in ("arms", "drift", "rel"):
            if isinstance(event.get(key), dict):
                event[key] = {k: v for k, v in event[key].items() if k == keep}
        if event["kind"] == "run_end":
            event["summary"]["arms"] = {k: v for k, v in event["summary"]["arms"].items() if k == keep}
        if event["kind"] == "sample" and event["arm"] not in ("*", keep):
            continue
        out.append(json.dumps(event))
    return out


def test_pair_compares_two_arms_of_one_run_and_refuses_arms_of_two():
    state = state_of(SAMPLES[-1:])  # full, targeted, suggested
    row = pair_row(state, "targeted", "suggested")
    assert row.arms == ["targeted", "suggested"] and row.r < 0  # suggested is slower than targeted
    lo, hi = row.val_diff_ci
    assert lo <= row.val_diff <= hi < 0  # suggested ends lower on the same validation batches
    with pytest.raises(FreezeTuiError, match="no arm"):
        pair_row(state, "targeted", "nope")
    merged = state_of(SAMPLES)
    short = short_names([Path(p).stem for p in SAMPLES])
    first, second = (f"{name}/full" for name in short[:2])
    with pytest.raises(FreezeTuiError, match="separate runs"):
        pair_row(merged, first, second)


def test_session_readings_and_the_load_warning():
    readings = session_readings()
    assert readings["cpu_count"] >= 1 and len(readings["load_avg"]) == 3
    assert overloaded({"cpu_count": 2, "load_avg": [1.5, 1, 1]}) == ""
    assert "exceeds the 2 cores" in overloaded({"cpu_count": 2, "load_avg": [3.5, 1, 1]})
    assert overloaded({}) == ""


@pytest.mark.parametrize(
    ("pair", "message"),
    [("targeted", "give two arms as A,B"), ("targeted,nope", "no arm 'nope'"), ("full,full", "two different arms")],
)
def test_report_pair_refuses_bad_input_in_one_line(pair, message, capsys):
    from freeze_tui.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(["report", "--pair", pair, SAMPLES[-1]])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_report_json_is_plain_json_with_null_intervals(capsys):
    import json

    from freeze_tui.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(["report", "--format", "json", SAMPLES[-1]])
    data = json.loads(capsys.readouterr().out)
    assert exit_.value.code == 0 and data["warmup_steps_left_out_of_r"] == 2
    targeted = data["arms"]["targeted"]
    lo, hi = targeted["r_ci"]
    assert lo < targeted["r"] < hi and targeted["delta_p_ci"] == [None, None]  # 2 prompts: no interval


@pytest.mark.parametrize("margin, verdict", [(None, "undecided"), ("7", "agrees"), ("2", "differs")])
def test_the_equivalence_margin_is_stated_and_can_be_reread(margin, verdict, capsys):
    """targeted: r 37.8 % [36.3, 39.0] against a FLOP model's 42.4 %: within ±7 points, not within ±5, and
    wholly outside ±2."""
    import json

    from freeze_tui.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(["report", "--format", "json", *(["--margin", margin] if margin else []), SAMPLES[-1]])
    targeted = json.loads(capsys.readouterr().out)["arms"]["targeted"]
    assert exit_.value.code == 0 and targeted["r_pred_verdict"] == verdict
    assert targeted["r_pred_margin"] == pytest.approx(float(margin or 5) / 100)


def test_a_margin_outside_0_100_is_one_line(capsys):
    from freeze_tui.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(["report", "--margin", "0", SAMPLES[-1]])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--margin" in err and len(err.strip().splitlines()) == 1
    assert RunConfig().equivalence_margin == 5.0


def test_cpu_threads_leave_busy_cores_alone(monkeypatch):
    import os

    assert cpu_threads(3) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert cpu_threads() == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(os, "getloadavg", lambda: (40.0, 40.0, 40.0))
    assert cpu_threads() == 1  # every core busy: one thread, not a crowd waiting on each other
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert cpu_threads() >= 1


def test_report_rows_frontier_and_time_view_read_one_r_estimate(monkeypatch):
    """r and its bootstrap interval come from comparisons.r_estimate for all three: the same numbers."""
    import math

    from engine.core import stats
    from engine.log import comparisons
    from engine.log.frontier import frontier_points

    state = state_of(SAMPLES[2:])
    comparisons._estimate.cache_clear()
    calls = []
    real = stats.saving_estimate
    monkeypatch.setattr(comparisons, "saving_estimate", lambda *a, **k: calls.append(1) or real(*a, **k))
    rows = {row.arm: row for row in arm_rows(state)}
    points = {p.arm: p for p in frontier_points(state)}
    others = [name for name in state.arms if name != "full"]
    assert others and len(calls) == len(others)  # report rows and the frontier: one bootstrap per arm
    for name in others:
        est = comparisons.r_estimate(state, "full", name)
        assert math.isfinite(est.lo) and math.isfinite(est.hi)
        assert points[name].r == (est.r, est.lo, est.hi)
        assert list(rows[name].r_ci) == [est.lo, est.hi] and rows[name].r == pytest.approx(est.r)
        assert comparisons.live_interval(state, name) == (est.lo, est.hi)  # the Time view's
