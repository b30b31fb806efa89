"""The third reliability hunt's defects (issue 21, section 2): one reproducing test (or a few) per item,
named after the item's number. Each failed before its fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import RunConfig
from engine.errors import FreezeTuiError

PREFIX = "freeze-tui: error: "


def cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TERM": "dumb"}
    return subprocess.run(
        [sys.executable, "-m", "freeze_tui", *args],
        cwd=cwd,
        env=env,
        timeout=timeout,
        capture_output=True,
        text=True,
        errors="replace",
        stdin=subprocess.DEVNULL,
    )


def one_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, one line on stderr with our prefix and every needle, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(PREFIX), lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# -- 1. an arm named `..` wrote outside --save ----------------------------------------------------------
@pytest.mark.parametrize("name", ["..", ".", "...", "-lead"])
def test_1_dot_only_and_dash_arm_names_are_refused(name):
    with pytest.raises(FreezeTuiError, match="must not start with '-' or be only dots"):
        RunConfig(arms=[(name, "full")]).validate()


def test_1_dot_dot_arm_with_save_exits_2_and_writes_nothing(tmp_path):
    (tmp_path / "runs" / "sv2").mkdir(parents=True)
    result = cli("run", "--headless", "--arm", "..=full", "--save", "runs/sv2/inner", "--log", "x.jsonl", cwd=tmp_path)
    one_line(result, "'..'", "only dots")
    assert not (tmp_path / "runs" / "sv2" / "model.safetensors").exists()
    assert not (tmp_path / "x.jsonl").exists()


def test_1_arm_folder_that_is_a_symlink_out_of_save_is_refused(tmp_path):
    from freeze_tui.cli import _check_save

    save, elsewhere = tmp_path / "save", tmp_path / "elsewhere"
    save.mkdir()
    elsewhere.mkdir()
    (save / "full").symlink_to(elsewhere)
    cfg = RunConfig(arms=[("full", "full")], save=str(save))
    with pytest.raises(FreezeTuiError, match="would write outside"):
        _check_save(cfg, save, tmp_path / "log.jsonl")
