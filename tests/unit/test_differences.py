"""The paired difference L_arm − L_base: smoothing, its running block-bootstrap band, the band across
seeds and the validation gaps, each checked against a computation by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.core.stats import t95
from engine.log import differences as d
from engine.log import events as ev
from engine.log.state import RunState
from freeze_tui.draw import difference as draw


def test_debiased_ema_weights_and_their_squares_by_hand():
    smoothed, factor = d.debiased_ema(np.array([1.0, 3.0, math.nan, 5.0]), 0.5)
    # step 1: weights 0.25 and 0.5 normalised to 1/3, 2/3; step 3 (step 2 unknown): w³, w², w⁰ → 1/11, 2/11, 8/11
    assert smoothed[:2] == pytest.approx([1.0, 7 / 3]) and math.isnan(smoothed[2])
    assert smoothed[3] == pytest.approx((1 + 2 * 3 + 8 * 5) / 11)
    assert factor[0] == pytest.approx(1.0) and factor[1] == pytest.approx(5 / 9)
    assert factor[3] == pytest.approx((1 + 4 + 64) / 121)


def test_running_long_run_variance_by_hand(monkeypatch):
    monkeypatch.setattr(d, "MIN_BLOCKS", 1)
    # blocks of 1: second differences x_t − 2 x_{t−1} + x_{t−2} = −2, 2, −2; each squared over 6
    variance = d.running_long_run_variance(np.array([0.0, 1.0, 0.0, 1.0, 0.0]), 1)
    assert np.isnan(variance[:2]).all() and variance[2:] == pytest.approx([4 / 6] * 3)
    trend = d.running_long_run_variance(0.5 * np.arange(40.0) + 3, 4)  # a straight line: no noise at all
    assert np.nanmax(np.abs(trend)) == pytest.approx(0.0, abs=1e-9) and np.isnan(trend[:11]).all()
    monkeypatch.setattr(d, "MIN_BLOCKS", 30)
    assert np.isnan(d.running_long_run_variance(np.arange(59.0), 2)).all()  # 30 blocks of 2 need 60 steps


def test_seed_curve_is_a_t_interval_over_seeds():
    mean, lo, hi, seeds = d.seed_curve([np.array([0.0, 2.0, 7.0]), np.array([2.0, 4.0])])
    half = t95(1) * math.sqrt(2) / math.sqrt(2)
    assert seeds == 2 and list(mean) == [1.0, 3.0, 7.0]
    assert lo[:2] == pytest.approx([1 - half, 3 - half]) and hi[:2] == pytest.approx([1 + half, 3 + half])
    assert math.isnan(lo[2]) and math.isnan(hi[2])  # one seed reached step 2: its value, no interval


def _run(steps: int = 80, epochs: int = 2, seeds: int = 1, noise: float = 0.0) -> RunState:
    events: list = [ev.Header(), ev.RunStart(arms=[ev.ArmRecord(name="full"), ev.ArmRecord(name="targeted")])]
    rng = np.random.default_rng(0)
    per_epoch = steps // epochs
    for seed in range(seeds):
        if seeds > 1:
            events.append(ev.Replicate(replicate=seed, of=seeds, seed=seed))
        for step in range(steps):
            full = 3.0 - step / steps + 0.1 * rng.standard_normal()
            arms = {
                "full": ev.ArmStep(loss=full, dt=1.0),
                "targeted": ev.ArmStep(loss=full + 0.5 + seed + noise * rng.standard_normal(), dt=0.5),
            }
            events.append(ev.Step(step=step, epoch=step // per_epoch, arms=arms))
            if (step + 1) % per_epoch == 0:
                recs = {
                    "full": ev.ArmEpoch(val_loss=2.0, val_batches=[1.0, 2.0, 3.0]),
                    "targeted": ev.ArmEpoch(
                        val_loss=2.367 + 0.2 * seed, val_batches=[1.5 + 0.2 * seed, 2.5 + 0.2 * seed, 3.1 + 0.2 * seed]
                    ),
                }
                events.append(ev.EpochEnd(epoch=step // per_epoch, arms=recs))
    return RunState().apply_all([*events, ev.RunEnd(status="finished")])


def test_validation_gaps_are_paired_by_batch_by_hand():
    state = _run()
    gaps = d.validation_gaps(state, "targeted", "full")
    # differences 0.5, 0.5, 0.1: mean 0.3667, sd/√3 = 0.1333, t(2) = 4.303
    assert [g.epoch for g in gaps] == [0, 1] and [g.step for g in gaps] == [39, 79]
    assert gaps[0].gap == pytest.approx(1.1 / 3)
    assert gaps[0].hi - gaps[0].gap == pytest.approx(t95(2) * 0.4 / 3)
    assert gaps[0].val_loss == 2.367 and gaps[0].base_loss == 2.0


def test_with_seeds_the_validation_gap_is_a_t_interval_over_seeds():
    state = _run(steps=40, seeds=2)
    gaps = d.validation_gaps(state, "targeted", "full")
    # seed 0: gap 1.1 / 3; seed 1: every batch 0.2 higher, gap 1.1 / 3 + 0.2; sd 0.2 / √2, t(1) = 12.71
    assert [g.seeds for g in gaps] == [2, 2] and gaps[0].gap == pytest.approx(1.1 / 3 + 0.1)
    assert gaps[0].hi - gaps[0].gap == pytest.approx(t95(1) * (0.2 / math.sqrt(2)) / math.sqrt(2))
    assert gaps[0].val_loss == pytest.approx(2.467) and "(2 seeds)" in draw.validation_table(state).plain


def test_a_single_run_gets_a_block_band_around_the_smoothed_difference():
    (curve,) = d.difference_curves(_run(steps=2000, noise=0.2), 0.9)
    assert curve.band == d.BLOCKS and (curve.arm, curve.base) == ("targeted", "full")
    assert np.isnan(curve.lo[:29]).all()  # fewer than 30 blocks: no band yet
    # independent noise of sd 0.2 under an EMA of weight 0.9: sd of the smoothed value 0.2 √(0.1 / 1.9)
    assert (curve.hi[-1] - curve.lo[-1]) / 2 == pytest.approx(1.96 * 0.2 * math.sqrt(0.1 / 1.9), rel=0.2)
    covered = (curve.lo[100:] <= 0.5) & (curve.hi[100:] >= 0.5)
    assert 0.85 < covered.mean() <= 1.0  # the true difference 0.5 lies in the band about 95 % of the steps


def test_seeds_give_the_band_across_replicates():
    (curve,) = d.difference_curves(_run(steps=40, seeds=2), 0.0)
    half = t95(1) * math.sqrt(0.5) / math.sqrt(2)  # seed 0: 0.5, seed 1: 1.5 at every step
    assert curve.band == d.SEEDS and curve.seeds == 2
    assert curve.smoothed == pytest.approx(np.full(40, 1.0)) and curve.hi == pytest.approx(np.full(40, 1.0 + half))


def test_drawn_title_table_and_gap_markers():
    state = _run()
    assert draw.title(state) == "targeted − full"
    table = draw.validation_table(state).plain
    assert "ep1 2.367 +0.367 ±0.574" in table and "ep2 2.000 (baseline)" in table
    points = draw.gap_points(state)
    assert [(name, x) for name, x, _ in points] == [("targeted", 39.0), ("targeted", 79.0)]
    bands, lines, _ = draw.difference_series(state)
    assert len(bands) == 2 and lines[0].label == "targeted" and len(lines[0].xs) == 80


def test_validation_markers_sit_where_each_epoch_ended():
    points = {s.label: (s.xs, s.ys) for s in draw.validation_series(_run())}
    assert points == {"full": ([39.0, 79.0], [2.0, 2.0]), "targeted": ([39.0, 79.0], [2.367, 2.367])}


def _sampled(stopped_early: bool) -> RunState:
    events: list = [
        ev.Header(),
        ev.RunStart(config={"samples": 2}, arms=[ev.ArmRecord(name="full"), ev.ArmRecord(name="targeted")]),
    ]
    for index in range(4):  # 2 prompts × 2 seeds, before training
        prompt = {"prompt": f"p{index // 2}", "index": index, "prompt_index": index // 2}
        events.append(ev.Sample(phase="pre", arm="*", text="x", **prompt))
    if not stopped_early:
        for arm in ("full", "targeted"):
            for index in range(4):
                tokens = [[f"{arm}-{index}", True], [" tail", False]]
                prompt = {"prompt": f"p{index // 2}", "index": index, "prompt_index": index // 2}
                events.append(ev.Sample(phase="epoch", epoch=0, arm=arm, tokens=tokens, p=0.5, **prompt))
    return RunState().apply_all([*events, ev.RunEnd(status="stopped")])


def test_side_by_side_pairs_one_prompt_and_seed_across_arms():
    from rich.console import Console

    from freeze_tui.app.widgets.samples_side import prompt_and_seed, sample_indices, side_by_side

    state = _sampled(stopped_early=False)
    assert sample_indices(state) == [0, 1, 2, 3] and prompt_and_seed(state, 3) == (2, 2)

    def lines(width: int) -> list[str]:
        console = Console(width=width, record=True)
        console.print(side_by_side(state, 3, width))
        return console.export_text().splitlines()

    wide = lines(120)
    assert "sample 4 of 4: prompt 2, seed 2" in wide[0] and not any("full-2" in line for line in wide)
    assert any("full-3" in line and "targeted-3" in line for line in wide)  # columns: one row holds both
    narrow = lines(60)  # under 3 × 30 columns: stacked, each arm's text on its own lines
    assert not any("full-3" in line and "targeted-3" in line for line in narrow)
    assert any("targeted-3" in line for line in narrow) and any("after epoch 1, p 50 %" in line for line in narrow)


def test_a_stopped_run_says_why_it_has_no_samples():
    from freeze_tui.app.widgets.samples_view import samples_text

    text = samples_text(_sampled(stopped_early=True)).plain
    assert "no samples: the run stopped before the first epoch's end, when samples are taken" in text
    assert "no samples yet" not in text and "p0" in text  # what was taken (before training) is shown
    from rich.console import Console

    from freeze_tui.app.widgets.samples_side import side_by_side

    console = Console(width=120, record=True)
    console.print(side_by_side(_sampled(stopped_early=True), 0, 120))
    assert "no samples: the run stopped" in console.export_text()  # side by side says why, too


def test_the_block_band_covers_a_drifting_difference_with_correlated_noise():
    from scipy.signal import lfilter

    covered = []
    for seed in range(10):  # AR(1) noise (φ = 0.5) on a difference that drifts from 0 to 1.5
        noise = lfilter([1], [1, -0.5], 0.2 * np.random.default_rng(seed).standard_normal(3000))
        trend = np.linspace(0, 1.5, 3000)
        _, lo, hi = d.block_curve(trend + noise, 0.9)
        truth, _ = d.debiased_ema(trend, 0.9)  # what the smoothed curve estimates
        known = np.isfinite(lo)
        covered.append(((lo <= truth) & (truth <= hi))[known].mean())
    assert 0.9 < np.mean(covered) < 0.99  # measured: 0.95 over 20 seeds
