"""Distributed runs on CPU with gloo, 2 processes each, compared step by step with the one-process run
of the same settings: arms over ranks (torch's elastic launcher via `run --nproc-per-node`), a sharded
arm (FSDP2, `--shards 2`, with samples, validation and a rule that unfreezes mid-run), and a failure on
one rank under torchrun itself, which must end the log with `run_end failed` naming that rank.

The three launches start side by side (each pays torch's start-up) and must end within seconds.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from engine.log.runlog import read_events
from engine.run.config import RunConfig, parse_arm
from engine.run.session_info import LOAD_WARNING
from engine.train.session import RunSession
from tests import forked
from tests.tiny_models import WORDS, make_tiny_model

ROOT = Path(__file__).resolve().parents[2]
COMMON = dict(epochs=1, max_steps=5, batch_size=4, block_size=16, lr=1e-2, norm_every=1)
RUNS = {
    # arms over ranks: dropout on (the same masks per step in every arm, in every process)
    "arms": dict(family="gpt2", arms=("full=full", "targeted=targeted"), samples=0, shards=1),
    # one arm sharded over 2 ranks: each shard sees half the batch, so dropout must be off to match;
    # GPT-NeoX fuses q,k,v along dim 0, the dim FSDP2 shards: the norms' segments must follow the shard
    "sharded": dict(
        family="gpt_neox",
        arms=("late=+attn.qkv[2:],+mlp[3]@step 2",),
        samples=2,
        sample_tokens=4,
        dropout="off",
        shards=2,
    ),
    # 2 arms x 2 replicas = 4 ranks: each replica half of every batch, the gradient averaged over
    # both (FSDP2's replication); dropout off, as with shards
    "replicas": dict(
        family="gpt2",
        arms=("full=full", "targeted=targeted"),
        samples=2,
        sample_tokens=4,
        dropout="off",
        replicas=2,
        shards=1,
    ),
}


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("dist")
    rng = random.Random(0)
    corpus = root / "corpus.txt"
    corpus.write_text(" ".join(rng.choice(WORDS[2:40]) for _ in range(2500)))
    models = {
        f: make_tiny_model(root, f, n_layer=4) if f == "gpt2" else make_tiny_model(root, f)
        for f in ("gpt2", "gpt_neox")
    }
    return {"root": root, "corpus": corpus, "models": models}


def settings(assets, name: str) -> dict:
    run = dict(RUNS[name])
    return dict(COMMON, model=str(assets["models"][run.pop("family")]), data=(str(assets["corpus"]),), **run)


def argv(cfg: dict, log: Path) -> list[str]:
    args = ["run", "--headless", "--log-path", str(log)]
    for key, value in cfg.items():
        flag = "--" + key.replace("_", "-")
        if key == "arms":
            args += [a for arm in value for a in ("--arm", arm)]
        elif key == "data":
            args += ["--data", value[0]]
        else:
            args += [flag, str(value)]
    return args


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TERM": "dumb", "HF_HUB_OFFLINE": "1"}


def single(assets, name: str) -> list:
    """The reference: the same settings in this process, one process, no sharding."""
    cfg = {k: v for k, v in settings(assets, name).items() if k not in ("shards", "replicas")}
    cfg["arms"] = tuple(parse_arm(a) for a in cfg["arms"])
    log = assets["root"] / f"{name}-single.jsonl"
    session = RunSession(RunConfig(**cfg).validate(), log, producer="test").start()
    while not session.done:
        session.get_batch(0.5)
    assert session.join(timeout=60)
    return list(read_events(log))


@pytest.fixture(scope="module")
def launched(assets) -> dict:
    root, procs = assets["root"], {}
    for name in RUNS:
        cfg = settings(assets, name)
        world = len(cfg["arms"]) * cfg["shards"] * cfg.get("replicas", 1)
        launcher = ["--nproc-per-node", str(world)]
        if name == "replicas":  # arm targeted's first rank is world rank 2: it saves it
            launcher += ["--save", str(root / "saved-replicas")]
        procs[name] = [sys.executable, "-m", "freeze_tui", *argv(cfg, root / f"{name}.jsonl"), *launcher]
    fault = dict(settings(assets, "arms"), arms=("full=full", "targeted=targeted"))
    procs["fault"] = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(ROOT / "tests" / "engine" / "dist_fault_worker.py"),
        *argv(fault, root / "fault.jsonl"),
    ]
    started = {
        name: forked.Popen(
            cmd,
            cwd=root,
            env={**env(), "FAULT_RANK": "1", "FAULT_STEP": "3"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        for name, cmd in procs.items()
    }
    results = {}
    try:
        for name, proc in started.items():
            out, err = proc.communicate(timeout=240)
            results[name] = dict(code=proc.returncode, out=out, err=err, log=root / f"{name}.jsonl")
    finally:
        for proc in started.values():
            if proc.poll() is None:
                proc.kill()
    return results


def of_kind(events, kind):
    return [e for e in events if e.kind == kind]


def _clock_driven(event) -> bool:
    """Heartbeats, and the warning a heartbeat gives when the machine's load exceeds its cores."""
    return event.kind == "heartbeat" or (event.kind == "warning" and event.message.startswith(LOAD_WARNING))


def assert_same_run(one, many, loss_tol: float, world_size: int = 2) -> None:
    one, many = ([e for e in events if not _clock_driven(e)] for events in (one, many))
    assert [e.kind for e in one] == [e.kind for e in many]
    for a, b in zip(of_kind(one, "step"), of_kind(many, "step")):
        assert a.arms.keys() == b.arms.keys()
        for arm in a.arms:
            assert b.arms[arm].loss == pytest.approx(a.arms[arm].loss, rel=loss_tol)
            assert b.arms[arm].dt > 0
    for a, b in zip(of_kind(one, "dw"), of_kind(many, "dw")):
        theirs = b.by_arm()
        for arm, mine in a.by_arm().items():
            for field in mine.__struct_fields__:
                for matrix, value in getattr(mine, field).items():
                    got = getattr(theirs[arm], field)[matrix]
                    assert got == pytest.approx(value, rel=1e-3, abs=1e-6), (arm, field, matrix)
    for a, b in zip(of_kind(one, "epoch_end"), of_kind(many, "epoch_end")):
        for arm in a.arms:
            assert b.arms[arm].val_loss == pytest.approx(a.arms[arm].val_loss, rel=loss_tol)
    start_one, start_many = one[1], many[1]
    assert [a.init_checksum for a in start_one.arms] == [a.init_checksum for a in start_many.arms]
    assert start_many.config["world_size"] == world_size and start_many.config["backend"] == "gloo"
    assert many[-1].status == one[-1].status == "finished"
    for arm, row in one[-1].summary["arms"].items():
        assert many[-1].summary["arms"][arm]["state_bytes"] == row["state_bytes"]


def test_arms_over_ranks_reproduce_the_single_process_run(assets, launched):
    r = launched["arms"]
    assert r["code"] == 0, r["err"][-2000:]
    assert_same_run(single(assets, "arms"), list(read_events(r["log"])), loss_tol=1e-5)
    assert "The run finished." in r["out"] and r["err"].count("freeze-tui") == 0
    arms = list(read_events(r["log"]))[-1].summary["arms"]  # tokens/s per arm, as a one-process run_end has
    assert all(isinstance(arm.get("tokens_per_s"), float) and arm["tokens_per_s"] > 0 for arm in arms.values())
    many = list(read_events(r["log"]))  # each rank read its whole arm from the file; no samples, validation timed
    weights = of_kind(many, "run_start")[0].config["rank_weights"]
    assert weights == dict.fromkeys(("full", "targeted"), "whole arm (safetensors)")
    assert many[-1].summary["sampling_s"] == 0.0 and many[-1].summary["validation_s"] > 0


def test_a_sharded_arm_reproduces_the_single_process_run(assets, launched):
    r = launched["sharded"]
    assert r["code"] == 0, r["err"][-2000:]
    one, many = single(assets, "sharded"), list(read_events(r["log"]))
    assert_same_run(one, many, loss_tol=1e-4)
    # the rule fired on both shards, once; samples (every shard takes part) read the same text
    assert (
        [(e.step, e.trainable) for e in of_kind(many, "plan_change")]
        == [(e.step, e.trainable) for e in of_kind(one, "plan_change")]
        != []
    )
    assert [(s.arm, s.text) for s in of_kind(many, "sample")] == [(s.arm, s.text) for s in of_kind(one, "sample")]
    # each rank read only its rows of every tensor (GPT-NeoX's embed_out is lm_head by transformers' renaming)
    assert of_kind(many, "run_start")[0].config["rank_weights"] == {"late": "own shards (safetensors slices)"}
    assert many[-1].summary["sampling_s"] > 0 and many[-1].summary["validation_s"] > 0  # as one process has them


def test_a_failure_on_one_rank_ends_the_run_naming_it(launched):
    r = launched["fault"]
    assert r["code"] != 0
    events = list(read_events(r["log"]))
    end = events[-1]
    assert end.kind == "run_end" and end.status == "failed"
    assert end.summary["failure"] == {"rank": 1, "message": "RuntimeError: injected fault at step 3"}
    assert [e.message for e in of_kind(events, "error")] == ["rank 1: RuntimeError: injected fault at step 3"]
    assert [e.step for e in of_kind(events, "step")] == [0, 1, 2]
    assert r["err"].count("freeze-tui: error: rank 1: RuntimeError: injected fault at step 3") == 1
    assert "error: rank 1" in r["out"]  # rank 0's console says which rank failed


def test_replicas_reproduce_the_single_process_run(assets, launched):
    r = launched["replicas"]
    assert r["code"] == 0, r["err"][-2000:]
    one, many = single(assets, "replicas"), list(read_events(r["log"]))
    assert_same_run(one, many, loss_tol=1e-5, world_size=4)
    assert of_kind(many, "run_start")[0].config["replicas"] == 2
    # the norms are not counted once per replica: they match one process's closely
    for a, b in zip(of_kind(one, "dw"), of_kind(many, "dw")):
        for arm, mine in a.by_arm().items():
            for matrix, value in mine.dw.items():
                assert b.by_arm()[arm].dw[matrix] == pytest.approx(value, rel=2e-5, abs=1e-7), (arm, matrix)
    assert [(s.arm, s.ids) for s in of_kind(many, "sample")] == [(s.arm, s.ids) for s in of_kind(one, "sample")]
    # each replica samples half of the prompts and validates half of the batches (engine.train.measure_parts):
    # every sample and batch as one process has it
    measured = [of_kind(events, "step_zero") + of_kind(events, "epoch_end") for events in (one, many)]
    for a, b in zip(*measured):
        for arm, mine in a.arms.items():
            assert len(b.arms[arm].val_batches) == len(mine.val_batches) > 1
            assert b.arms[arm].val_batches == pytest.approx(mine.val_batches, rel=1e-5), arm
            assert b.arms[arm].expected_s_batches == pytest.approx(mine.expected_s_batches, rel=1e-5), arm
    saved = assets["root"] / "saved-replicas"
    assert sorted(p.parent.name for p in saved.glob("*/model.safetensors")) == ["full", "targeted"]
