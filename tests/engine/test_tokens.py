"""The corpus as a cached, memory-mapped token file (issue 14, case 9): the same ids, S and split as
tokenizing each document whole, in bounded memory, and a second run served from the cache."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from engine.core.textfiles import Corpus, read_corpus
from engine.log.runlog import read_events
from engine.run.config import RunConfig
from engine.train import tokens
from engine.train.data import common_token_ids, tokenize_corpus, top_ids
from engine.train.models import load_model
from engine.train.session import RunSession
from tests.tiny_models import WORDS, make_tiny_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return load_model(str(make_tiny_model(tmp_path_factory.mktemp("tok"), "gpt2", n_layer=1))).tokenizer


def text(n_lines: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS[2:40]) for _ in range(rng.randint(0, 12))) for _ in range(n_lines)]
    return "\n".join(lines).replace("\n\n\n", "\n \n") + "\n"  # blank lines, space-only lines, lone newlines


def whole(docs: list[str], tokenizer) -> list[int]:
    """What the engine did before token files: each document tokenized whole, EOS after each."""
    ids: list[int] = []
    for doc in docs:
        ids += tokenizer(doc, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return ids


def test_documents_cut_into_chunks_keep_their_ids(tokenizer, tmp_path, monkeypatch):
    monkeypatch.setattr(tokens, "CHUNK", 300)  # many cuts in a small file
    docs = [text(400, seed) for seed in range(3)]
    for i, doc in enumerate(docs):
        (tmp_path / f"d{i}.txt").write_text(doc)
    (tmp_path / "blank.txt").write_text(" \n\n")
    corpus = read_corpus((str(tmp_path),))
    ids = tokens.corpus_tokens(corpus, tokenizer)
    assert isinstance(ids, np.memmap) and ids.dtype == np.uint16
    assert ids.tolist() == whole(docs, tokenizer)  # the blank file adds nothing, as before


def test_a_second_run_is_served_from_the_cache(tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("FREEZE_TUI_CACHE", str(tmp_path / "cache"))
    (tmp_path / "a.txt").write_text(text(200))
    corpus = read_corpus((str(tmp_path / "a.txt"),))
    calls = []
    first = tokens.corpus_tokens(corpus, tokenizer, progress=lambda done, total, cached: calls.append((done, total)))
    assert calls and calls[-1][0] == calls[-1][1] == (tmp_path / "a.txt").stat().st_size

    def no_tokenizing(*args):
        raise AssertionError("tokenized again")

    monkeypatch.setattr(tokens, "_write_tokens", no_tokenizing)
    assert tokens.corpus_tokens(corpus, tokenizer).tolist() == first.tolist()
    (tmp_path / "a.txt").write_text(text(200, seed=1))  # other content: another key
    with pytest.raises(AssertionError, match="tokenized again"):
        tokens.corpus_tokens(read_corpus((str(tmp_path / "a.txt"),)), tokenizer)
    assert len(list((tmp_path / "cache" / "tokens").glob("*.bin"))) == 1  # nothing half-written left


def test_an_unwritable_cache_still_runs(tokenizer, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("FREEZE_TUI_CACHE", str(tmp_path / "file" / "cache"))  # under a file: cannot exist
    ids = tokens.corpus_tokens(Corpus(("some text",), "t"), tokenizer)
    assert ids.tolist() == whole(["some text"], tokenizer)


def test_common_tokens_and_split_as_before(tokenizer):
    corpus = Corpus((text(3000),), "t")
    data = tokenize_corpus(corpus, tokenizer, block_size=16, batch_size=4, val_fraction=0.1, seed=3, common_k=10)
    import torch

    ids = whole(list(corpus.documents), tokenizer)
    n_blocks = len(ids) // 16
    blocks = torch.tensor(ids[: n_blocks * 16]).view(n_blocks, 16)
    perm = torch.randperm(n_blocks, generator=torch.Generator().manual_seed(3))
    n_val = round(n_blocks * 0.1)
    assert torch.equal(data.val, blocks[perm[:n_val]])
    assert torch.equal(data.train[list(range(len(data.train)))], blocks[perm[n_val:]])
    assert data.common == common_token_ids(blocks[perm[n_val:]].flatten().tolist(), 10)
    assert data.n_unique == len(set(ids)) and data.n_tokens == len(ids)
    counts = np.array([0, 5, 5, 0, 7, 1])
    assert top_ids(counts, 3) == common_token_ids([4] * 7 + [1] * 5 + [2] * 5 + [5], 3) == [4, 1, 2]


def test_the_cached_load_copies_no_whole_corpus(tokenizer, tmp_path, monkeypatch):
    """Issue 21 item 26: from the cache, the training blocks stay in the memory-mapped uint16 file; only
    the validation blocks (10 % here) become an int64 tensor. A Python list or an int64 copy of the whole
    corpus (8+ bytes a token) would exceed the bound below."""
    import tracemalloc

    monkeypatch.setenv("FREEZE_TUI_CACHE", str(tmp_path / "cache"))
    (tmp_path / "a.txt").write_text(text(20000))
    corpus = read_corpus((str(tmp_path / "a.txt"),))  # a file, as a large corpus is (hashed in blocks)
    settings = {"block_size": 16, "batch_size": 4, "val_fraction": 0.1, "seed": 0, "common_k": 10}
    tokenize_corpus(corpus, tokenizer, **settings)  # tokenized and cached
    tracemalloc.start()
    try:
        data = tokenize_corpus(corpus, tokenizer, **settings)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    grid = data.train._grid
    assert grid.dtype == np.uint16 and isinstance(grid.base, np.memmap)
    assert data.n_tokens > 100_000 and peak < 3 * data.n_tokens, (peak, data.n_tokens)


def test_the_demo_run_starts_as_recorded(tmp_path):
    """Token files change nothing the sample runs recorded: same data, same S, same first losses."""
    recorded = list(read_events(ROOT / "sample_runs" / "demo-full-vs-targeted.jsonl"))
    start = next(e for e in recorded if e.kind == "run_start")
    keep = {k: v for k, v in start.config.items() if k in RunConfig.__dataclass_fields__}
    keep.update(model=None, data=(), arms=tuple(tuple(a) for a in keep["arms"]), log=None, save=None)
    cfg = RunConfig(**{**keep, "max_steps": 2, "samples": 0}).validate()
    session = RunSession(cfg, tmp_path / "r.jsonl", producer="test").start()
    assert session.join(120)
    events = list(read_events(tmp_path / "r.jsonl"))
    now = next(e for e in events if e.kind == "run_start")
    assert {k: now.data[k] for k in ("n_tokens", "n_unique", "n_train_batches")} == {
        k: start.data[k] for k in ("n_tokens", "n_unique", "n_train_batches")
    }
    assert now.common_tokens == start.common_tokens
    steps = [e for e in events if e.kind == "step"]
    old = [e for e in recorded if e.kind == "step"][: len(steps)]
    assert len(steps) == 2
    for a, b in zip(steps, old):
        for arm in b.arms:
            assert a.arms[arm].loss == pytest.approx(b.arms[arm].loss, rel=1e-5)


def test_an_unchanged_file_is_not_read_again(tmp_path, monkeypatch):
    from engine.core import textfiles

    path = tmp_path / "a.txt"
    path.write_text(text(50))
    assert textfiles.check_text_file(path) and tokens.file_hash(path)
    first_hash = tokens.file_hash(path)

    def read_again(*args):
        raise AssertionError("read again")

    monkeypatch.setattr(textfiles, "_check_text_file", read_again)
    monkeypatch.setattr(tokens, "open", read_again, raising=False)
    assert textfiles.check_text_file(path) and tokens.file_hash(path) == first_hash
    path.write_text(text(50, seed=2))  # written: size, mtime and ctime change
    with pytest.raises(AssertionError, match="read again"):
        textfiles.check_text_file(path)
    with pytest.raises(AssertionError, match="read again"):
        tokens.file_hash(path)
