"""The torch-free side of distributed runs: merging the arm groups' events, refusing what cannot run,
and passing a parsed run on to the processes a launcher starts."""

from __future__ import annotations

import dataclasses

import pytest

from engine.core.errors import FreezeTuiError
from engine.dist.world import LIVE_APP_REFUSED, check_world
from engine.log import events as ev
from engine.log.merge import merge_parts
from engine.run.config import RunConfig
from freeze_tui.cli.main import main, run
from freeze_tui.cli.run_options import FIELDS, config_args, config_from


def step(n, arm, loss):
    return ev.Step(step=n, epoch=0, arms={arm: ev.ArmStep(loss=loss, dt=0.1, lr=1e-3)})


def dw(n, arm):
    return ev.DW.of(n, {arm: ev.ArmDW({"h.0.attn.q": 1.0}, {"h.0.attn.q": 2.0})})


def sample(arm):
    return ev.Sample(phase="epoch", arm=arm, prompt="", text=arm, tokens=[], p=0.0)


def test_merge_gives_the_one_process_order():
    rank0 = [ev.Sample(phase="pre", arm="*", prompt="", text="", tokens=[], p=0.0), step(0, "full", 1.0), dw(0, "full")]
    rank1 = [ev.PlanChange(step=0, arm="t", trainable=5), step(0, "t", 2.0), dw(0, "t"), ev.Warning(message="w")]
    merged = merge_parts([rank0, rank1])
    assert [e.kind for e in merged] == ["sample", "plan_change", "step", "dw", "warning"]
    assert list(merged[2].arms) == ["full", "t"] and merged[2].arms["t"].loss == 2.0
    assert [(name, r.drift) for name, r in merged[3].by_arm().items()] == [
        ("full", {"h.0.attn.q": 2.0}),
        ("t", {"h.0.attn.q": 2.0}),
    ]


def test_merge_keeps_each_arms_samples_together_after_the_epoch_end():
    end = [ev.EpochEnd(epoch=0, arms={a: ev.ArmEpoch(loss_mean=1.0)}) for a in ("a", "b")]
    merged = merge_parts([[end[0], sample("a"), sample("a")], [end[1], sample("b")], []])
    assert [(e.kind, getattr(e, "arm", None)) for e in merged] == [
        ("epoch_end", None),
        ("sample", "a"),
        ("sample", "a"),
        ("sample", "b"),
    ]
    assert set(merged[0].arms) == {"a", "b"}


def test_world_must_be_arms_times_shards_and_headless():
    cfg = RunConfig(arms=(("a", "full"), ("b", "targeted")), batch_size=4, shards=2).validate()
    check_world(cfg, 4, headless=True)
    with pytest.raises(FreezeTuiError, match=r"3 process\(es\) but 2 arm\(s\) x --replicas 1 x --shards 2 need 4"):
        check_world(cfg, 3, headless=True)
    with pytest.raises(FreezeTuiError, match="--headless"):
        check_world(cfg, 4, headless=False)


def test_shards_must_split_the_batch():
    with pytest.raises(FreezeTuiError, match="--batch-size 6 must split evenly over --shards 4"):
        RunConfig(batch_size=6, shards=4).validate()


def test_a_launcher_passes_the_same_run_on():
    cfg = config_from({"arms": ("x=targeted", "y=+attn[1:],-mlp@step 3"), "lr": 3e-5, "data": ("a.txt",), "shards": 2})
    cfg = dataclasses.replace(cfg, trust_remote_code=True, prompt="Once")
    params = run.make_context("run", config_args(cfg)).params
    assert config_from({k: v for k, v in params.items() if k in FIELDS}) == cfg


def run_cli(monkeypatch, capsys, env: dict, *args: str) -> tuple[int, str]:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as ended:
        main(["run", *args])
    return ended.value.code, capsys.readouterr().err


@pytest.mark.parametrize("rank, lines", [("0", 1), ("1", 0)])
def test_under_torchrun_the_live_app_is_refused_in_one_line_by_rank_0(monkeypatch, capsys, rank, lines):
    code, err = run_cli(monkeypatch, capsys, {"RANK": rank, "WORLD_SIZE": "2"}, "--arm", "a=full", "--arm", "b=full")
    assert code == 2 and err.count("\n") == lines
    assert lines == 0 or err.strip() == f"freeze-tui: error: {LIVE_APP_REFUSED}"


def test_under_torchrun_a_world_of_the_wrong_size_is_refused(monkeypatch, capsys):
    code, err = run_cli(monkeypatch, capsys, {"RANK": "0", "WORLD_SIZE": "3"}, "--headless", "--shards", "2")
    assert code == 2 and "the world has 3 process(es) but 2 arm(s) x --replicas 1 x --shards 2 need 4" in err


def test_the_launcher_refuses_a_wrong_world_before_starting_anything(monkeypatch, capsys):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    code, err = run_cli(monkeypatch, capsys, {}, "--headless", "--nproc-per-node", "3")
    assert code == 2 and "the world has 3 process(es) but 2 arm(s) x --replicas 1 x --shards 1 need 2" in err


def test_shards_outside_a_distributed_run_say_how_to_start_one(monkeypatch, capsys):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    code, err = run_cli(monkeypatch, capsys, {}, "--headless", "--shards", "2")
    assert code == 2 and "add --nproc-per-node 4 --headless" in err


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(dtype="fp16", shards=2), "use --dtype bf16"),
        (dict(device="cpu,cpu"), "one device per process"),
    ],
)
def test_what_a_distributed_run_cannot_do_is_one_line(changes, message):
    cfg = dataclasses.replace(RunConfig(arms=(("a", "full"),), batch_size=4), **changes).validate()
    with pytest.raises(FreezeTuiError, match=message):
        check_world(cfg, cfg.shards, headless=True)


def test_replicas_the_launcher_refuses_a_world_that_is_not_arms_x_replicas_x_shards(monkeypatch, capsys):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    code, err = run_cli(monkeypatch, capsys, {}, "--headless", "--replicas", "2", "--nproc-per-node", "3")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "the world has 3 process(es) but 2 arm(s) x --replicas 2 x --shards 1 need 4" in err
    code, err = run_cli(monkeypatch, capsys, {}, "--headless", "--replicas", "2")  # no launcher: how to start one
    assert code == 2 and "--replicas 2 trains each arm over 2 processes: add --nproc-per-node 4 --headless" in err
    code, err = run_cli(monkeypatch, capsys, {}, "--headless", "--replicas", "0")
    assert code == 2 and "--replicas must be at least 1, got 0" in err
    cfg = RunConfig(batch_size=4, replicas=2, shards=2).validate()
    assert cfg.to_dict()["replicas"] == 2  # run_start's config records it
    with pytest.raises(FreezeTuiError, match="--batch-size 6 must split evenly over --replicas 2 x --shards 2"):
        RunConfig(batch_size=6, replicas=2, shards=2).validate()
