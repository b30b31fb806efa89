"""A distributed rank's own weights and memory (issue 22), in this process: the model built on the meta
device and filled from the safetensors files equals from_pretrained's; checkpoints that are not plain
safetensors load the whole way; a rank's share of a sharded arm, and the one line a rank refuses with when
its share cannot fit. (Sharded ranks reading their rows run in tests/engine/test_distributed.py.)"""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch

from engine.core.errors import FreezeTuiError
from engine.dist.rank_load import WHOLE_LOAD_ENV, plan_rank_load
from engine.dist.rank_memory import check_rank
from engine.plans.rank_memory import gathered_params, rank_share
from engine.run.config import RunConfig, parse_arm
from engine.train.experiment import weights_checksum
from engine.train.memory_plan import planned_run
from engine.train.models import load_model
from tests.tiny_models import make_tiny_model


def _cfg(model, **kw) -> RunConfig:
    return dataclasses.replace(RunConfig(), model=str(model), **kw)


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "llama"])  # tied head; embed_out renamed; rotary buffers
def test_a_rank_reads_the_weights_from_pretrained_reads(tmp_path, family):
    path = make_tiny_model(tmp_path, family)
    loading = plan_rank_load(_cfg(path), sharded=False)
    assert loading is not None
    model = loading.place(loading.loaded.model, torch.device("cpu"))
    reference = load_model(str(path)).model
    mine, theirs = model.state_dict(), reference.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    ids = torch.randint(0, 200, (2, 8))
    assert torch.equal(model(ids).logits, reference(ids).logits)
    assert loading.checksum(model) == weights_checksum(model) == weights_checksum(reference)
    if family == "gpt2":
        assert model.lm_head.weight is model.transformer.wte.weight  # still one parameter


def test_checkpoints_that_are_not_plain_safetensors_load_the_whole_model(tmp_path, monkeypatch):
    path = make_tiny_model(tmp_path, "gpt2")
    (tmp_path / "bin").mkdir()
    torch.save(load_model(str(path)).model.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "bin" / name).write_bytes((path / name).read_bytes())
    assert plan_rank_load(_cfg(tmp_path / "bin"), sharded=True) is None
    monkeypatch.setenv(WHOLE_LOAD_ENV, "1")  # the previous path, which bench.host_memory compares with
    assert plan_rank_load(_cfg(path), sharded=True) is None


def test_a_sharded_rank_holds_its_share_and_one_gathered_block(tiny):
    model, _ = tiny
    planned = planned_run(_cfg(model, arms=(parse_arm("full=full"),)), [torch.device("cpu")])
    whole = planned.memory["full"]
    share = rank_share(whole, planned.layout, 4)
    gathered = 4 * gathered_params(planned.layout)
    assert share.weights == -(-whole.weights // 4) + gathered
    assert share.optimizer == -(-whole.optimizer // 4)
    assert share.activations == -(-whole.activations // 4)
    assert share.total < whole.total and rank_share(whole, planned.layout, 1) == whole
    # HSDP: the same share of the state, a quarter of the slice of the batch again
    hsdp = rank_share(whole, planned.layout, 4, replicas=2)
    assert hsdp.optimizer == share.optimizer and hsdp.activations == -(-whole.activations // 8)
    # replicas alone: FSDP2 keeps the unsharded weights beside its copy; 1/R of the activations
    replicas = rank_share(whole, planned.layout, 1, replicas=2)
    assert replicas.weights == 2 * whole.weights and replicas.optimizer == whole.optimizer
    assert replicas.activations == -(-whole.activations // 2)


def test_a_rank_whose_share_cannot_fit_refuses_in_one_line(tiny):
    model, _ = tiny
    cfg = _cfg(model, arms=(parse_arm("full=full"),), shards=2, batch_size=4, memory_limit="1MB")
    planned = planned_run(cfg, [torch.device("cpu")])
    with pytest.raises(FreezeTuiError) as refused:
        check_rank(cfg, planned, "full", torch.device("cpu"), own_weights=True, ranks=2)
    line = str(refused.value)
    assert "\n" not in line and line.startswith("arm full does not fit on cpu: one rank of its 2 needs")
    assert "but the --memory-limit there is 1.0 MB" in line and "--shards" in line
    roomy = dataclasses.replace(cfg, memory_limit="1GB")
    share = check_rank(roomy, planned, "full", torch.device("cpu"), own_weights=True, ranks=2)
    assert share.total < planned.memory["full"].total
    # the whole model loaded and kept on a CPU rank's host counts too (a checkpoint that is not safetensors)
    tight = dataclasses.replace(cfg, memory_limit=str(share.total + 1))
    check_rank(tight, planned, "full", torch.device("cpu"), own_weights=True, ranks=2)
    with pytest.raises(FreezeTuiError, match="the whole model kept on the host"):
        check_rank(tight, planned, "full", torch.device("cpu"), own_weights=False, ranks=2)


def test_plan_shows_one_ranks_share_with_shards(tiny):
    import json

    from click.testing import CliRunner

    from freeze_tui.cli.main import cli

    args = ["plan", "--json", "--model", str(tiny[0]), "--arm", "full", "--shards", "2", "--batch-size", "4"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    desc = json.loads(result.output)
    arm = desc["arms"][0]
    assert arm["rank_memory"]["optimizer"] == arm["memory"]["optimizer"] // 2
    assert arm["rank_memory"]["total"] < arm["memory"]["total"]
    assert desc["rank"]["shards"] == 2 and desc["rank"]["host_loading_own"] < desc["rank"]["host_loading_whole"]
    shown = CliRunner().invoke(cli, [a for a in args if a != "--json"], catch_exceptions=False, terminal_width=160)
    assert "one rank of 2 (--shards 2)" in shown.output and "host while a rank loads" in shown.output


def test_the_mmap_threshold_is_fixed_unless_the_user_set_one(monkeypatch):
    import sys

    from engine.dist.host_alloc import DEFAULT_ENV, fix_mmap_threshold

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")  # the user's own: left alone
    assert fix_mmap_threshold() is False
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setenv(DEFAULT_ENV, "1")  # glibc's adjustment kept, as bench.host_memory's "before"
    assert fix_mmap_threshold() is False
    monkeypatch.delenv(DEFAULT_ENV)
    if sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION"):
        assert fix_mmap_threshold() is True
