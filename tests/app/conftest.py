"""Fixtures shared by the app tests."""

import pytest

from tests.synthetic_log import write_synthetic_log


@pytest.fixture
def log_path(tmp_path):
    """A synthetic finished run: 200 steps of two arms."""
    return write_synthetic_log(tmp_path / "run.jsonl", steps=200, arms=("full", "targeted"))
