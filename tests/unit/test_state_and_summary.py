"""RunState folding, derived values (r, p, tokens/s) and the report built from it."""

import math
from pathlib import Path

import pytest

from engine.log import events as ev
from engine.log.state import RunState
from engine.log.summary import arm_rows, summarize
from freeze_tui.draw.report import markdown_report


def _run(status="finished"):
    evs = [
        ev.Header(seq=0, t=100.0, run_id="r"),
        ev.RunStart(
            seq=1,
            t=100.0,
            config={"epochs": 2, "batch_size": 4, "block_size": 8},
            data={"n_train_batches": 2, "n_tokens": 100, "source": "x"},
            arms=[
                ev.ArmRecord(name="full", spec="full", trainable=100, total=100, r_pred=0.0),
                ev.ArmRecord(name="targeted", spec="targeted", trainable=10, total=100, r_pred=0.5),
            ],
        ),
    ]
    seq = 2
    for step, (lf, lt) in enumerate([(4.0, 4.0), (3.0, 3.5), (2.0, 3.0), (1.0, 2.5)]):
        evs.append(
            ev.Step(
                seq=seq,
                t=100.0 + step,
                step=step,
                epoch=step // 2,
                arms={"full": ev.ArmStep(loss=lf, dt=1.0, lr=0.1), "targeted": ev.ArmStep(loss=lt, dt=0.75, lr=0.1)},
            )
        )
        seq += 1
    evs.append(
        ev.EpochEnd(
            seq=seq,
            t=104.0,
            epoch=0,
            arms={
                "full": ev.ArmEpoch(loss_mean=3.5, loss_var=0.25, val_loss=3.0, t_epoch=2.0, t_total=2.0),
                "targeted": ev.ArmEpoch(loss_mean=3.75, loss_var=0.0625, val_loss=3.4, t_epoch=1.5, t_total=1.5),
            },
        )
    )
    evs.append(
        ev.EpochEnd(
            seq=seq + 1,
            t=105.0,
            epoch=1,
            arms={
                "full": ev.ArmEpoch(loss_mean=1.5, loss_var=0.25, val_loss=2.0, t_epoch=2.0, t_total=4.0),
                "targeted": ev.ArmEpoch(loss_mean=2.75, loss_var=0.0625, val_loss=3.0, t_epoch=1.5, t_total=3.0),
            },
        )
    )
    for i, p in enumerate([0.4, 0.5]):
        evs.append(ev.Sample(seq=seq + 2 + i, t=105.0, phase="pre", arm="*", p=p, index=i))
    for i, p in enumerate([0.6, 0.7]):
        evs.append(ev.Sample(seq=seq + 4 + i, t=106.0, phase="epoch", arm="targeted", p=p, index=i, epoch=1))
    evs.append(ev.RunEnd(seq=seq + 6, t=107.0, status=status))
    return evs


def test_reducer_folds_series_epochs_and_status():
    s = RunState().apply_all(_run())
    assert s.status == "finished" and s.step == 3 and list(s.steps) == [0, 1, 2, 3]
    assert list(s.arms["targeted"].losses) == [4.0, 3.5, 3.0, 2.5]
    assert s.epoch_starts == [0, 2]
    assert s.total_steps == 4
    assert s.arm_time("full") == 4.0 and s.arm_time("targeted") == 3.0
    assert s.saving("targeted") == pytest.approx(0.25)
    assert s.tokens_per_s("full") == pytest.approx(32 / 1.0)
    assert s.elapsed == 7.0


def test_p_and_delta_p_with_interval():
    s = RunState().apply_all(_run())
    mean, lo, hi = s.p_pre()
    assert mean == pytest.approx(0.45) and math.isnan(lo) and math.isnan(hi)  # one prompt: no interval (issue 18)
    assert s.delta_p("targeted") == pytest.approx(0.2)
    assert math.isnan(s.delta_p("full"))


def test_rows_and_summary():
    s = RunState().apply_all(_run())
    rows = {r.arm: r for r in arm_rows(s)}
    assert rows["full"].loss_first == 3.5 and rows["full"].loss_last == 1.5
    assert rows["full"].loss_var == pytest.approx(0.25)  # the last epoch's variance of step losses
    assert rows["full"].loss_basis == "epoch means"
    assert rows["targeted"].r == pytest.approx(0.25) and rows["targeted"].trainable_pct == 10.0
    summary = summarize(s, {"state_bytes": {"full": 8}})
    assert summary["r"]["targeted"] == pytest.approx(0.25)
    assert summary["arms"]["full"]["state_bytes"] == 8
    assert summary["arms"]["targeted"]["p_post"] == pytest.approx(0.65)


@pytest.mark.parametrize("status, words", [("finished", "finished"), ("stopped", "stopped"), ("failed", "failed")])
def test_report_says_how_the_run_ended(status, words):
    text = markdown_report(RunState().apply_all(_run(status)))
    assert words in text
    assert "| targeted | 10.00 % | 3.750 → 2.750 |" in text
    assert "25.0 %" in text


def test_report_of_a_run_that_never_ended():
    text = markdown_report(RunState().apply_all(_run()[:-1]))
    assert "did not finish" in text


def test_malformed_events_are_skipped_not_raised():
    s = RunState()
    s.apply_all(_run()[:2])
    s.apply(ev.Step(seq=9, t=1.0, step=5, epoch=0, arms={"full": "oops"}))
    s.apply(ev.RunStart(seq=10, t=1.0, arms=[{"no_name": 1}]))
    assert s.n_skipped == 2 and any("malformed" in m.message for m in s.messages)


def test_nan_losses_fold_as_nan():
    s = RunState().apply_all(_run()[:2])
    s.apply(ev.Step(seq=2, t=1.0, step=0, epoch=0, arms={"full": ev.ArmStep(loss=None, dt=0.1, lr=0.1)}))
    assert math.isnan(s.arms["full"].losses[0]) and math.isnan(s.arms["targeted"].losses[0])


@pytest.mark.parametrize("log", sorted((Path(__file__).parents[2] / "sample_runs").glob("*.jsonl")), ids=str)
def test_reducer_skips_nothing_of_the_sample_runs(log):
    from engine.log.runlog import read_events

    state = RunState().apply_all(read_events(log))
    assert state.n_skipped == 0 and state.finished and state.status == "finished"
    assert not [m for m in state.messages if "skipped" in m.message]


def test_a_report_of_a_new_state_never_shows_an_older_states_rows(monkeypatch):
    """The report keeps the rows of the last state drawn. A new state with the same step, status and clock
    is another run (another log opened in the same process) and gets its own rows, also when it sits at
    the freed address of the first (CPython reuses addresses: simulated here by one `id` for every object)."""
    import freeze_tui.draw.report as report

    monkeypatch.setattr(report, "id", lambda _: 1, raising=False)
    one_arm = [
        e if e.kind != "run_start" else ev.RunStart(seq=e.seq, t=e.t, config=e.config, data=e.data, arms=e.arms[:1])
        for e in _run()
    ]
    assert "| targeted |" in markdown_report(RunState().apply_all(_run()))
    assert "| targeted |" not in markdown_report(RunState().apply_all(one_arm))
