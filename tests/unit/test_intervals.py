"""Intervals with known answers: the block bootstrap of r, clipped p, paired Δp and val loss,
loss summaries of short runs, and replicates folded across seeds."""

from __future__ import annotations

import math
import random

import pytest

from engine.log import events as ev
from engine.log.state import RunState
from engine.log.summary import LOSS_TENTH, arm_rows, summarize
from engine.stats import clipped, inside, paired_ci95, saving_ci95, step_saving_median
from freeze_tui.report import markdown_report


def test_bootstrap_interval_of_r_has_the_known_spread():
    # full steps 1 + N(0, 0.2^2), the arm a constant 0.7 s: r = 1 - 0.7 / mean(full), and by the
    # delta method sd(r) = 0.7 * 0.2 / sqrt(n) (mean 1); the 95 % interval is about ±1.96 sd
    rng = random.Random(1)
    n = 900
    full = [1 + rng.gauss(0, 0.2) for _ in range(n)]
    arm = [0.7] * n
    r, lo, hi = saving_ci95(full, arm)
    assert r == pytest.approx(1 - 0.7 * n / sum(full))
    expected_half = 1.96 * 0.7 * 0.2 / math.sqrt(n)
    assert (hi - lo) / 2 == pytest.approx(expected_half, rel=0.25)
    assert lo < r < hi and lo < 0.3 < hi


def test_bootstrap_of_identical_arms_is_a_point_and_robust_median_ignores_a_burst():
    assert saving_ci95([1.0] * 50, [1.0] * 50) == (0.0, 0.0, 0.0)
    full, arm = [1.0] * 99 + [50.0], [0.6] * 99 + [1.0]  # one burst while the baseline ran
    assert step_saving_median(full, arm) == pytest.approx(0.4)
    assert saving_ci95(full, arm)[0] == pytest.approx(1 - 60.4 / 149)  # the ratio of sums: 0.59, dragged


def test_shares_are_clipped_and_pairs_shrink_the_interval():
    assert clipped((0.9, 0.7, 1.1)) == (0.9, 0.7, 1.0)
    pre, post = [0.2, 0.5, 0.8, 0.4], [0.3, 0.6, 0.9, 0.5]  # every pair moves by exactly +0.1
    mean, lo, hi = paired_ci95(pre, post)
    assert mean == pytest.approx(0.1) and lo == pytest.approx(0.1) and hi == pytest.approx(0.1)
    assert inside(0.1, (0.0, 0.2)) and not inside(0.3, (0.0, 0.2)) and inside(math.nan, (0, 1)) is None


def _start(seq=1, n_val=3):
    return ev.RunStart(
        seq=seq,
        config={"epochs": 1, "max_steps": 20},
        data={"common_base_rate": 0.57},
        common_tokens=[[1, "a"], [2, "b"]],
        arms=[{"name": "full", "r_pred": 0.0}, {"name": "t", "r_pred": 0.3}],
    )


def _replicate(seq: int, shift: float, seed: int) -> list:
    """One paired run of 20 steps: t is 0.7 s vs 1 s per step; samples 0..3 pre and post."""
    out = []
    for step in range(20):
        loss = 4.0 - 0.1 * step
        out.append(
            ev.Step(
                seq=seq,
                step=step,
                arms={
                    "full": ev.ArmStep(loss=loss, dt=1.0, lr=0.1),
                    "t": ev.ArmStep(loss=loss + shift, dt=0.7, lr=0.1),
                },
            )
        )
        seq += 1
    val = {"full": [2.0, 2.2, 2.4], "t": [2.1 + shift, 2.3 + shift, 2.5 + shift]}
    arms = {a: ev.ArmEpoch(loss_mean=3.0, loss_var=0.3, val_loss=sum(v) / 3, val_batches=v) for a, v in val.items()}
    out.append(ev.EpochEnd(seq=seq, epoch=0, arms=arms))
    for i, (pre, post) in enumerate([(0.2, 0.5), (0.4, 0.5), (0.5, 1.0), (0.3, 0.6)]):
        out.append(ev.Sample(seq=seq + 1, phase="pre", arm="*", p=pre, index=i, ids=[1, 3]))
        out.append(ev.Sample(seq=seq + 1, phase="epoch", arm="t", p=post + shift, index=i, epoch=0, ids=[1, 2]))
    return out


def test_one_epoch_rows_use_tenths_pairs_and_the_base_rate():
    state = RunState().apply_all([ev.Header(), _start(), *_replicate(2, 0.0, 0)])
    row = {r.arm: r for r in arm_rows(state)}["t"]
    assert row.loss_basis == LOSS_TENTH
    assert row.loss_first == pytest.approx(3.95) and row.loss_last == pytest.approx(2.15)  # 2 steps each
    assert row.val_diff == pytest.approx(0.1) and row.val_diff_ci == pytest.approx([0.1, 0.1])
    assert row.r == pytest.approx(0.3) and row.r_ci == pytest.approx([0.3, 0.3])
    assert row.r_pred_inside is True
    assert row.delta_p == pytest.approx(0.3) and row.delta_p_ci[0] <= 0.3 <= row.delta_p_ci[1]
    assert row.common_base_rate == 0.57 and row.p_post_ci[1] <= 1.0
    text = markdown_report(state)
    assert "57.0 %" in text and "first/last 10 % of steps" in text and "inside r's interval" in text


def test_replicates_fold_into_intervals_across_seeds():
    events = [ev.Header(), _start()]
    seq = 2
    for k, shift in enumerate([0.0, 0.1, 0.2]):
        events.append(ev.Replicate(seq=seq, replicate=k, of=3, seed=k))
        events += _replicate(seq + 1, shift, k)
        seq += 100
    state = RunState().apply_all(events)
    assert state.replicate == 2 and state.replicates == 3 and len(state.past) == 2
    assert len(state.steps) == 20 and len(state.past[0].steps) == 20  # each replicate's own series
    summary = summarize(state)
    t = summary["arms"]["t"]
    assert summary["replicates"] == 3 and t["replicates"] == 3
    assert t["val_diff"] == pytest.approx(0.2)  # mean of 0.1, 0.2, 0.3
    lo, hi = t["val_diff_ci"]
    half = 4.303 * 0.1 / math.sqrt(3)  # t(2) * sd / sqrt(n)
    assert lo == pytest.approx(0.2 - half) and hi == pytest.approx(0.2 + half)
    assert t["r_ci"] == pytest.approx([0.3, 0.3]) and "across 3 seeds" in t["ci_basis"]
    assert "across 3 seeds" in markdown_report(state)


def test_views_show_the_interval_the_verdict_and_the_base_rate():
    from rich.console import Console

    from freeze_tui.widgets.samples_view import samples_text
    from freeze_tui.widgets.time_view import time_table

    state = RunState().apply_all([ev.Header(), _start(), *_replicate(2, 0.0, 0)])
    console = Console(width=160, record=True)
    console.print(time_table(state, intervals={"t": state.saving_ci("t")[1:]}))
    assert "[30.0 %, 30.0 %] prediction inside" in console.export_text()
    text = samples_text(state).plain
    assert "base rate (the validation text's own share): 57.0 %" in text and "(paired)" in text
