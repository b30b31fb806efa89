"""Merged runs get short, distinct, stable names; the Run view says which is which and what differs."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.log.merge import merge_events, run_names
from engine.log.runlog import read_events
from engine.log.short_names import WIDTH, letters, settings_diff, short_names
from engine.log.state import RunState
from freeze_tui.draw.merged_runs import fit_arm, merged_tables

SAMPLE_RUNS = sorted((Path(__file__).resolve().parents[2] / "sample_runs").glob("*.jsonl"))
words = st.text(alphabet="abcxyz01", min_size=1, max_size=6)
run_name = st.lists(words, min_size=1, max_size=6).map("-".join)


def test_the_sample_runs_get_the_word_that_tells_them_apart():
    names = ["demo-full-targeted-lora", "demo-full-targeted-reverse", "demo-full-vs-targeted", "demo-study"]
    assert short_names(names) == ["lora", "reverse", "vs", "study"]
    assert short_names(["runA", "runB"]) == ["runA", "runB"]  # short already: kept
    assert short_names(["20261130-022900-demo", "20261130-023134-demo"]) == ["022900", "023134"]


def test_a_name_inside_another_gives_letters():
    assert short_names(["long-name-of-a-run", "long-name-of-a-run-again"]) == ["A", "B"]
    assert letters(28)[:2] == ["A", "B"] and letters(28)[-3:] == ["Z", "AA", "AB"]


@settings(max_examples=200, deadline=None)
@given(st.lists(run_name, min_size=2, max_size=8, unique=True))
def test_distinct_run_names_give_distinct_short_ones(names):
    short = short_names(names)
    assert len(short) == len(names) and len(set(short)) == len(short)
    assert all(0 < len(s) <= WIDTH or s.isupper() for s in short)
    if short != letters(len(names)):  # words, not letters: the same whatever the order of the runs
        shuffled = random.Random(0).sample(range(len(names)), len(names))
        again = short_names([names[i] for i in shuffled])
        assert again == [short[i] for i in shuffled]


@given(st.text(min_size=1, max_size=30), st.integers(min_value=1, max_value=30))
def test_fit_arm_fits_and_keeps_the_arm_while_it_can(name, width):
    fitted = fit_arm(name, width)
    assert len(fitted) <= width
    arm = name.rpartition("/")[2]
    if len(name) <= width:
        assert fitted == name
    elif "/" in name and len(arm) + 3 <= width:
        assert fitted.endswith("/" + arm)
    elif "/" in name and width >= 4:
        assert fitted.startswith(name.rpartition("/")[0][:1] + "/")


def test_fit_arm_cuts_the_run_first():
    assert fit_arm("demo-full-targeted/lora", 12) == "demo-f…/lora"
    assert fit_arm("study/random-1", 10) == "s/random-1"
    assert fit_arm("lora/targeted", 9) == "l/targ…ed"
    assert fit_arm("random-1", 7) == "rand…-1" and fit_arm("random-2", 7) == "rand…-2"
    assert fit_arm("lora/full", 7) == "l…/full"


def test_settings_diff_names_what_differs():
    configs = [{"lr": 1e-3, "seed": 0, "log": "a"}, {"lr": 1e-3, "seed": 1, "log": "b"}, {"lr": 1e-3, "seed": 0}]
    assert settings_diff(configs, frozenset({"log"})) == {"seed": [0, 1, 0]}
    assert settings_diff([{"seeds": 1}, {}]) == {}  # only one run says: nothing to compare


def test_merged_sample_runs_name_arms_short_and_list_what_differs():
    names = run_names([str(p) for p in SAMPLE_RUNS])
    state = RunState().apply_all(merge_events([read_events(p) for p in SAMPLE_RUNS], names))
    assert {"lora/lora", "reverse/reverse", "vs/suggested", "study/random-1"} <= set(state.arms)
    runs = state.config["runs"]
    assert [r["short"] for r in runs] == ["lora", "reverse", "vs", "study"]
    assert [r["settings"]["max_steps"] for r in runs] == [0, 0, 0, 60]
    assert "log" not in runs[0]["settings"] and "lr" not in runs[0]["settings"]
    legend, diff = merged_tables(state)
    assert legend.row_count == 4 and diff.row_count == len(runs[0]["settings"])
