"""`plan --gpus N`: the layout a distributed run would use and why -- replicas when an arm fits one GPU
with its optimizer, shards when it does not, both (HSDP) when fewer shards than an arm's GPUs hold it."""

from __future__ import annotations

import json

import pytest

from engine.core.errors import FreezeTuiError
from engine.plans.layout import choose_layout, per_rank_bytes
from engine.plans.memory import PlanMemory
from freeze_tui.cli.main import main

MB = 10**6
# an arm of 10 MB weights (+10 grads, +20 AdamW) and 40 MB of activations at the whole batch: 80 MB whole
ARM = PlanMemory.of(weights=10 * MB, grads=10 * MB, optimizer=20 * MB, activations=40 * MB)
SMALL = PlanMemory.of(weights=MB, grads=MB, optimizer=2 * MB, activations=4 * MB)


def layout(capacity_mb: float, gpus: int = 8, batch: int = 8):
    return choose_layout({"full": ARM, "small": SMALL}, gpus=gpus, capacity=int(capacity_mb * MB), batch=batch)


def test_per_rank_memory_shards_the_state_and_splits_the_activations():
    assert per_rank_bytes(ARM, 1, 1) == 80 * MB
    assert per_rank_bytes(ARM, 2, 1) == 40 * MB + 20 * MB
    assert per_rank_bytes(ARM, 2, 2) == 20 * MB + 10 * MB


def test_an_arm_that_fits_one_gpu_is_replicated():
    chosen = layout(80)
    assert (chosen.kind, chosen.replicas, chosen.shards, chosen.arm) == ("replicas", 4, 1, "full")
    assert "fit one GPU" in chosen.reason and "4 data-parallel replicas per arm" in chosen.reason
    assert chosen.line().endswith("Start: freeze-tui run --nproc-per-node 8 --replicas 4 --headless ...")


def test_an_arm_too_big_for_one_gpu_is_sharded_and_replicated_over_the_rest():
    hsdp = layout(35)  # 4 replicas: 40 + 10 MB; 2 x 2: 20 + 10 MB
    assert (hsdp.kind, hsdp.replicas, hsdp.shards) == ("hsdp", 2, 2)
    assert "do not fit one GPU (35.0 MB): sharded over 2 GPUs it needs 30.0 MB per GPU" in hsdp.reason
    assert "HSDP, --replicas 2 --shards 2" in hsdp.reason
    shards = layout(22)  # 2 x 2: 20 + 10 MB; 1 x 4: 10 + 10 MB
    assert (shards.kind, shards.replicas, shards.shards) == ("shards", 1, 4)
    assert "--nproc-per-node 8 --shards 4 --headless" in shards.line()


def test_what_does_not_fit_or_split_says_so():
    none = layout(19)
    assert none.kind == "does not fit" and "does not fit even sharded over all 4 GPU(s) of an arm" in none.reason
    assert "Start:" not in none.line()
    assert "--batch-size 6 must then be a multiple of 4" in layout(80, batch=6).reason
    with pytest.raises(FreezeTuiError, match="--gpus 3 does not split over 2 arm"):
        layout(80, gpus=3)
    with pytest.raises(FreezeTuiError, match="--gpus must be at least 1, got 0"):
        layout(80, gpus=0)


def test_plan_prints_the_layout_of_the_demo(capsys):
    with pytest.raises(SystemExit) as ended:
        main(["plan", "--gpus", "4", "--memory-limit", "80GB"])
    out = " ".join(capsys.readouterr().out.split())
    assert ended.value.code == 0
    assert "layout on 4 GPU(s): replicas, 2 arm(s) x 2 replica(s) x 1 shard(s)." in out
    assert "fit one GPU" in out and "--nproc-per-node 4 --replicas 2 --headless" in out
    with pytest.raises(SystemExit):
        main(["plan", "--gpus", "4", "--memory-limit", "80GB", "--json"])
    assert json.loads(capsys.readouterr().out)["layout"]["replicas"] == 2
