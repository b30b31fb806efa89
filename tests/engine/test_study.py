"""`freeze-tui study`: full, one arm per selector and random controls as one paired run through `run`;
run_start records the roles, run_end says per method whether it beats random."""

from __future__ import annotations

import pytest

from engine.log.runlog import read_events
from tests.engine.test_run import tiny  # noqa: F401  (module fixture: a tiny GPT-2 and its corpus)
from tests.engine.test_suggest import run_main


def test_a_headless_study_runs_every_arm_and_says_which_methods_beat_random(tiny, tmp_path, capsys):  # noqa: F811
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
    assert [a["name"] for a in start.arms] == names
    specs = {a["name"]: a["spec"] for a in start.arms}
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
