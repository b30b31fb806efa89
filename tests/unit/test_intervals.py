"""Intervals with known answers: the block bootstrap of r, clipped p, paired Δp and val loss,
loss summaries of short runs, and replicates folded across seeds."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from engine.core.stats import (
    NO_VARIATION,
    TOO_FEW_STEPS,
    clipped,
    clustered_mean_ci95,
    equivalence,
    holm,
    inside,
    paired_ci95,
    saving_estimate,
    t95,
    weighted_paired_ci95,
)
from engine.log import events as ev
from engine.log.state import RunState
from engine.log.summary import LOSS_TENTH, arm_rows, summarize
from freeze_tui.draw.report import markdown_report


def test_bootstrap_interval_of_r_has_the_known_spread():
    # full steps 1 + N(0, 0.2^2), the arm a constant 0.7 s: r = 1 - 0.7 / mean(full), and by the
    # delta method sd(r) = 0.7 * 0.2 / sqrt(n) (mean 1); the 95 % interval is about ±1.96 sd
    rng = random.Random(1)
    n = 900
    full = [1 + rng.gauss(0, 0.2) for _ in range(n)]
    arm = [0.7] * n
    est = saving_estimate(full, arm, with_median=False)
    r, lo, hi = est.r, est.lo, est.hi
    assert r == pytest.approx(1 - 0.7 * (n - 2) / sum(full[2:]))  # the first 2 steps are warm-up
    expected_half = 1.96 * 0.7 * 0.2 / math.sqrt(n)
    assert (hi - lo) / 2 == pytest.approx(expected_half, rel=0.25)
    assert lo < r < hi and lo < 0.3 < hi


def test_no_zero_width_interval_and_robust_median_ignores_a_burst():
    flat = saving_estimate([1.0] * 500, [1.0] * 500, with_median=False)
    r, lo, hi = flat.r, flat.lo, flat.hi
    assert r == 0.0 and math.isnan(lo) and math.isnan(hi)  # steps that never vary: no interval, not [0, 0]
    assert saving_estimate([1.0] * 500, [1.0] * 500).note == NO_VARIATION
    one = saving_estimate([3.5, 1.0, 1.0], [3.4, 0.6, 0.6], warmup=0)  # a 1- to 3-step run
    assert one.note == TOO_FEW_STEPS and math.isnan(one.lo) and saving_estimate([1.0], [0.5]).note == TOO_FEW_STEPS
    full, arm = [1.0] * 99 + [50.0], [0.6] * 99 + [1.0]  # one burst while the baseline ran
    assert saving_estimate(full, arm).median == pytest.approx(0.4)
    assert saving_estimate(full, arm).r == pytest.approx(1 - 59.2 / 147)  # the ratio of sums: 0.60, dragged


def test_median_and_ratio_of_sums_disagree_when_a_burst_drags_one():
    rng = np.random.default_rng(3)
    full = 1 + 0.05 * rng.standard_normal(400)
    arm = 0.6 * full
    full[rng.random(400) < 0.1] *= 4  # bursts while the baseline ran: the ratio of sums moves, the median not
    est = saving_estimate(full, arm)
    assert est.median == pytest.approx(0.4) and est.r > 0.5
    assert est.disagree and not math.isnan(est.median_lo)


def test_exact_t_quantiles_and_token_weighted_val_differences():
    assert t95(1) == pytest.approx(12.7062, abs=1e-4) and t95(40) == pytest.approx(2.0211, abs=1e-4)
    assert t95(1000) > 1.96  # no switch to the normal quantile above 30 df
    # a 2-block last batch weighs a quarter of an 8-block one
    mean, _, _ = weighted_paired_ci95([1.0, 1.0, 1.0], [1.1, 1.1, 1.5], [8, 8, 2])
    assert mean == pytest.approx((0.1 * 16 + 0.5 * 2) / 18)


def test_p_is_clustered_by_prompt_and_equivalence_has_three_verdicts():
    assert math.isnan(clustered_mean_ci95([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1])[1])  # 2 prompts: no interval
    values = [0.1, 0.1, 0.9, 0.9, 0.5, 0.5, 0.2, 0.2, 0.8, 0.8]
    mean, lo, hi = clustered_mean_ci95(values, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    prompts = [0.1, 0.9, 0.5, 0.2, 0.8]  # 5 prompt means: the interval is a t(4) interval over them
    assert mean == pytest.approx(0.5) and (hi - lo) / 2 == pytest.approx(t95(4) * np.std(prompts, ddof=1) / 5**0.5)
    assert equivalence((0.40, 0.44), 0.42) == "agrees" and equivalence((0.30, 0.33), 0.42) == "differs"
    assert equivalence((0.35, 0.44), 0.42) == "undecided" and equivalence((math.nan, math.nan), 0.42) is None
    assert holm([0.01, 0.04, math.nan]) == pytest.approx([0.02, 0.04, math.nan], nan_ok=True)


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
        arms=[ev.ArmRecord(name="full", r_pred=0.0), ev.ArmRecord(name="t", r_pred=0.3)],
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
    assert row.r == pytest.approx(0.3) and all(math.isnan(v) for v in row.r_ci)  # 18 steps: too few
    assert row.r_note == TOO_FEW_STEPS and row.r_pred_verdict is None
    assert row.delta_p == pytest.approx(0.3)
    assert all(math.isnan(v) for v in [*row.delta_p_ci, *row.p_post_ci])  # 4 samples of 1 prompt: no interval
    assert row.common_base_rate == 0.57
    text = markdown_report(state)
    assert "57.0 %" in text and "first/last 10 % of steps" in text and "(too few steps for an interval)" in text
    assert "first 2 (warm-up)" in text and "measured in this session" in text


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
    half = 4.302653 * 0.1 / math.sqrt(3)  # t(2) * sd / sqrt(n)
    assert lo == pytest.approx(0.2 - half) and hi == pytest.approx(0.2 + half)
    assert t["r_ci"] == pytest.approx([0.3, 0.3]) and "across 3 seeds" in t["ci_basis"]
    assert "across 3 seeds" in markdown_report(state)


def test_views_show_the_interval_the_verdict_and_the_base_rate():
    from rich.console import Console

    from freeze_tui.app.widgets.samples_view import samples_text
    from freeze_tui.app.widgets.time_view import time_table

    state = RunState().apply_all([ev.Header(), _start(), *_replicate(2, 0.0, 0)])
    console = Console(width=160, record=True)
    console.print(time_table(state, intervals={"t": (0.25, 0.35)}))
    assert "[25.0 %, 35.0 %] prediction agrees ±5 pts" in console.export_text()
    text = samples_text(state).plain
    assert "base rate (the validation text's own share): 57.0 %" in text
    assert "Δp = +30.0 pts\n" in text  # 4 samples of one prompt: no interval over prompts


def test_holm_is_statsmodels_holm_to_the_bit(monkeypatch):
    import gc

    from statsmodels.stats.multitest import multipletests

    monkeypatch.setattr(gc, "collect", lambda *_: 0)  # statsmodels' Holm collects garbage on every call
    rng = random.Random(3)
    for n in range(1, 13):
        for _ in range(40):
            family = [rng.choice([rng.random(), rng.random() ** 8, 0.0, 1.0, 0.02]) for _ in range(n)]
            assert holm(family) == [float(p) for p in multipletests(family, method="holm")[1]], family
    assert holm([math.nan, math.nan]) == pytest.approx([math.nan, math.nan], nan_ok=True) and holm([]) == []
