import pytest

from tests.synthetic_log import write_synthetic_log


@pytest.fixture
def log_path(tmp_path):
    return write_synthetic_log(tmp_path / "run.jsonl", steps=200, arms=("full", "targeted"))
