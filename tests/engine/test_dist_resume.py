"""Checkpoint and resume of a distributed run (issue 21 §1): two arms (full, and a targeted arm whose rule
unfreezes an MLP at step 4) x --shards 2 = 4 ranks on CPU/gloo, FSDP2, saved and loaded through
torch.distributed.checkpoint. A run SIGKILLed (every rank and the launcher) after a checkpoint and resumed
with `run --resume LOG --nproc-per-node 4` logs the same per-step losses and ΔW as the uninterrupted run.

Real processes: the killed run, then the resume (and a refused resume) side by side. The uninterrupted
reference is twofold: the killed run's own steps before the kill (the resume repeats those it supersedes to
1e-6, ΔW exactly) and a one-process run of the same settings in this process (every step, to the
tolerance test_distributed proves a sharded run keeps to the one-process run): no second 4-rank run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from engine.log import events as ev
from engine.log.runlog import read_events, read_every_event
from engine.run.checkpoints import checkpoint_root, checkpoints, newest_intact
from freeze_tui.cli.main import main
from tests.engine.conftest import run_cli_in_process
from tests.engine.test_dist_hunt import rank_pids, start_cli
from tests.engine.test_resume import logged_step, per_step

STEPS, EVERY = 12, 3


def run_args(tiny, log: Path, *, world: bool = True) -> list[str]:
    """The run's settings; `world=False`: the same run in one process (no shards, no launcher)."""
    model, corpus = tiny
    layout = ["--shards", "2", "--nproc-per-node", "4"] if world else []
    return [
        "run", "--headless", "--model", str(model), "--data", str(corpus), "--log", str(log),
        "--batch-size", "4", "--block-size", "16", "--samples", "1", "--sample-prompts", "1", "--sample-tokens", "4",
        "--lr", "0.01", "--norm-every", "1", "--max-steps", str(STEPS), "--checkpoint-every", str(EVERY),
        "--arm", "full=full", "--arm", "targeted=+attn.qkv[2:],+mlp[3]@step 4", "--dropout", "off", *layout,
    ]  # fmt: skip


def kill_all(launcher: subprocess.Popen) -> None:
    """SIGKILL every rank (rank 0, the writer, first) and the launcher: no run_end, maybe a cut line."""
    for _, pid in sorted(rank_pids(launcher.pid).items()):
        os.kill(pid, signal.SIGKILL)
    launcher.kill()
    launcher.wait()


@pytest.fixture(scope="module")
def dist_runs(tiny, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("dist-resume")
    ref_log, log = root / "ref.jsonl", root / "killed.jsonl"
    killed = start_cli(run_args(tiny, log), root)
    out: dict = {"root": root, "ref_log": ref_log, "log": log}
    started: tuple[subprocess.Popen, ...] = ()
    try:
        deadline = time.monotonic() + 300
        while logged_step(log, 0) <= 2 * EVERY:  # a step past the second checkpoint
            if killed.poll() is not None or time.monotonic() > deadline:
                killed.kill()
                pytest.fail(f"the run ended before its second checkpoint: {killed.communicate()}")
            time.sleep(0.02)
        kill_all(killed)
        out["killed_at"] = logged_step(log, 0)
        out["checkpoint"] = checkpoints(checkpoint_root(log))[-1].name
        # the killed run as it was, for the refusals (the resume goes on in the original)
        shutil.copy(log, root / "spare.jsonl")
        shutil.copytree(checkpoint_root(log), checkpoint_root(root / "spare.jsonl"))
        other = root / "other-data.jsonl"  # a checkpoint of other data: found by the ranks, which load the data
        shutil.copy(log, other)
        shutil.copytree(checkpoint_root(log), checkpoint_root(other))
        for folder in checkpoints(checkpoint_root(other)):
            manifest = json.loads((folder / "manifest.json").read_text())
            (folder / "manifest.json").write_text(json.dumps({**manifest, "data": "0" * 32}))
        out["other_before"] = other.read_bytes()
        resumed = start_cli(["run", "--resume", str(log), "--headless", "--nproc-per-node", "4"], root)
        refused = start_cli(["run", "--resume", str(other), "--headless", "--nproc-per-node", "4"], root)
        started = (resumed, refused)
        ref = run_cli_in_process(*run_args(tiny, ref_log, world=False), cwd=root)  # while the resumes run
        out["ref"] = (ref.returncode, ref.stdout, ref.stderr)
        out["resumed"] = (resumed.wait(timeout=400), *resumed.communicate())
        out["refused"] = (refused.wait(timeout=400), *refused.communicate())
    finally:
        for proc in (killed, *started):
            if proc.poll() is None:
                proc.kill()
    return out


def assert_close_to_one_process(resumed: Path, one: Path) -> None:
    """Every step's losses and ΔW as the one-process run has them, to test_distributed's tolerance for a
    sharded arm (each shard sees half the batch: the sums differ in the last bits)."""
    losses, norms = per_step(resumed)
    one_losses, one_norms = per_step(one)
    assert losses.keys() == one_losses.keys() and norms.keys() == one_norms.keys()
    for key, arms in one_losses.items():
        for name, loss in arms.items():
            assert losses[key][name] == pytest.approx(loss, rel=1e-4), (key, name)
    for key, arms in one_norms.items():
        for name, matrices in arms.items():
            assert norms[key][name].keys() == matrices.keys()
            for matrix, value in matrices.items():
                assert norms[key][name][matrix] == pytest.approx(value, rel=1e-3, abs=1e-6), (key, name, matrix)


def assert_repeats_the_steps_it_superseded(resumed: Path, before_kill: Path, step: int, killed_at: int) -> None:
    """The steps the resume ran again are those the run logged before the kill (same layout: 1e-6, ΔW exact)."""
    losses, norms = per_step(resumed)
    old_losses, old_norms = per_step(before_kill)
    again = [(0, s) for s in range(step, killed_at + 1)]
    assert again and all(key in old_losses and key in losses for key in again)
    for key in again:
        for name, loss in old_losses[key].items():
            assert math.isclose(losses[key][name], loss, rel_tol=1e-6), (key, name, losses[key][name], loss)
    # ΔW follows its step's line: the kill may have come between them for the last step
    measured = [key for key in again if key in old_norms]
    assert measured and all(norms[key] == old_norms[key] for key in measured), measured


def test_a_killed_sharded_run_resumed_from_its_dcp_checkpoint_repeats_the_uninterrupted_run(dist_runs):
    code, stdout, err = dist_runs["resumed"]
    assert code == 0, err[-3000:]
    assert dist_runs["ref"][0] == 0, dist_runs["ref"][2][-3000:]
    assert "Traceback" not in err
    log = dist_runs["log"]
    step = int(dist_runs["checkpoint"].split("-")[-1])
    assert_repeats_the_steps_it_superseded(log, dist_runs["root"] / "spare.jsonl", step, dist_runs["killed_at"])
    assert_close_to_one_process(log, dist_runs["ref_log"])
    events = list(read_events(log))
    resumed = [e for e in events if isinstance(e, ev.Resumed)]
    assert len(resumed) == 1 and resumed[0].step == step < STEPS
    assert resumed[0].superseded_steps == dist_runs["killed_at"] + 1 - step
    assert isinstance(events[-1], ev.RunEnd) and events[-1].status == "finished"
    seqs = [e.seq for e in read_every_event(log)]
    assert seqs == list(range(len(seqs)))  # appended with no gap, no cut line
    # the rule fired once, before the kill or after the resume, and the same in both runs
    fired = [(e.step, e.arm, e.trainable) for e in events if isinstance(e, ev.PlanChange)]
    assert fired == [(e.step, e.arm, e.trainable) for e in read_events(dist_runs["ref_log"]) if e.kind == "plan_change"]
    assert len(fired) == 1
    # one DCP folder per arm, each with a shard file per rank of its group; the newest K kept
    kept = checkpoints(checkpoint_root(log))
    assert [k.name for k in kept] == [f"step-{s:06d}" for s in (STEPS - 2 * EVERY, STEPS - EVERY)]
    manifest = json.loads((kept[-1] / "manifest.json").read_text())
    assert manifest["world_size"] == 4 and manifest["shards"] == 2 and manifest["arm_names"] == ["full", "targeted"]
    for arm in ("arm-0", "arm-1"):
        assert {f for f in manifest["files"] if f.startswith(arm + "/")} == {
            f"{arm}/.metadata",
            f"{arm}/__0_0.distcp",
            f"{arm}/__1_0.distcp",
        }


def test_a_checkpoint_of_other_data_is_refused_by_the_ranks_in_one_line_and_the_log_untouched(dist_runs):
    code, _, err = dist_runs["refused"]
    assert code == 2, err[-3000:]
    assert err.count("freeze-tui: error:") == 1 and "content hash differs" in err, err[-3000:]
    assert "Traceback" not in err
    assert (dist_runs["root"] / "other-data.jsonl").read_bytes() == dist_runs["other_before"]


def _resume(log: Path, *extra: str, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--resume", str(log), "--headless", *extra])
    return int(exit_info.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(
    ("launch", "words"),
    [
        ((), "ran over 4 processes: resume it the same way: freeze-tui run --resume"),
        (("--nproc-per-node", "2"), "ran over 4 processes, this resume starts 2"),
        (("--nproc-per-node", "4", "--shards", "4"), "--shards 4 differs from the run's 2"),
    ],
)
def test_a_distributed_resume_with_another_layout_is_one_line(dist_runs, capsys, launch, words):
    spare = dist_runs["root"] / "spare.jsonl"
    before = spare.read_bytes()
    code, err = _resume(spare, *launch, capsys=capsys)
    assert code == 2 and words in err, err
    assert len(err.strip().splitlines()) == 1
    assert spare.read_bytes() == before


def test_a_checkpoint_written_by_another_world_is_refused(dist_runs, tmp_path, capsys):
    log = tmp_path / "other.jsonl"
    shutil.copy(dist_runs["root"] / "spare.jsonl", log)
    shutil.copytree(checkpoint_root(dist_runs["root"] / "spare.jsonl"), checkpoint_root(log))
    for folder in checkpoints(checkpoint_root(log)):
        manifest = json.loads((folder / "manifest.json").read_text())
        (folder / "manifest.json").write_text(json.dumps({**manifest, "world_size": 2, "shards": 1}))
    code, err = _resume(log, "--nproc-per-node", "4", capsys=capsys)
    assert (
        code == 2
        and "was written by 2 process(es) with --shards 1 --replicas 1, this run has 4 with --shards 2 --replicas 1"
        in err
    ), err
    assert len(err.strip().splitlines()) == 1


def test_a_damaged_or_missing_dcp_shard_is_named_and_the_previous_checkpoint_used(dist_runs, tmp_path):
    root = tmp_path / "x.ckpt"
    shutil.copytree(checkpoint_root(dist_runs["root"] / "spare.jsonl"), root)
    newest, previous = checkpoints(root)[-1], checkpoints(root)[-2]
    (newest / "arm-1" / "__1_0.distcp").write_bytes(b"junk")
    said: list[str] = []
    assert newest_intact(root, said.append) == previous
    assert len(said) == 1 and newest.name in said[0] and "arm-1/__1_0.distcp is damaged" in said[0]
    (previous / "arm-0" / ".metadata").unlink()
    with pytest.raises(Exception, match=r"no intact checkpoint .*arm-1/__1_0.distcp is damaged"):
        newest_intact(root, said.append)
    assert "arm-0/.metadata is missing" in said[-1]


def test_plan_says_what_each_rank_of_a_sharded_arm_writes():
    """A sharded arm's checkpoint holds what a one-process one does (its trained tensors and AdamW's two
    moments); each of its K ranks writes a K-th of it into the arm's DCP folder."""
    from engine.run.checkpoints import checkpoint_line, checkpoint_plan
    from engine.run.config import RunConfig

    optimizer = {"full": 8000, "t": 800}  # bytes of AdamW's moments per arm (the memory plan's `optimizer`)
    cfg = RunConfig(arms=(("full", "full"), ("t", "targeted")), shards=2, checkpoint_every="10").validate()
    plan = checkpoint_plan(cfg, Path("runs/x.jsonl"), optimizer)
    assert plan.per_arm == {"full": 12000, "t": 1200} and plan.per_checkpoint == 13200
    assert plan.per_rank == {"full": 6000, "t": 600}
    assert "each of an arm's 2 ranks writes 1/2 of it, at most 6.0 kB" in checkpoint_line(plan)
    one = checkpoint_plan(RunConfig(checkpoint_every="10").validate(), Path("runs/x.jsonl"), optimizer)
    assert "DCP" not in checkpoint_line(one)
