"""Fixtures shared by the engine tests."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.tiny_models import WORDS, make_tiny_model


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny random GPT-2 (4 blocks) and a 6000-word corpus of its one-token words; read-only for tests."""
    root = tmp_path_factory.mktemp("tiny")
    model = make_tiny_model(root, "gpt2", n_layer=4)
    rng = random.Random(0)
    corpus = root / "corpus.txt"
    corpus.write_text(" ".join(rng.choice(WORDS[2:40]) for _ in range(6000)))
    return model, corpus
