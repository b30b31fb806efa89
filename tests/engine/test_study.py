"""`freeze-tui study`: full, one arm per selector and random controls as one paired run through `run`;
run_start records the roles, run_end says per method whether it beats random."""

from __future__ import annotations

import pytest

from engine.log.runlog import read_events
from tests import forked
from tests.engine.test_suggest import run_main


def test_a_headless_study_runs_every_arm_and_says_which_methods_beat_random(tiny, tmp_path, capsys):
    model, corpus = tiny
    log = tmp_path / "study.jsonl"
    argv = ["study", "--model", str(model), "--data", str(corpus), "--block-size", "16", "--batch-size", "4"]
    argv += ["--lr", "0.01", "--budget", "0.3", "--random", "2", "--probe-steps", "2", "--probe-batches", "2"]
    argv += ["--max-steps", "3", "--samples", "0", "--headless", "--log", str(log), "--lora", "2"]
    code, out, err = run_main(argv, capsys)
    assert code == 0, err
    verdicts = out[out.index("study: validation loss of each method") :].splitlines()
    assert [line.split(":")[0].strip() for line in verdicts[1:4]] == ["rgn", "snr", "fisher"]
    assert out.startswith("study: 3 selector arm(s) and 2 random control(s) at 30 % of parameters")
    for arm in ("full", "rgn", "snr", "fisher", "random-1", "random-2", "lora-rgn"):
        assert f"\n  {arm:<10} " in out  # the preview lists every arm before it trains
    events = list(read_events(log))
    start = next(e for e in events if e.kind == "run_start")
    names = ["full", "rgn", "snr", "fisher", "random-1", "random-2", "lora-rgn"]
    assert [a.name for a in start.arms] == names
    specs = {a.name: a.spec for a in start.arms}
    assert specs["lora-rgn"] == "lora:2:" + specs["rgn"].replace("+", "")  # LoRA on rgn's matrices
    roles = "full=full,rgn=method,snr=method,fisher=method,random-1=random,random-2=random"
    assert start.config["arm_roles"] == roles
    end = events[-1]
    assert end.kind == "run_end" and end.status == "finished"
    study = end.summary["study"]
    assert set(study["methods"]) == {"rgn", "snr", "fisher"}
    for row in study["methods"].values():
        assert row["randoms"] == ["random-1", "random-2"] and len(row["vs_random_ci"]) == 2
        assert row["verdict"] in ("beats random", "worse than random", "not shown different from random")
        assert row["vs_random_ci"][0] <= row["vs_random"] <= row["vs_random_ci"][1]


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--budget", "0.1", "--methods", "rgn,magic"], "--methods 'rgn,magic': give one or more of rgn, snr, fisher"),
        ([], "study needs --budget F"),
        (["--budget", "0.1", "--random", "0"], "--random must be at least 1"),
        (["--budget", "0.1", "--lora", "-1"], "--lora must be a rank of at least 1"),
    ],
)
def test_bad_study_input_is_one_line_and_exit_2(extra, needle, capsys):
    code, out, err = run_main(["study", *extra, "--headless"], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err + out


def test_a_study_over_processes_gives_the_losses_and_verdict_of_one_process(tiny, tmp_path, capsys):
    import os
    import sys
    from pathlib import Path

    model, corpus = tiny
    args = ["study", "--model", str(model), "--data", str(corpus), "--block-size", "16", "--batch-size", "4"]
    args += ["--lr", "0.01", "--budget", "0.3", "--methods", "snr", "--random", "1", "--max-steps", "3"]
    args += ["--samples", "0", "--device", "cpu", "--headless"]
    code, _, err = run_main([*args, "--log", str(tmp_path / "one.jsonl")], capsys)
    assert code == 0, err
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "TERM": "dumb", "HF_HUB_OFFLINE": "1"}
    many = [sys.executable, "-m", "freeze_tui", *args, "--log", str(tmp_path / "many.jsonl"), "--nproc-per-node", "3"]
    done = forked.run(many, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    one, dist = (list(read_events(tmp_path / f"{n}.jsonl")) for n in ("one", "many"))
    steps = [[e.arms for e in run if e.kind == "step"] for run in (one, dist)]
    assert len(steps[0]) == 3 and [{a: s[a].loss for a in s} for s in steps[0]] == pytest.approx(
        [{a: s[a].loss for a in s} for s in steps[1]], rel=1e-6
    )
    a, b = (run[-1].summary["study"]["methods"]["snr"] for run in (one, dist))
    assert b["vs_random"] == pytest.approx(a["vs_random"], rel=1e-5) and b["verdict"] == a["verdict"]
    config = next(e for e in dist if e.kind == "run_start").config
    assert config["world_size"] == 3 and config["arm_roles"] == "full=full,snr=method,random-1=random"
