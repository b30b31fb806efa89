"""Checkpoint and resume (issue 21 §1): a run SIGKILLed after step 22 and resumed from its step-20
checkpoint logs the same per-step losses and ΔW as the run that was never interrupted, for full, frozen,
scheduled and LoRA arms, and under --seeds 2 with the kill in the second replicate.

The killed runs and the resumes are real processes (SIGKILL, a detached resume); the uninterrupted
references are the same one-process runs in this process (same code, one thread: the same bits), run
while the resumes go on.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.log import events as ev
from engine.log.runlog import read_events, read_every_event
from engine.log.state import RunState
from engine.run.checkpoints import checkpoint_root, newest_intact
from freeze_tui.cli.main import main
from tests import forked
from tests.engine.conftest import run_cli_in_process
from tests.engine.test_signals import ENV, ROOT

ARMS = ["--arm", "full=full", "--arm", "frozen=targeted", "--arm", "sched=+mlp,+attn[2:]@step15"]
ARMS += ["--arm", "lora=lora:2:attn.qkv[2:]"]
SEEDS_ARMS = ["--arm", "full=full", "--arm", "sched=+mlp,+attn[2:]@step15", "--seeds", "2"]


def args(tiny, log: Path, *extra: str) -> list[str]:
    model, corpus = tiny
    return [
        "run", "--headless", "--model", str(model), "--data", str(corpus), "--log", str(log),
        "--batch-size", "2", "--block-size", "16", "--samples", "1", "--sample-prompts", "1",
        "--sample-tokens", "4", "--epochs", "1", "--max-steps", "26", "--checkpoint-every", "10", *extra,
    ]  # fmt: skip


def start(argv: list[str]) -> subprocess.Popen:
    return forked.Popen(
        [sys.executable, "-m", "freeze_tui", *argv],
        cwd=ROOT,
        env=ENV,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def logged_step(log: Path, replicate: int) -> int:
    """The last step the log shows of `replicate` (-1: none yet)."""
    last, current = -1, 0
    for line in log.read_bytes().splitlines() if log.exists() else []:
        event = json.loads(line) if line.endswith(b"}") else {}
        if event.get("kind") == "replicate":
            current = event["replicate"]
        elif event.get("kind") == "step" and current == replicate:
            last = event["step"]
    return last


def kill_after(proc: subprocess.Popen, log: Path, step: int, replicate: int = 0, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while logged_step(log, replicate) < step:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the run ended before step {step}: {proc.communicate()}")
        time.sleep(0.02)
    proc.kill()  # SIGKILL: no run_end, maybe a cut last line
    proc.wait()


def finish(proc: subprocess.Popen, timeout: float = 400) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err.decode()


@pytest.fixture(scope="module")
def runs(tiny, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("resume")
    logs = {n: root / f"{n}.jsonl" for n in ("ref", "killed", "ref_seeds", "killed_seeds")}
    procs = {
        "killed": start(args(tiny, logs["killed"], *ARMS)),
        "killed_seeds": start(args(tiny, logs["killed_seeds"], *SEEDS_ARMS)),
    }
    out: dict = {"logs": logs, "root": root}
    try:
        kill_after(procs["killed"], logs["killed"], 22)
        out["cut"] = {n: list(read_every_event(logs[n])) for n in ("killed",)}
        # the killed logs as they were, for the refusal tests (resume consumes the originals)
        shutil.copy(logs["killed"], root / "spare.jsonl")
        shutil.copytree(checkpoint_root(logs["killed"]), checkpoint_root(root / "spare.jsonl"))
        resumed = start(["run", "--resume", str(logs["killed"]), "--headless"])
        kill_after(procs["killed_seeds"], logs["killed_seeds"], 22, replicate=1)
        resumed_seeds = start(["run", "--resume", str(logs["killed_seeds"]), "--detach", "--headless"])
        procs |= {"resumed": resumed, "resumed_seeds": resumed_seeds}
        for name, arms in (("ref", ARMS), ("ref_seeds", SEEDS_ARMS)):  # while the resumes run
            done = run_cli_in_process(*args(tiny, logs[name], *arms), cwd=ROOT)
            out[name] = (done.returncode, done.stderr)
        out["resumed"] = finish(resumed)
        out["resumed_seeds_launcher"] = finish(resumed_seeds)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    deadline = time.monotonic() + 400  # the detached resume runs on in its own process
    while b'"kind":"run_end"' not in logs["killed_seeds"].read_bytes() and time.monotonic() < deadline:
        time.sleep(0.2)
    return out


def per_step(log: Path) -> tuple[dict, dict]:
    """{(replicate, step): {arm: loss}} and {(replicate, step): {arm: ΔW norms}}; each step once."""
    losses: dict = {}
    norms: dict = {}
    replicate = 0
    for e in read_events(log):
        if isinstance(e, ev.Replicate):
            replicate = e.replicate
        elif isinstance(e, ev.Step):
            assert (replicate, e.step) not in losses, f"step {e.step} of replicate {replicate} shown twice"
            losses[(replicate, e.step)] = {name: a.loss for name, a in e.arms.items()}
        elif isinstance(e, ev.DW):
            norms[(replicate, e.step)] = {name: r.dw for name, r in e.by_arm().items()}
    return losses, norms


def assert_same_run(resumed: Path, ref: Path) -> None:
    losses, norms = per_step(resumed)
    ref_losses, ref_norms = per_step(ref)
    assert losses.keys() == ref_losses.keys()
    for key, arms in ref_losses.items():
        for name, loss in arms.items():
            assert math.isclose(losses[key][name], loss, rel_tol=1e-6), (key, name, losses[key][name], loss)
    assert norms == ref_norms  # ΔW of every matrix of every arm, as logged


def test_a_killed_run_resumed_from_its_checkpoint_repeats_the_uninterrupted_run(runs):
    code, err = runs["resumed"]
    assert code == 0, err
    assert runs["ref"][0] == runs["ref_seeds"][0] == 0, (runs["ref"], runs["ref_seeds"])
    log = runs["logs"]["killed"]
    assert_same_run(log, runs["logs"]["ref"])
    events = list(read_events(log))
    resumed = [e for e in events if isinstance(e, ev.Resumed)]
    assert len(resumed) == 1 and resumed[0].step == 20 and resumed[0].superseded_steps >= 3
    assert Path(resumed[0].checkpoint).name == "step-000020"
    assert isinstance(events[-1], ev.RunEnd) and events[-1].status == "finished"
    seqs = [e.seq for e in read_every_event(log)]
    assert seqs == list(range(len(seqs)))  # appended with no gap, no cut line


def test_a_resume_in_the_second_replicate_repeats_the_uninterrupted_run(runs):
    code, err = runs["resumed_seeds_launcher"]
    assert code == 0, err
    log = runs["logs"]["killed_seeds"]
    events = list(read_events(log))
    assert isinstance(events[-1], ev.RunEnd) and events[-1].status == "finished"
    resumed = next(e for e in events if isinstance(e, ev.Resumed))
    assert (resumed.replicate, resumed.step) == (1, 20)
    assert_same_run(log, runs["logs"]["ref_seeds"])


def test_a_follower_that_saw_the_superseded_steps_shows_one_value_per_step(runs):
    """watch folds every line as it comes: the resumed event undoes what a file reader never sees."""
    for name in ("killed", "killed_seeds"):
        log = runs["logs"][name]
        followed = RunState().apply_all(read_every_event(log))
        read = RunState().apply_all(read_events(log))
        assert list(followed.steps) == list(read.steps) == list(range(26))
        for arm in read.arms:
            assert list(followed.arms[arm].losses) == list(read.arms[arm].losses)
            assert followed.arms[arm].time_total == pytest.approx(read.arms[arm].time_total)
            assert [k for k, _ in followed.arms[arm].epochs] == [k for k, _ in read.arms[arm].epochs] == [0]
        assert len(followed.past) == len(read.past)


def test_old_checkpoints_are_pruned_to_keep_checkpoints(runs):
    names = sorted(p.name for p in checkpoint_root(runs["logs"]["ref_seeds"]).iterdir())
    assert names == ["r01-step-000010", "r01-step-000020"]


def _resume(log: Path, *extra: str, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--resume", str(log), "--headless", *extra])
    return int(exit_info.value.code or 0), capsys.readouterr().err


def test_resuming_a_finished_run_says_there_is_nothing_to_resume(runs, capsys):
    code, err = _resume(runs["logs"]["ref"], capsys=capsys)
    assert code == 2 and "already ended (finished); nothing to resume" in err
    assert len(err.strip().splitlines()) == 1


def test_resuming_with_a_setting_that_changes_the_run_names_it_and_both_values(runs, capsys):
    spare = runs["root"] / "spare.jsonl"
    before = spare.read_bytes()
    code, err = _resume(spare, "--lr", "0.5", capsys=capsys)
    assert code == 2 and "--lr 0.5 differs from the run's 5e-05" in err
    code, err = _resume(spare, "--block-size", "8", capsys=capsys)
    assert code == 2 and "--block-size 8 differs from the run's 16" in err
    assert spare.read_bytes() == before  # nothing written


def test_a_damaged_checkpoint_is_named_and_the_previous_one_used(runs, tmp_path):
    root = tmp_path / "x.ckpt"
    shutil.copytree(checkpoint_root(runs["root"] / "spare.jsonl"), root)
    (root / "step-000020" / "arm-1.safetensors").write_bytes(b"junk")
    said: list[str] = []
    assert newest_intact(root, said.append).name == "step-000010"
    assert len(said) == 1 and "step-000020" in said[0] and "arm-1.safetensors is damaged" in said[0]
    (root / "step-000010" / "manifest.json").unlink()
    with pytest.raises(Exception, match="no intact checkpoint .* manifest.json is missing|arm-1.safetensors"):
        newest_intact(root, said.append)


def test_a_log_without_checkpoints_cannot_be_resumed(runs, tmp_path, capsys):
    log = tmp_path / "bare.jsonl"
    shutil.copy(runs["root"] / "spare.jsonl", log)
    code, err = _resume(log, capsys=capsys)
    assert code == 2 and "no checkpoint in" in err and "--checkpoint-every" in err


@pytest.mark.parametrize(
    ("field", "words"),
    [("data", "is not the text checkpoint .* content hash differs"), ("model", "is not the one checkpoint .*")],
)
def test_a_checkpoint_of_other_data_or_model_is_refused_before_the_log_is_touched(runs, tmp_path, capsys, field, words):
    log = tmp_path / "other.jsonl"
    shutil.copy(runs["root"] / "spare.jsonl", log)
    shutil.copytree(checkpoint_root(runs["root"] / "spare.jsonl"), checkpoint_root(log))
    for folder in checkpoint_root(log).iterdir():
        manifest = json.loads((folder / "manifest.json").read_text())
        (folder / "manifest.json").write_text(json.dumps({**manifest, field: "0" * 32}))
    before = log.read_bytes()
    code, err = _resume(log, capsys=capsys)
    assert code == 2 and re.search(words, err), err
    assert len(err.strip().splitlines()) == 1
    assert log.read_bytes().rstrip(b"\n").count(b"\n") == before.rstrip(b"\n").count(b"\n")
    assert b'"kind":"resumed"' not in log.read_bytes()


@pytest.mark.parametrize("every", ["0", "ten", "5d", "-3"])
def test_a_bad_checkpoint_interval_is_one_line(every, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--headless", "--checkpoint-every", every])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--checkpoint-every" in err and "90s, 30m, 2h" in err


def test_checkpoint_intervals_in_steps_and_time():
    from engine.run.every import parse_every

    assert parse_every("500").due(500, 0.0) and not parse_every("500").due(499, 1e9)
    assert parse_every("30m").seconds == 1800 and parse_every("2h").due(0, 7200.0)
    assert not parse_every("90s").due(10**6, 89.0)


def test_plan_says_where_checkpoints_go_and_their_cost(tiny, tmp_path, capsys):
    log = tmp_path / "p.jsonl"
    with pytest.raises(SystemExit):
        main(["plan", "--model", str(tiny[0]), "--arm", "full=full", "--log", str(log), "--checkpoint-every", "10",
              "--keep-checkpoints", "3", "--json"])  # fmt: skip
    desc = json.loads(capsys.readouterr().out)
    plan = desc["checkpoints"]
    assert plan["folder"] == str(tmp_path / "p.ckpt") and plan["keep"] == 3
    # the full arm: 12 bytes per parameter (fp32 tensor, AdamW's two moments)
    assert plan["per_checkpoint"] == plan["per_arm"]["full"] == 12 * desc["arms"][0]["trainable"] > 0
    assert plan["kept"] == 3 * plan["per_checkpoint"]


def test_a_stopped_run_is_resumable_and_its_run_end_superseded():
    """ctrl+c writes run_end "stopped"; a resume supersedes it with the steps after the checkpoint."""
    events = [
        ev.Header(seq=0),
        ev.RunStart(seq=1, arms=[ev.ArmRecord(name="a")]),
        *[ev.Step(seq=2 + i, step=i, arms={"a": ev.ArmStep(1.0 + i, 0.1, 0.001)}) for i in range(4)],
        ev.RunEnd(seq=6, status="stopped", summary={"arms": {"a": {"T": 9.0}}}),
        ev.Resumed(seq=7, step=2, after_seq=3),
        ev.Step(seq=8, step=2, arms={"a": ev.ArmStep(7.0, 0.1, 0.001)}),
    ]
    state = RunState().apply_all(events)
    assert list(state.steps) == [0, 1, 2] and list(state.arms["a"].losses) == [1.0, 2.0, 7.0]
    assert state.status == "running" and state.arm_time("a") == pytest.approx(0.3)


def test_a_resumed_log_merged_with_another_pairs_one_value_per_step(runs):
    """merge (replay/report/export of several logs): the resumed run's arms beside the uninterrupted
    run's, step by step; being the same run, their losses agree."""
    from freeze_tui.cli.logs import state_of

    logs = runs["logs"]
    state = state_of([f"a={logs['killed']}", f"b={logs['ref']}"])
    assert list(state.steps) == list(range(26))
    for arm in ("full", "frozen", "sched", "lora"):
        a, b = list(state.arms[f"a/{arm}"].losses), list(state.arms[f"b/{arm}"].losses)
        assert len(a) == 26 and all(math.isclose(x, y, rel_tol=1e-6) for x, y in zip(a, b, strict=True))


def test_export_and_report_of_a_resumed_log_have_each_step_once(runs, tmp_path, capsys):
    import csv

    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(runs["logs"]["killed"]), "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 0
    with open(tmp_path / "x" / "steps.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 26 * 4
    assert len({(r["step"], r["arm"]) for r in rows}) == len(rows)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["report", str(runs["logs"]["killed"]), "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == 26 and report["status"] == "finished"
