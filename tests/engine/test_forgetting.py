"""What the model forgets (--retain-data) and the expected share of S, on a tiny random model (CPU):
step-0 retain losses equal across arms, and both measures recomputed from the saved weights."""

from __future__ import annotations

import math
import random

import pytest
import torch
from transformers import AutoModelForCausalLM

from engine.core.errors import FreezeTuiError
from engine.log.frontier import frontier_points
from engine.log.runlog import read_events
from engine.log.state import RunState
from engine.run.config import RunConfig
from engine.train.arm import validation_loss
from engine.train.retain import expected_share, load_retain_set
from engine.train.session import RunSession
from engine.train.setup import prepare
from tests.tiny_models import WORDS, make_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    model = make_tiny_model(root, "gpt2", n_layer=2)
    rng = random.Random(0)
    corpus = root / "corpus.txt"
    corpus.write_text(" ".join(rng.choice(WORDS[2:30]) for _ in range(3000)))
    retain = root / "retain"
    retain.mkdir()
    (retain / "old.txt").write_text(" ".join(rng.choice(WORDS[20:60]) for _ in range(1500)))
    return model, corpus, retain


def config(tiny, **kw) -> RunConfig:
    model, corpus, retain = tiny
    base = dict(
        model=str(model),
        data=(str(corpus),),
        retain_data=(str(retain),),
        epochs=2,
        batch_size=4,
        block_size=16,
        lr=3e-2,
        samples=0,
        norm_every=0,
        arms=(("full", "full"), ("targeted", "targeted")),
    )
    return RunConfig(**{**base, **kw}).validate()


@pytest.fixture(scope="module")
def finished(tiny, tmp_path_factory):
    log = tmp_path_factory.mktemp("run") / "run.jsonl"
    save = log.parent / "weights"
    cfg = config(tiny, max_steps=10, save=str(save))
    session = RunSession(cfg, log, producer="test")
    session.start()
    while not session.done:
        session.get_batch(0.5)
    assert session.join(timeout=120)
    return cfg, list(read_events(log)), save


def test_step_zero_retain_losses_are_bit_identical_across_arms(finished):
    _, events, _ = finished
    (zero,) = [e for e in events if e.kind == "step_zero"]
    full, targeted = zero.arms["full"], zero.arms["targeted"]
    assert full.retain_batches and full.retain_batches == targeted.retain_batches
    assert full.retain_loss == targeted.retain_loss and math.isfinite(full.retain_loss)
    assert full.expected_s_batches == targeted.expected_s_batches
    start = next(e for e in events if e.kind == "run_start")
    assert start.data["retain"]["n_batches"] == len(full.retain_batches)


def test_forgetting_and_expected_share_recompute_from_saved_weights(finished):
    cfg, events, save = finished
    setup = prepare(cfg)
    retain = load_retain_set(cfg, setup.tokenizer)
    assert retain is not None
    common = torch.tensor(setup.data.common, dtype=torch.long)
    state = RunState().apply_all(events)
    points = {p.arm: p for p in frontier_points(state)}
    last = [e for e in events if e.kind == "epoch_end"][-1]
    cpu = torch.device("cpu")
    for name in ("full", "targeted"):
        model = AutoModelForCausalLM.from_pretrained(save / name)
        retain_loss, _ = validation_loss(model, retain.blocks, cfg.batch_size, cpu, None)
        share, _ = expected_share(model, setup.data.val, cfg.batch_size, cpu, None, common)
        logged = last.arms[name]
        assert retain_loss == pytest.approx(logged.retain_loss, abs=1e-5)
        assert share == pytest.approx(logged.expected_s, abs=1e-6)
        zero = state.arms[name].step_zero.retain_loss
        assert points[name].forgetting[0] == pytest.approx(retain_loss - zero, abs=1e-5)
        assert points[name].expected_s == pytest.approx(share, abs=1e-6)
    # the full arm trains at a high rate on other words: it forgets, measurably, more than nothing
    assert points["full"].forgetting[0] > 0
    assert 0 < points["full"].expected_s_pre < 1


def test_the_summary_carries_forgetting_and_pareto_flags(finished):
    _, events, _ = finished
    end = events[-1]
    assert end.kind == "run_end"
    for name in ("full", "targeted"):
        row = end.summary["arms"][name]
        assert math.isfinite(row["forgetting"]) and len(row["forgetting_ci"]) == 2
        assert isinstance(row["pareto_time"], bool) and isinstance(row["pareto_forget"], bool)
    assert end.summary["arms"]["full"]["forgetting_vs_full"] == 0.0


def test_missing_retain_data_is_one_clear_line(tiny, tmp_path):
    cfg = config(tiny, retain_data=(str(tmp_path / "nope.txt"),))
    with pytest.raises(FreezeTuiError, match="--retain-data path .* does not exist"):
        load_retain_set(cfg, None)


def test_retain_text_shorter_than_a_block_is_refused(tiny, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("the of")
    cfg = config(tiny, retain_data=(str(short),), block_size=64)
    tokenizer = prepare(config(tiny)).tokenizer
    with pytest.raises(FreezeTuiError, match="fewer than one block"):
        load_retain_set(cfg, tokenizer)


def test_demo_retain_set_is_the_held_out_tail_of_its_pretraining_text():
    """Text of the kind the demo was pretrained on, never trained on: the build's held-out tail,
    reproduced byte for byte from the standard library (Python 3.11, as the model was built)."""
    import gzip
    import sys

    from engine.demo.corpus import RETAIN_FILE, finetune_text, retain_text

    text = retain_text()
    assert 40_000 < len(text) < 60_000 and text not in finetune_text()
    assert gzip.decompress(RETAIN_FILE.read_bytes()) == text.encode("utf-8")
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the demo's pretraining text is Python 3.11's standard library")
    import hashlib
    import subprocess

    # a fresh interpreter: the pretraining text reads docstrings of imported C modules, and pytest's own
    # imports change a few of them
    code = (
        "import hashlib; from tools.build_demo import heldout_pretrain_text as h; "
        "print(hashlib.sha256(h().encode()).hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True)
    assert out.stdout.strip() == hashlib.sha256(text.encode()).hexdigest()


def test_with_seeds_each_replicate_has_its_step_zero_and_forgetting_is_their_mean(tiny, tmp_path):
    log = tmp_path / "seeds.jsonl"
    session = RunSession(config(tiny, max_steps=4, epochs=1, seeds=2), log, producer="test")
    session.start()
    while not session.done:
        session.get_batch(0.5)
    assert session.join(timeout=120)
    events = list(read_events(log))
    zeros = [e for e in events if e.kind == "step_zero"]
    assert len(zeros) == 2 and zeros[0].arms["full"].retain_loss == zeros[1].arms["full"].retain_loss
    state = RunState().apply_all(events)
    per_seed = [{p.arm: p for p in frontier_points(s)}["targeted"].forgetting[0] for s in (*state.past, state)]
    row = events[-1].summary["arms"]["targeted"]
    assert row["replicates"] == 2 and row["forgetting"] == pytest.approx(sum(per_seed) / 2)
    assert len(row["forgetting_ci"]) == 2
