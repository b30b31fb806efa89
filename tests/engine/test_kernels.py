"""The same kernels for every arm (issue 22): --activation-checkpointing and --compile change no loss,
one AdamW implementation for all arms, each recorded in run_start.config.kernels; the memory plan
counts checkpointed activations."""

from __future__ import annotations

import shutil

import pytest
import torch

from engine.plans.memory import activation_bytes
from engine.plans.roles import build_layout
from engine.run.config import RunConfig
from engine.train.kernels import optimizer_kind
from tests.engine.test_run import config, run_session
from tests.tiny_models import make_tiny_model

ARMS = (("full", "full"), ("targeted", "targeted"))
COMPILE_TOLERANCE = 1e-4  # inductor fuses and reorders float sums: equal losses up to rounding


def losses(events) -> list[tuple[float, ...]]:
    return [tuple(s.arms[a].loss for a, _ in ARMS) for s in events if s.kind == "step"]


def test_activation_checkpointing_gives_the_same_losses(tiny, tmp_path):
    kw = dict(max_steps=3, arms=ARMS, samples=0)
    _, plain = run_session(config(tiny, **kw), tmp_path / "plain.jsonl")
    _, ckpt = run_session(config(tiny, activation_checkpointing=True, **kw), tmp_path / "ckpt.jsonl")
    for a, b in zip(losses(plain), losses(ckpt), strict=True):
        assert a == pytest.approx(b, abs=1e-6)  # dropout masks replayed in the recompute
    kernels = next(e for e in ckpt if e.kind == "run_start").config["kernels"]
    assert kernels["activation_checkpointing"].startswith("per block") and kernels["optimizer"] == "AdamW (foreach)"
    assert next(e for e in plain if e.kind == "run_start").config["kernels"]["activation_checkpointing"] is None


@pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None,
    reason="torch.compile's inductor needs a C compiler on the CPU and none is installed",
)
def test_compile_gives_the_same_losses_as_eager(tmp_path):
    """One 2-layer model, 2 steps (torch.compile is slow on 2 cores): compiled vs eager within 1e-4."""
    model = make_tiny_model(tmp_path, "gpt2", n_layer=2)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(" ".join(["the cat sat on the mat and it was good"] * 200))
    kw = dict(max_steps=2, arms=(("full", "full"),), samples=0, norm_every=0)
    _, eager = run_session(config((model, corpus), **kw), tmp_path / "eager.jsonl")
    _, comp = run_session(config((model, corpus), compile=True, **kw), tmp_path / "compiled.jsonl")
    assert comp[-1].status == "finished"
    a = [s.arms["full"].loss for s in eager if s.kind == "step"]
    b = [s.arms["full"].loss for s in comp if s.kind == "step"]
    assert len(a) == len(b) == 2 and a == pytest.approx(b, abs=COMPILE_TOLERANCE)
    assert next(e for e in comp if e.kind == "run_start").config["kernels"]["compile"]["dynamic"] is False


def test_one_adamw_for_every_arm():
    assert optimizer_kind(["cuda:0", "cuda:1"]) == "fused"
    assert optimizer_kind(["cuda:0", "cpu"]) == optimizer_kind(["cpu"]) == "foreach"


def test_memory_plan_counts_checkpointed_activations(tiny):
    from transformers import AutoModelForCausalLM

    layout = build_layout(AutoModelForCausalLM.from_pretrained(tiny[0]))
    names = set(layout.names)
    kw = dict(batch=8, block=128, dtype="fp32")
    kept = activation_bytes(layout, names, **kw)
    checkpointed = activation_bytes(layout, names, checkpointed=True, **kw)
    logits = 8 * 128 * 256 * (4 + 8)
    assert logits < checkpointed < kept  # the logits stay; the blocks keep their inputs and one block
    from engine.train.memory_plan import planned_run

    cfg = RunConfig(model=str(tiny[0]), arms=ARMS, activation_checkpointing=True)
    planned = planned_run(cfg, [torch.device("cpu")])
    assert planned.memory["full"].activations == activation_bytes(
        layout, names, batch=cfg.batch_size, block=cfg.block_size, dtype="fp32", checkpointed=True
    )
