"""--val-blocks N: validation, E[S] and forgetting measured on N evenly spread blocks of the validation
split and of the retain text; training, S and the sample prompts stay those of the whole split (issue 22:
the quick demo's validation sized to its short training)."""

from __future__ import annotations

import random

import pytest
import torch

from engine.log.runlog import read_events
from engine.run.config import RunConfig
from engine.train.arm import validation_loss
from engine.train.data import spread_rows
from engine.train.session import RunSession
from engine.train.setup import prepare
from tests.tiny_models import WORDS, make_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    model = make_tiny_model(root, "gpt2", n_layer=2)
    rng = random.Random(1)
    corpus = root / "corpus.txt"
    corpus.write_text(" ".join(rng.choice(WORDS[2:30]) for _ in range(3000)))
    retain = root / "retain.txt"
    retain.write_text(" ".join(rng.choice(WORDS[20:60]) for _ in range(1500)))
    return model, corpus, retain


def config(tiny, **kw) -> RunConfig:
    model, corpus, retain = tiny
    base = dict(model=str(model), data=(str(corpus),), retain_data=(str(retain),), batch_size=4, block_size=16)
    return RunConfig(**{**base, **kw, "samples": 0, "norm_every": 0}).validate()


def test_spread_rows_span_first_to_last_and_keep_all_when_fewer():
    assert spread_rows(10, 4).tolist() == [0, 3, 6, 9]
    assert spread_rows(3, 8).tolist() == [0, 1, 2]


def test_the_measured_blocks_are_a_spread_subset_and_the_rest_is_unchanged(tiny):
    every, some = prepare(config(tiny)), prepare(config(tiny, val_blocks=3))
    assert len(every.data.val) > 3 and len(some.data.val) == 3
    assert torch.equal(some.data.val, every.data.val[spread_rows(len(every.data.val), 3)])
    assert every.retain is not None and some.retain is not None and len(some.retain.blocks) == 3
    assert torch.equal(some.retain.blocks, every.retain.blocks[spread_rows(len(every.retain.blocks), 3)])
    assert some.retain.n_tokens == 3 * 16
    assert some.prompts == every.prompts and some.data.common == every.data.common
    rows = list(range(len(every.data.train)))
    assert len(some.data.train) == len(rows) and torch.equal(some.data.train[rows], every.data.train[rows])


def test_a_run_logs_its_measures_over_the_measured_blocks(tiny, tmp_path):
    cfg = config(tiny, val_blocks=5, max_steps=2, arms=(("full", "full"),))
    log = tmp_path / "run.jsonl"
    session = RunSession(cfg, log, producer="test")
    session.start()
    assert session.join(timeout=120)
    events = list(read_events(log))
    start = next(e for e in events if e.kind == "run_start")
    assert start.config["val_blocks"] == 5 and start.data["n_val_blocks"] == 5 and start.data["n_val_batches"] == 2
    assert start.data["retain"]["n_blocks"] == 5
    zero = next(e for e in events if e.kind == "step_zero").arms["full"]
    setup = prepare(cfg)
    loss, batches = validation_loss(setup.model, setup.data.val, 4, torch.device("cpu"), None)
    assert zero.val_batches == pytest.approx(batches, abs=1e-6) and zero.val_loss == pytest.approx(loss, abs=1e-6)
    (end,) = [e for e in events if e.kind == "epoch_end"]
    assert len(end.arms["full"].val_batches) == 2 and len(end.arms["full"].retain_batches) == 2
    # the report says its validation numbers are of a subset
    from engine.log.state import RunState
    from freeze_tui.draw.report import _meta_line

    assert "validation: 5 spread blocks (--val-blocks)" in _meta_line(RunState().apply_all(events))
